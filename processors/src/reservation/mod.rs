//! The reservation-processor: consumes outcomes from `booking-events`,
//! records them in PostgreSQL, mirrors them into the Redis availability
//! cache, answers the API instance waiting for each, drives hold expiry, and
//! serves interactive queries on its HTTP port.
//!
//! Delivery is at least once; every write is idempotent and versioned by the
//! outcome's `seq`, so a replay after a crash changes nothing. An outcome
//! that cannot be read, or that PostgreSQL refuses by a constraint, goes to
//! the dead-letter topic (counted, and alerted on: a refused seat is a
//! double sale caught by the database) instead of stalling its partition.

pub mod cache;
mod expiry;
mod queries;
pub mod store;
mod sweep;

use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_domain::{Outcome, SaleState};
use boxoffice_platform::cache::Keys;
use boxoffice_platform::config::{CommonConfig, DatabaseConfig, RedisConfig};
use boxoffice_platform::db::{self, PgPool};
use boxoffice_platform::health::Readiness;
use boxoffice_platform::kafka::ConsumerLag;
use boxoffice_platform::messages::{OutcomeEnvelope, decode_outcome, outcome_from_newer_schema};
use boxoffice_platform::metrics::Metrics;
use boxoffice_platform::views::{BookingView, EventView, Rejection, Reply};
use boxoffice_platform::{health, kafka, now_ms, shutdown, trace};
use diesel_async::AsyncConnection;
use futures::StreamExt;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use crate::rebalance::{PartitionTracker, TrackingContext};
use cache::CacheBatch;

/// Consumer group of every reservation-processor instance (topic prefix
/// included, so systems sharing a broker never share a group).
pub fn group(common: &CommonConfig) -> String {
    common.group("reservation-processor")
}

/// Settings of the reservation-processor role.
#[derive(clap::Args, Debug, Clone)]
pub struct ReservationProcessorConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    /// Port of the interactive queries, health and metrics.
    #[arg(long, env = "BOXOFFICE_PORT", default_value_t = 8180)]
    pub port: u16,
    /// Most outcomes written in one PostgreSQL transaction.
    #[arg(long, env = "BOXOFFICE_BATCH_MAX", default_value_t = 500)]
    pub batch_max: usize,
    /// PostgreSQL connections in the pool.
    #[arg(long, env = "BOXOFFICE_DB_POOL", default_value_t = 8)]
    pub db_pool: usize,
    /// How often held bookings are checked for expiry (ms).
    #[arg(long, env = "BOXOFFICE_EXPIRY_SWEEP_MS", default_value_t = 1000)]
    pub expiry_sweep_ms: u64,
    /// How long a refused booking is kept in PostgreSQL (s); afterwards it is
    /// deleted and only counted in the event's figures.
    #[arg(
        long,
        env = "BOXOFFICE_REFUSAL_RETENTION_SECS",
        default_value_t = 86_400
    )]
    pub refusal_retention_secs: u64,
}

/// The reservation-processor's instruments.
pub(crate) struct ReservationMetrics {
    outcomes: IntCounterVec,
    stage_seconds: HistogramVec,
    end_to_end_seconds: HistogramVec,
    pub(crate) expiry_commands: IntCounterVec,
    pub(crate) refusals_swept: IntCounterVec,
    dead_letters: IntCounterVec,
    lag: ConsumerLag,
}

impl ReservationMetrics {
    fn new(metrics: &Metrics) -> anyhow::Result<Self> {
        let r = metrics.registry();
        let outcomes = IntCounterVec::new(
            Opts::new(
                "booking_outcomes_total",
                "Outcomes recorded, by kind and status or rejection reason",
            ),
            &["kind", "result"],
        )?;
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("processing_stage_seconds", "Time per processing stage")
                .buckets(boxoffice_platform::metrics::LATENCY_BUCKETS.to_vec()),
            &["stage"],
        )?;
        let end_to_end_seconds = HistogramVec::new(
            HistogramOpts::new(
                "command_to_record_seconds",
                "From a command being issued to its outcome being recorded",
            )
            .buckets(boxoffice_platform::metrics::LATENCY_BUCKETS.to_vec()),
            &[],
        )?;
        let expiry_commands = IntCounterVec::new(
            Opts::new("hold_expiry_commands_total", "ExpireHold commands sent"),
            &[],
        )?;
        r.register(Box::new(outcomes.clone()))?;
        r.register(Box::new(stage_seconds.clone()))?;
        r.register(Box::new(end_to_end_seconds.clone()))?;
        let refusals_swept = IntCounterVec::new(
            Opts::new(
                "refusals_swept_total",
                "Refused bookings deleted from PostgreSQL after their retention (still counted per event)",
            ),
            &[],
        )?;
        r.register(Box::new(expiry_commands.clone()))?;
        r.register(Box::new(refusals_swept.clone()))?;
        let dead_letters = kafka::dead_letter_counter(metrics)?;
        Ok(Self {
            dead_letters,
            outcomes,
            stage_seconds,
            end_to_end_seconds,
            expiry_commands,
            refusals_swept,
            lag: ConsumerLag::new(metrics)?,
        })
    }
}

