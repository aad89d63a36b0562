//! Prometheus metrics of one instance, labelled with its role and pod name.
//!
//! Every role registers its own instruments on [`Metrics::registry`]; this
//! module adds what every pod has: HTTP latency, allocator memory (jemalloc
//! stands where a JVM shows its heap and GC) and process statistics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder};
use tracing::Instrument;

/// Latency buckets in seconds, fine around the booking deadline.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// The metrics registry of this instance and the instruments every pod has.
pub struct Metrics {
    registry: Registry,
    http_requests: HistogramVec,
    allocator: IntGaugeVec,
    runtime: IntGaugeVec,
    /// The role's main runtime (actix serves /metrics from its own workers).
    runtime_handle: Option<tokio::runtime::Handle>,
    pools: IntGaugeVec,
    samplers: Mutex<Vec<Sampler>>,
}

type Sampler = Box<dyn Fn() + Send + Sync>;

impl Metrics {
    pub fn new(role: &str, instance: &str) -> anyhow::Result<Arc<Self>> {
        let labels = HashMap::from([
            ("role".to_owned(), role.to_owned()),
            ("pod".to_owned(), instance.to_owned()),
        ]);
        let registry = Registry::new_custom(Some("boxoffice".into()), Some(labels))?;
        let http_requests = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP requests by route, method and status",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        let allocator = IntGaugeVec::new(
            Opts::new(
                "allocator_bytes",
                "jemalloc memory: allocated, active, resident, mapped, retained",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(allocator.clone()))?;
        let runtime = IntGaugeVec::new(
            Opts::new(
                "tokio_runtime",
                "Tokio runtime: workers, alive_tasks, global_queue_depth",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(runtime.clone()))?;
        let pools = IntGaugeVec::new(
            Opts::new(
                "pool_connections",
                "Connection pools (postgres, redis): max, open, idle, in_use, waiting",
            ),
            &["pool", "state"],
        )?;
        registry.register(Box::new(pools.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let metrics = Arc::new(Self {
            registry,
            http_requests,
            allocator,
            runtime,
            runtime_handle: tokio::runtime::Handle::try_current().ok(),
            pools,
            samplers: Mutex::new(Vec::new()),
        });
        crate::otlp_metrics::spawn(Arc::downgrade(&metrics), role, instance);
        Ok(metrics)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Reports a connection pool's usage on every scrape.
    pub fn watch_pool(
        &self,
        name: &str,
        status: impl Fn() -> deadpool::Status + Send + Sync + 'static,
    ) {
        let gauges = self.pools.clone();
        let name = name.to_owned();
        self.samplers
            .lock()
            .expect("samplers lock")
            .push(Box::new(move || {
                let s = status();
                let gauge = |state: &str, v: usize| {
                    gauges
                        .with_label_values(&[name.as_str(), state])
                        .set(i64::try_from(v).unwrap_or(i64::MAX));
                };
                gauge("max", s.max_size);
                gauge("open", s.size);
                gauge("idle", s.available);
                gauge("in_use", s.size.saturating_sub(s.available));
                gauge("waiting", s.waiting);
            }));
    }

    /// Refreshes the sampled values (allocator, runtime, pools): done before
    /// every scrape and every OTLP push.
    pub fn sample(&self) {
        self.sample_allocator();
        self.sample_runtime();
        for sample in self.samplers.lock().expect("samplers lock").iter() {
            sample();
        }
    }

    /// The Prometheus text exposition of every metric, sampled values fresh.
    pub fn render(&self) -> String {
        self.sample();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn sample_allocator(&self) {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_err() {
            return;
        }
        let readings = [
            ("allocated", stats::allocated::read()),
            ("active", stats::active::read()),
            ("resident", stats::resident::read()),
            ("mapped", stats::mapped::read()),
            ("retained", stats::retained::read()),
        ];
        for (kind, value) in readings {
            if let Ok(v) = value {
                self.allocator
                    .with_label_values(&[kind])
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }

    fn sample_runtime(&self) {
        let Some(handle) = &self.runtime_handle else {
            return;
        };
        let m = handle.metrics();
        for (kind, v) in [
            ("workers", m.num_workers()),
            ("alive_tasks", m.num_alive_tasks()),
            ("global_queue_depth", m.global_queue_depth()),
        ] {
            self.runtime
                .with_label_values(&[kind])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, started: Instant) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// actix middleware recording every request's latency under its route
/// pattern (so `/api/bookings/{id}` is one series, not one per booking).
pub async fn track_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let metrics = req.app_data::<actix_web::web::Data<Metrics>>().cloned();
    // Probes and scrapes are not worth a trace each.
    let quiet = route.starts_with("/health") || route == "/metrics";
    let span = if quiet {
        tracing::Span::none()
    } else {
        tracing::info_span!(
        "HTTP request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        )
    };
    // A caller's W3C trace context (e.g. a browser's) continues here.
    let carrier: crate::trace::Carrier = ["traceparent", "tracestate"]
        .iter()
        .filter_map(|h| {
            let v = req.headers().get(*h)?.to_str().ok()?;
            Some(((*h).to_owned(), v.to_owned()))
        })
        .collect();
    crate::trace::continue_from(&span, &carrier);
    let res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    span.record("http.response.status_code", status);
    if !quiet {
        // The access log: inside the span, so the line carries its trace id.
        span.in_scope(|| {
            tracing::info!(
                status,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request served"
            );
        });
    }
    if let Some(m) = metrics {
        m.observe_http(&route, &method, status, started);
    }
    Ok(res)
}
