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
    /// Proxies in front of the web app (the ingress) whose
    /// `X-Forwarded-For` it believes, as comma-separated networks: it
    /// resolves each visitor's address and hands the API that one
    /// (docs/front-door.md).
    #[arg(long, env = "BOXOFFICE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: boxoffice_platform::client::TrustedProxies,
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

/// Whether a request may run a server function: sent from a page of this
/// web app, or by a client that is not a browser. A browser names where a
/// request comes from (`Origin`, or at least `Sec-Fetch-Site`); a call from
/// another site's page is refused, whatever cookies it carries (CSRF). The
/// cookies are `SameSite=Strict` as well, so this is the second of two
/// locks.
pub fn same_origin(req: &actix_web::HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header("Origin") {
        let host = header("Host").unwrap_or_default();
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        return !host.is_empty() && origin_host.eq_ignore_ascii_case(host);
    }
    !matches!(header("Sec-Fetch-Site"), Some("cross-site" | "same-site"))
}

/// Refuses server-function calls from other sites' pages (see [`same_origin`]).
async fn csrf_guard(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if same_origin(req.request()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    tracing::warn!(
        path = req.path(),
        origin = ?req.headers().get("Origin"),
        "refused a server-function call from another site"
    );
    Ok(req.into_response(HttpResponse::Forbidden().json(json!({
        "code": "cross_origin",
        "message": "This call must come from the booking site's own pages.",
    }))))
}

/// Relays `GET /api/events/{id}/seats/stream` (server-sent events).
async fn live_seats(req: actix_web::HttpRequest, id: web::Path<String>) -> HttpResponse {
    if uuid::Uuid::parse_str(&id).is_err() {
        return HttpResponse::BadRequest()
            .json(json!({ "code": "invalid_id", "message": "event ids are UUIDs" }));
    }
    let Ok(api) = api::api() else {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "code": "unavailable", "message": "not configured" }));
    };
    let mut upstream = api
        .stream
        .get(format!("{}/api/events/{id}/seats/stream", api.base));
    if let Some(address) = api::visitor_address(&req) {
        upstream = upstream.header("X-Forwarded-For", address);
    }
    let upstream = upstream.send().await;
    match upstream {
        Ok(res) if res.status().is_success() => HttpResponse::Ok()
            .insert_header(("Content-Type", "text/event-stream"))
            // Not compressed: each event must leave as it comes.
            .insert_header(("Content-Encoding", "identity"))
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(
                res.bytes_stream()
                    .map_err(actix_web::error::ErrorBadGateway),
            ),
        Ok(res) => {
            let status = actix_web::http::StatusCode::from_u16(res.status().as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            let retry_after = res
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            let mut answer = HttpResponse::build(status);
            if let Some(r) = retry_after {
                answer.insert_header(("Retry-After", r));
            }
            answer.json(body)
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
    api::trust_proxies(config.trusted_proxies.clone());
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
    // Pages, server functions and the wasm client go out compressed (the
    // client to about a third, a stadium's page far more); the live feed
    // relay opts out.
    let server = health::serve_with(
        config.port,
        metrics,
        readiness,
        move |cfg| {
            let opts = options.clone();
            cfg.app_data(web::Data::new(opts.clone()))
                .route("/live/events/{id}", web::get().to(live_seats))
                // Server functions, behind the CSRF guard; registered before
                // leptos_routes, which would register them unguarded.
                .service(
                    web::scope("/rpc")
                        .wrap(actix_web::middleware::from_fn(csrf_guard))
                        .route("/{name:.*}", leptos_actix::handle_server_fns()),
                )
                .service(web::scope("/pkg").service(Files::new("", pkg.clone()).use_etag(true)))
                .leptos_routes(routes.clone(), move || shell(opts.clone()));
        },
        true,
    )?;
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