/// What the HTTP handlers and the loops share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) redis: deadpool_redis::Pool,
    pub(crate) keys: Keys,
}

/// Runs the reservation-processor until `shutdown` is cancelled.
pub async fn run(
    config: ReservationProcessorConfig,
    instance: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Metrics::new("reservation-processor", &instance)?;
    let own_metrics = Arc::new(ReservationMetrics::new(&metrics)?);
    let url = config.database.database_url.expose();
    if let Err(e) = db::ensure_database(url).await {
        tracing::warn!(error = %e, "could not make sure the database exists; assuming it does");
    }
    let pool = db::pool(url, config.db_pool)?;
    db::migrate(&pool).await?;
    let redis = boxoffice_platform::cache::pool(&config.redis)?;
    metrics.watch_pool("postgres", {
        let pool = pool.clone();
        move || pool.status()
    });
    metrics.watch_pool("redis", {
        let redis = redis.clone();
        move || redis.status()
    });
    let shared = Shared {
        pool: pool.clone(),
        redis: redis.clone(),
        keys: Keys::new(&config.redis.redis_prefix),
    };
    kafka::ensure_topics(&config.common).await?;
    boxoffice_platform::registry::prepare(&config.common).await?;

    let probe_producer = kafka::producer(&config.common, &format!("{instance}-probe"))?;
    let readiness = Readiness::new()
        .with("kafka", move || kafka::probe(probe_producer.clone()))
        .with("postgres", {
            let pool = pool.clone();
            move || db::probe(pool.clone())
        })
        .with("redis", {
            let redis = redis.clone();
            move || boxoffice_platform::cache::probe(redis.clone())
        });
    let query_state = shared.clone();
    let server = health::serve(config.port, metrics.clone(), readiness, move |cfg| {
        queries::routes(cfg, query_state.clone())
    })?;
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);
    tracing::info!(port = config.port, "reservation-processor started");
    let sweep_stop = shutdown.child_token();
    let sweep = tokio::spawn(sweep::run(
        shared.clone(),
        Duration::from_secs(config.refusal_retention_secs),
        own_metrics.clone(),
        sweep_stop.clone(),
    ));

    shutdown::supervise("reservation-processor", &shutdown, || {
        process(&config, &instance, &shared, &own_metrics, &shutdown)
    })
    .await;
    sweep_stop.cancel();
    let _ = sweep.await;
    server_handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("reservation-processor stopped");
    Ok(())
}

