//! Prometheus metrics of one instance, labelled with its role and pod name.
//!
//! Every role registers its own instruments on [`Metrics::registry`]; this
//! module adds what every pod has: HTTP latency, allocator memory (jemalloc
//! stands where a JVM shows its heap and GC) and process statistics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Latency buckets in seconds, fine around the booking deadline.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// The metrics registry of this instance and the instruments every pod has.
pub struct Metrics {
    registry: Registry,
    http_requests: HistogramVec,
    allocator: IntGaugeVec,
}

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
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Arc::new(Self {
            registry,
            http_requests,
            allocator,
        }))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric, allocator stats fresh.
    pub fn render(&self) -> String {
        self.sample_allocator();
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
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        m.observe_http(&route, &method, res.status().as_u16(), started);
    }
    Ok(res)
}
