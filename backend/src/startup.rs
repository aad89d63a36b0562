//! Builds and runs the API: clients, the reply listener and the HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use boxoffice_platform::cache::Keys;
use boxoffice_platform::health::{self, Readiness};
use boxoffice_platform::metrics::{Metrics, track_http};
use boxoffice_platform::{cache, kafka};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::auth::Signer;
use crate::config::ApiConfig;
use crate::limits::{Bounded, Concurrency, Limiter, LocalBuckets, Scope};
use crate::listener::{self, SeatFeeds};
use crate::routes;
use crate::state::{ApiMetrics, AppState, Limits};
use crate::waiters::Waiters;

/// Runs the API until `shutdown`: then stops taking requests, lets in-flight
/// ones finish (up to 15 s), and returns.
pub async fn run(
    config: ApiConfig,
    instance: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.check_secrets()?;
    let metrics = Metrics::new("api", &instance)?;
    kafka::ensure_topics(&config.common).await?;
    boxoffice_platform::registry::prepare(&config.common).await?;
    let producer = Arc::new(kafka::RenewingProducer::new({
        let (common, instance) = (config.common.clone(), instance.clone());
        move || kafka::command_producer(&common, &instance, crate::routes::DELIVERY_TIMEOUT)
    })?);
    let redis = cache::Shared::new(&config.redis)?;
    let keys = Keys::new(&config.redis.redis_prefix);
    let db_url = config.database.database_url.expose();
    if let Err(e) = boxoffice_platform::db::ensure_database(db_url).await {
        tracing::warn!(error = %e, "could not make sure the database exists; assuming it does");
    }
    // Accounts only: bookings never wait on PostgreSQL here, so it is not
    // part of readiness (an outage refuses sign-ups and sign-ins, and
    // sessions whose state is not cached, with 503; guests book on).
    let pool = boxoffice_platform::db::pool(db_url, config.accounts_db_pool)?;
    boxoffice_platform::db::migrate(&pool).await?;
    metrics.watch_pool("postgres", {
        let pool = pool.clone();
        move || pool.status()
    });
    let accounts = crate::accounts::Accounts::new(
        pool.clone(),
        keys.clone(),
        config.password_hashers,
        Duration::from_secs(config.session_seconds),
    )?;
    let waiters = Arc::new(Waiters::default());
    let feeds = Arc::new(SeatFeeds::default());
    let connected = Arc::new(AtomicBool::new(false));
    let listener_task = tokio::spawn(listener::run(
        config.redis.redis_url.expose().to_owned(),
        keys.clone(),
        instance.clone(),
        waiters.clone(),
        feeds.clone(),
        connected.clone(),
        shutdown.clone(),
    ));

    let limiter = Limiter::new(&config.redis.redis_prefix, metrics.registry())?;
    let state = web::Data::new(AppState {
        instance: instance.clone(),
        producer: producer.clone(),
        topics: config.common.topics(),
        redis: redis.clone(),
        keys,
        waiters,
        feeds,
        listener_connected: connected.clone(),
        http: reqwest::Client::new(),
        reservation_url: config.reservation_url.trim_end_matches('/').to_owned(),
        signer: Signer::new(config.auth_secret.expose()),
        organizer_password: config.organizer_password.expose().to_owned(),
        accounts,
        guests: config.guest_buyers,
        booking_deadline: Duration::from_millis(config.booking_deadline_ms),
        long_poll_max: Duration::from_millis(config.long_poll_max_ms),
        metrics: ApiMetrics::new(metrics.registry())?,
        admission: Admission::new(config.admission_max),
        waiting_rooms: crate::waiting_room::WaitingRooms::default(),
        events: crate::event_cache::EventCache::default(),
        command_partitions: tokio::sync::OnceCell::new(),
        limits: Limits {
            trusted_proxies: config.trusted_proxies.clone(),
            address: config.limit_address,
            buyer: config.limit_buyer,
            event: config.limit_event,
            new_buyers: config.limit_new_buyers,
            sign_in: config.limit_sign_in,
            account_sign_in: config.limit_account_sign_in,
            waiting_room: config.limit_waiting_room,
            streams: Concurrency::new(
                Bounded::Streams,
                config.streams_per_client,
                config.streams_max,
                register(
                    metrics.registry(),
                    prometheus::IntGauge::new(
                        "api_streams_open",
                        "Live seat-map streams this instance has open",
                    )?,
                )?,
            ),
            long_polls: Concurrency::new(
                Bounded::LongPolls,
                config.long_polls_per_buyer,
                config.long_polls_max,
                register(
                    metrics.registry(),
                    prometheus::IntGauge::new(
                        "api_long_polls_waiting",
                        "Long polls for a booking this instance has waiting",
                    )?,
                )?,
            ),
            reads: LocalBuckets::new(config.limit_reads, limiter.refusals(Scope::Reads)),
            limiter,
        },
    });
    let state_for_sweep = state.clone();
    state
        .metrics
        .admission_limit
        .set(i64::try_from(state.admission.max()).unwrap_or(i64::MAX));
    let readiness = web::Data::new(
        Readiness::new()
            .with("kafka", move || kafka::probe(producer.get()))
            .with("redis", {
                let redis = redis.clone();
                move || redis.clone().probe()
            })
            .with("reply_listener", move || {
                let up = connected.load(Ordering::Relaxed);
                async move {
                    if up {
                        Ok(())
                    } else {
                        Err("not subscribed to replies".to_owned())
                    }
                }
            }),
    );
    let metrics_data = web::Data::from(metrics.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(readiness.clone())
            .app_data(metrics_data.clone())
            .wrap(actix_web::middleware::from_fn(track_http))
            .configure(routes::extractor_errors)
            .configure(health::routes)
            .configure(routes::configure)
            .default_service(web::to(|| async {
                HttpResponse::NotFound()
                    .json(json!({ "code": "not_found", "message": "no such route" }))
            }))
    })
    .shutdown_timeout(15)
    .disable_signals()
    .bind(("0.0.0.0", config.port))
    .map_err(|e| anyhow::anyhow!("cannot listen on port {}: {e}", config.port))?
    .run();
    let handle = server.handle();
    tracing::info!(
        port = config.port,
        instance,
        env = ?config.env,
        trusted_proxies = %config.trusted_proxies,
        limit_address = %config.limit_address,
        limit_buyer = %config.limit_buyer,
        limit_event = %config.limit_event,
        guest_buyers = config.guest_buyers,
        session_seconds = config.session_seconds,
        "api started"
    );
    let sweeper = tokio::spawn(sweep_sessions(state_for_sweep, shutdown.clone()));
    let server_task = tokio::spawn(server);
    shutdown.cancelled().await;
    tracing::info!("api draining in-flight requests");
    handle.stop(true).await;
    let _ = server_task.await;
    let _ = listener_task.await;
    let _ = sweeper.await;
    tracing::info!("api stopped");
    Ok(())
}

/// Deletes long-ended sessions once an hour (every instance does; the
/// statement is idempotent).
async fn sweep_sessions(state: web::Data<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => match state.accounts.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "deleted ended sessions"),
                Err(e) => tracing::warn!(error = %e, "could not delete ended sessions"),
            },
        }
    }
}

/// Registers `metric` and hands it back.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &prometheus::Registry,
    metric: M,
) -> anyhow::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}