async fn process(
    config: &ReservationProcessorConfig,
    instance: &str,
    shared: &Shared,
    metrics: &Arc<ReservationMetrics>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topics = config.common.topics();
    let tracker = PartitionTracker::default();
    let context = TrackingContext {
        topic: topics.events.clone(),
        tracker: tracker.clone(),
        lag: metrics.lag.clone(),
    };
    let consumer: StreamConsumer<TrackingContext> =
        kafka::consumer(&config.common, &group(&config.common), instance, context)?;
    consumer.subscribe(&[&topics.events])?;
    let producer = kafka::producer(&config.common, instance)?;

    let expiry_stop = shutdown.child_token();
    let expiry = tokio::spawn(expiry::run(
        shared.clone(),
        producer.clone(),
        topics.commands.clone(),
        tracker.clone(),
        Duration::from_millis(config.expiry_sweep_ms),
        metrics.clone(),
        expiry_stop.clone(),
    ));
    let _stop_expiry = expiry_stop.clone().drop_guard();

    let mut batches = consumer.stream().ready_chunks(config.batch_max);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            batch = batches.next() => match batch {
                Some(b) => b,
                None => anyhow::bail!("consumer stream ended"),
            },
        };
        let mut messages = Vec::with_capacity(batch.len());
        for m in batch {
            messages.push(m?);
        }
        let mut outcomes = Vec::with_capacity(messages.len());
        // The message each outcome came from, for a dead letter.
        let mut sources = Vec::with_capacity(messages.len());
        let mut dead = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            // A newer version's outcome is neither recorded wrong nor
            // dropped: this instance stops until an upgraded one runs.
            anyhow::ensure!(
                !m.payload().is_some_and(outcome_from_newer_schema),
                "outcome {}@{} was written with a newer schema than this version knows: upgrade the reservation-processor",
                m.partition(),
                m.offset()
            );
            match m.payload().map(decode_outcome) {
                Some(Ok(o)) => {
                    // Open until the batch is recorded: the span's duration is
                    // this outcome's time in the reservation-processor.
                    let span = tracing::info_span!(
                        "record outcome",
                        otel.kind = "consumer",
                        event.id = %o.event_id,
                        booking.id = tracing::field::Empty,
                        partition = m.partition(),
                        offset = m.offset(),
                    );
                    if let Outcome::Booking { booking_id, .. } = &o.outcome {
                        span.record("booking.id", tracing::field::display(booking_id));
                    }
                    trace::continue_from(&span, &trace::carrier_from_headers(m.headers()));
                    outcomes.push((m.partition(), o, span));
                    sources.push(i);
                }
                Some(Err(e)) => {
                    tracing::error!(partition = m.partition(), offset = m.offset(), error = %e, "undecodable outcome: to the dead-letter topic");
                    dead.push(kafka::DeadLetter::of(m, "undecodable", &e.to_string()));
                }
                None => {
                    tracing::error!(
                        partition = m.partition(),
                        offset = m.offset(),
                        "empty outcome: to the dead-letter topic"
                    );
                    dead.push(kafka::DeadLetter::of(
                        m,
                        "empty",
                        "the message has no payload",
                    ));
                }
            }
        }
        match record_batch(shared, &outcomes, metrics).await {
            Ok(()) => {}
            Err(e) if refused_by(&e).is_some() => {
                // One outcome poisons the whole transaction: find it by
                // recording them one by one, and let the others through.
                tracing::error!(error = %e, "PostgreSQL refused a batch by a constraint; recording its outcomes one by one");
                for (i, source) in sources.iter().enumerate() {
                    let Err(e) = record_batch(shared, &outcomes[i..=i], metrics).await else {
                        continue;
                    };
                    let Some(constraint) = refused_by(&e) else {
                        return Err(e);
                    };
                    let reason = if constraint == "one_active_booking_per_seat" {
                        "double_sale"
                    } else {
                        "constraint_violation"
                    };
                    let m = &messages[*source];
                    tracing::error!(partition = m.partition(), offset = m.offset(), constraint, reason, error = %e, "PostgreSQL refused an outcome: to the dead-letter topic");
                    dead.push(kafka::DeadLetter::of(m, reason, &e.to_string()));
                }
            }
            Err(e) => return Err(e),
        }
        for d in &dead {
            d.send(&producer, &topics.dead_letters, Duration::from_secs(10))
                .await?;
            metrics
                .dead_letters
                .with_label_values(&[&topics.events, d.reason()])
                .inc();
        }
        for m in &messages {
            kafka::mark_processed(&consumer, m)?;
        }
    }
    expiry_stop.cancel();
    let _ = expiry.await;
    tracing::info!("reservation-processor draining: committing offsets");
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .ok();
    Ok(())
}

/// What one outcome changed, for the cache and the reply.
enum Recorded {
    Event(Option<(EventView, i64)>),
    /// The booking as it now stands, for the cache to follow.
    Booking(BookingView),
    Nothing,
}

/// Booking outcomes waiting to be written together, and where their
/// results go.
#[derive(Default)]
struct BookingRun<'a> {
    slots: Vec<usize>,
    writes: Vec<store::BookingWrite<'a>>,
}

impl BookingRun<'_> {
    /// Writes the run and notes, for each of its outcomes, whether the cache
    /// must follow it.
    async fn write(
        &mut self,
        conn: &mut diesel_async::AsyncPgConnection,
        recorded: &mut [Recorded],
    ) -> diesel::QueryResult<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let follow = store::upsert_bookings(conn, &self.writes).await?;
        self.writes.clear();
        for (slot, view) in self.slots.drain(..).zip(follow) {
            if let Some(view) = view {
                recorded[slot] = Recorded::Booking(view);
            }
        }
        Ok(())
    }
}

