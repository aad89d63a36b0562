//! `/health/live`, `/health/ready` and `/metrics`, mounted by every role.
//!
//! Live means the process answers. Ready means every dependency this role
//! needs (broker, PostgreSQL, Redis) answered a probe just now; Kubernetes
//! stops routing to a pod that is not ready.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures::future::BoxFuture;
use serde_json::json;

use crate::metrics::Metrics;

/// How long one dependency probe may take before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependency probes of one role.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named probe; `probe` returns why the dependency is down.
    pub fn with<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.probes
            .push((name, Arc::new(move || Box::pin(probe()))));
        self
    }

    /// Runs every probe concurrently, each bounded by the probe timeout:
    /// its name, result and duration.
    async fn probe_all(&self) -> Vec<(&'static str, Result<(), String>, Duration)> {
        futures::future::join_all(self.probes.iter().map(|(name, probe)| async move {
            let started = std::time::Instant::now();
            let result = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            (*name, result, started.elapsed())
        }))
        .await
    }

    /// Runs every probe: whether all passed, and a report.
    pub async fn check(&self) -> (bool, serde_json::Value) {
        let results = self.probe_all().await;
        let ok = results.iter().all(|(_, r, _)| r.is_ok());
        let report: serde_json::Map<_, _> = results
            .into_iter()
            .map(|(name, r, _)| {
                (
                    name.to_owned(),
                    r.err().map_or_else(|| json!("ok"), |e| json!(e)),
                )
            })
            .collect();
        (ok, json!({ "ready": ok, "checks": report }))
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "live": true }))
}

async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ok, report) = readiness.check().await;
    if !ok {
        tracing::warn!(%report, "not ready");
    }
    if ok {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

/// Registers the health and metrics routes; the app must carry
/// `web::Data<Readiness>` and `web::Data<Metrics>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

/// Probes every dependency every 5 s into `dependency_up{dependency}` (1 or
/// 0) and `dependency_probe_seconds{dependency}`, so dashboards and alerts
/// see an outage without anyone calling `/health/ready`.
fn watch_dependencies(metrics: &Metrics, readiness: Readiness) -> anyhow::Result<()> {
    let up = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "dependency_up",
            "Whether a dependency answered its probe (1) or not (0)",
        ),
        &["dependency"],
    )?;
    let seconds = prometheus::GaugeVec::new(
        prometheus::Opts::new("dependency_probe_seconds", "Duration of the last probe"),
        &["dependency"],
    )?;
    metrics.registry().register(Box::new(up.clone()))?;
    metrics.registry().register(Box::new(seconds.clone()))?;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Ok(());
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            for (name, result, took) in readiness.probe_all().await {
                up.with_label_values(&[name]).set(i64::from(result.is_ok()));
                seconds.with_label_values(&[name]).set(took.as_secs_f64());
            }
        }
    });
    Ok(())
}

/// Starts an HTTP server on `port` (all interfaces) with the health and
/// metrics routes plus whatever `routes` adds.
pub fn serve<F>(
    port: u16,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    routes_of_role: F,
) -> anyhow::Result<actix_web::dev::Server>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    serve_with(port, metrics, readiness, routes_of_role, false)
}

/// [`serve`], with every response compressed for clients that accept it
/// (`compress`) unless it sets its own `Content-Encoding` (a stream of
/// server-sent events sets `identity`: compressed, it would be held back).
pub fn serve_with<F>(
    port: u16,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    routes_of_role: F,
    compress: bool,
) -> anyhow::Result<actix_web::dev::Server>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    watch_dependencies(&metrics, readiness.clone())?;
    let metrics = web::Data::from(metrics);
    let readiness = web::Data::new(readiness);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .wrap(actix_web::middleware::Condition::new(
                compress,
                actix_web::middleware::Compress::default(),
            ))
            .wrap(actix_web::middleware::from_fn(crate::metrics::track_http))
            .configure(routes)
            .configure(routes_of_role.clone())
    })
    .workers(2)
    .shutdown_timeout(10)
    .disable_signals()
    .bind(("0.0.0.0", port))
    .map_err(|e| anyhow::anyhow!("cannot listen on port {port}: {e}"))?
    .run();
    Ok(server)
}
