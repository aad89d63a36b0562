//! The server side: the `boxoffice dashboard` role. Renders pages (actix +
//! leptos_actix), answers server functions, serves the wasm client and
//! relays each event's live seat feed from the API, so browsers talk to this
//! one origin only.

pub mod api;
pub mod ops;

use std::path::PathBuf;
use std::time::Duration;

use actix_files::Files;
use actix_web::{HttpResponse, web};
use boxoffice_platform::config::CommonConfig;
use boxoffice_platform::health::{self, Readiness};
use boxoffice_platform::metrics::Metrics;
use futures::TryStreamExt;
use leptos::prelude::*;
use leptos_actix::{LeptosRoutes, generate_route_list};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::{App, shell};

/// Settings of the web app.
#[derive(clap::Args, Debug, Clone)]
pub struct DashboardConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Port of the web app.
    #[arg(long, env = "BOXOFFICE_PORT", default_value_t = 8380)]
    pub port: u16,
    /// Base URL of the API the pages talk to (through this server).
    #[arg(
        long,
        env = "BOXOFFICE_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,
    /// Folder holding pkg/ with the wasm client (scripts/build-web.sh).
    #[arg(long, env = "BOXOFFICE_SITE_DIR", default_value = "target/site")]
    pub site_dir: PathBuf,
    /// Prometheus to read per-pod figures from (`http://127.0.0.1:9090`).
    #[arg(long, env = "BOXOFFICE_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Without Prometheus: base URLs of the instances whose `/metrics` the
    /// operations view reads, comma-separated.
    #[arg(long, env = "BOXOFFICE_METRICS_TARGETS", value_delimiter = ',')]
    pub metrics_targets: Vec<String>,
}

/// Relays `GET /api/events/{id}/seats/stream` (server-sent events).
async fn live_seats(id: web::Path<String>) -> HttpResponse {
    if uuid::Uuid::parse_str(&id).is_err() {
        return HttpResponse::BadRequest()
            .json(json!({ "code": "invalid_id", "message": "event ids are UUIDs" }));
    }
    let Ok(api) = api::api() else {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "code": "unavailable", "message": "not configured" }));
    };
    let upstream = api
        .stream
        .get(format!("{}/api/events/{id}/seats/stream", api.base))
        .send()
        .await;
    match upstream {
        Ok(res) if res.status().is_success() => HttpResponse::Ok()
            .insert_header(("Content-Type", "text/event-stream"))
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(
                res.bytes_stream()
                    .map_err(actix_web::error::ErrorBadGateway),
            ),
        Ok(res) => {
            let status = actix_web::http::StatusCode::from_u16(res.status().as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            HttpResponse::build(status).json(body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "seat feed relay: the API is unreachable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "2"))
                .json(json!({ "code": "unavailable", "message": "the booking service is unreachable" }))
        }
    }
}

/// Serves the app until `shutdown`.
pub async fn run(
    config: DashboardConfig,
    instance: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pkg = config.site_dir.join("pkg");
    anyhow::ensure!(
        pkg.join("dashboard.js").exists(),
        "no wasm client in {}: build it with scripts/build-web.sh",
        pkg.display()
    );
    api::configure(&config.api_url)?;
    ops::configure(ops::OpsConfig {
        common: config.common.clone(),
        prometheus: config.prometheus_url.clone(),
        targets: config.metrics_targets.clone(),
    })?;
    let metrics = Metrics::new("dashboard", &instance)?;
    let readiness = Readiness::new().with("api", || async {
        let api = api::api().map_err(|e| e.to_string())?;
        let res = api
            .http
            .get(format!("{}/health/ready", api.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("not ready ({})", res.status()))
        }
    });
    let options = LeptosOptions::builder()
        .output_name("dashboard")
        .site_root(config.site_dir.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(std::net::SocketAddr::from(([0, 0, 0, 0], config.port)))
        .build();
    let routes = generate_route_list(App);
    let server = health::serve(config.port, metrics, readiness, move |cfg| {
        let opts = options.clone();
        cfg.app_data(web::Data::new(opts.clone()))
            .route("/live/events/{id}", web::get().to(live_seats))
            // The wasm client compresses to about a third.
            .service(
                web::scope("/pkg")
                    .wrap(actix_web::middleware::Compress::default())
                    .service(Files::new("", pkg.clone()).use_etag(true)),
            )
            .leptos_routes(routes.clone(), move || shell(opts.clone()));
    })?;
    tracing::info!(
        port = config.port,
        api = %config.api_url,
        site = %config.site_dir.display(),
        per_pod_source = config.prometheus_url.as_deref().unwrap_or("instances' /metrics"),
        "dashboard started"
    );
    let handle = server.handle();
    let task = tokio::spawn(server);
    shutdown.cancelled().await;
    tracing::info!("dashboard stopping");
    handle.stop(true).await;
    task.await??;
    Ok(())
}