/// Records a batch: one PostgreSQL transaction, then one Redis pipeline.
async fn record_batch(
    shared: &Shared,
    outcomes: &[(i32, OutcomeEnvelope, tracing::Span)],
    metrics: &ReservationMetrics,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = shared.pool.get().await?;
    let now = now_ms();
    let recorded: Vec<Recorded> = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let mut recorded = Vec::with_capacity(outcomes.len());
            // Bookings are written a run at a time (a few statements for the
            // whole run); an event outcome ends a run, as bookings refer to
            // their event.
            let mut run = BookingRun::default();
            for (partition, o, _) in outcomes {
                match &o.outcome {
                    // Every part of an event answers its event commands;
                    // part 0 stands for the event (its seq orders them),
                    // the others only answer the API waiting for them.
                    Outcome::EventCreated { .. } | Outcome::SaleChanged { .. } if o.part != 0 => {
                        recorded.push(Recorded::Nothing)
                    }
                    Outcome::EventCreated { spec, sale } => {
                        run.write(conn, &mut recorded).await?;
                        store::insert_event(conn, o.event_id, spec, *sale, o.seq).await?;
                        recorded.push(Recorded::Event(
                            store::load_event(conn, o.event_id.0, now).await?,
                        ));
                    }
                    Outcome::SaleChanged { sale } => {
                        run.write(conn, &mut recorded).await?;
                        store::set_sale(conn, o.event_id, *sale, o.seq).await?;
                        recorded.push(Recorded::Event(
                            store::load_event(conn, o.event_id.0, now).await?,
                        ));
                    }
                    Outcome::Booking {
                        booking: Some(b), ..
                    } => {
                        run.slots.push(recorded.len());
                        run.writes.push(store::BookingWrite {
                            booking: b,
                            partition: *partition,
                            version: o.seq,
                        });
                        // Filled in when the run is written.
                        recorded.push(Recorded::Nothing);
                    }
                    Outcome::Booking { booking: None, .. } | Outcome::EventRejected { .. } => {
                        recorded.push(Recorded::Nothing)
                    }
                }
            }
            run.write(conn, &mut recorded).await?;
            Ok(recorded)
        })
        .await?;
    drop(conn);
    metrics
        .stage_seconds
        .with_label_values(&["write_postgres"])
        .observe(started.elapsed().as_secs_f64());

    let started = Instant::now();
    let mut batch = CacheBatch::new(&shared.keys);
    for ((_, o, span), r) in outcomes.iter().zip(&recorded) {
        match r {
            Recorded::Event(Some((view, created))) => batch.put_event(view, *created),
            Recorded::Booking(view) => batch.put_booking(view),
            _ => {}
        }
        if let Some(instance) = &o.reply_to {
            let mut reply = reply_for(o, r);
            reply.trace = trace::carrier_of(span);
            batch.reply(instance, &reply);
        }
        let (kind, result) = label(&o.outcome);
        metrics.outcomes.with_label_values(&[kind, result]).inc();
        metrics
            .end_to_end_seconds
            .with_label_values(&[] as &[&str])
            .observe(((now - o.at_ms).max(0) as f64) / 1000.0);
    }
    batch.send(&shared.redis).await?;
    metrics
        .stage_seconds
        .with_label_values(&["write_redis"])
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// The constraint PostgreSQL refused a write by, if that is what `e` is.
fn refused_by(e: &anyhow::Error) -> Option<String> {
    use diesel::result::{DatabaseErrorKind as K, Error};
    match e.downcast_ref::<Error>()? {
        Error::DatabaseError(
            K::UniqueViolation | K::ForeignKeyViolation | K::CheckViolation | K::NotNullViolation,
            info,
        ) => Some(info.constraint_name().unwrap_or("unnamed").to_owned()),
        _ => None,
    }
}

fn reply_for(o: &OutcomeEnvelope, recorded: &Recorded) -> Reply {
    match &o.outcome {
        Outcome::EventCreated { spec, sale } => Reply {
            subject: o.event_id.0,
            rejection: None,
            booking: None,
            event: Some(match recorded {
                Recorded::Event(Some((v, _))) => v.clone(),
                _ => EventView::new(o.event_id, spec.clone(), *sale, now_ms()),
            }),
            trace: Default::default(),
        },
        Outcome::SaleChanged { .. } => Reply {
            subject: o.event_id.0,
            rejection: None,
            booking: None,
            event: match recorded {
                Recorded::Event(Some((v, _))) => Some(v.clone()),
                _ => None,
            },
            trace: Default::default(),
        },
        Outcome::EventRejected { reason } => Reply {
            subject: o.event_id.0,
            rejection: Some(Rejection::from(*reason)),
            booking: None,
            event: None,
            trace: Default::default(),
        },
        Outcome::Booking {
            booking_id,
            booking,
            rejection,
        } => Reply {
            subject: booking_id.0,
            rejection: rejection.map(Rejection::from),
            booking: booking.as_ref().map(|b| BookingView::new(b, o.seq)),
            event: None,
            trace: Default::default(),
        },
    }
}

fn label(o: &Outcome) -> (&'static str, &'static str) {
    match o {
        Outcome::EventCreated { .. } => ("event", "created"),
        Outcome::SaleChanged {
            sale: SaleState::Open,
        } => ("event", "sale_opened"),
        Outcome::SaleChanged { .. } => ("event", "sale_closed"),
        Outcome::EventRejected { reason } => ("event", reason.code()),
        Outcome::Booking {
            rejection: Some(r), ..
        } => ("booking", r.code()),
        Outcome::Booking {
            booking: Some(b), ..
        } => ("booking", b.status.name()),
        Outcome::Booking { .. } => ("booking", "unknown"),
    }
}
