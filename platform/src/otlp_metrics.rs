//! OTLP push of the same instruments `/metrics` exposes: every
//! `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60 s) the registry is gathered,
//! converted to OTLP (counters -> monotonic cumulative sums, gauges ->
//! gauges, histograms -> explicit-bucket histograms) and sent to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` by gRPC or HTTP/protobuf, as the traces are.
//! One set of instruments, two ways out: the numbers cannot disagree.

use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use prost::Message;

use crate::metrics::Metrics;

/// Starts pushing when an OTLP endpoint is configured; stops with `metrics`.
pub fn spawn(metrics: Weak<Metrics>, role: &str, pod: &str) {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_default();
    if endpoint.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let interval = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis);
    let http = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|p| p == "http/protobuf");
    let resource = Resource {
        attributes: vec![
            string_attribute("service.name", &format!("boxoffice-{role}")),
            string_attribute("service.instance.id", pod),
        ],
        ..Default::default()
    };
    let started = unix_nanos();
    runtime.spawn(async move {
        let client = reqwest::Client::new();
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(metrics) = metrics.upgrade() else {
                return;
            };
            // Sampled gauges (allocator, pools, runtime) are fresh as on a scrape.
            metrics.sample();
            let request = export_request(&metrics.registry().gather(), &resource, started);
            drop(metrics);
            let sent = if http {
                push_http(&client, &endpoint, request).await
            } else {
                push_grpc(&endpoint, request).await
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, endpoint, "OTLP metrics push failed");
            }
        }
    });
}

async fn push_http(
    client: &reqwest::Client,
    endpoint: &str,
    request: ExportMetricsServiceRequest,
) -> anyhow::Result<()> {
    let url = if endpoint.ends_with("/v1/metrics") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/metrics", endpoint.trim_end_matches('/'))
    };
    client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn push_grpc(endpoint: &str, request: ExportMetricsServiceRequest) -> anyhow::Result<()> {
    let mut client = MetricsServiceClient::connect(endpoint.to_owned()).await?;
    client.export(request).await?;
    Ok(())
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// The OTLP form of a Prometheus registry's families.
pub fn export_request(
    families: &[MetricFamily],
    resource: &Resource,
    start_nanos: u64,
) -> ExportMetricsServiceRequest {
    let now = unix_nanos();
    let metrics = families
        .iter()
        .filter_map(|f| convert(f, start_nanos, now))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "boxoffice".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn convert(family: &MetricFamily, start: u64, now: u64) -> Option<Metric> {
    let labels = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
        m.get_label()
            .iter()
            .map(|l| string_attribute(l.name(), l.value()))
            .collect()
    };
    let number = |m: &prometheus::proto::Metric, v: f64| NumberDataPoint {
        attributes: labels(m),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let data = match family.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| number(m, m.get_counter().value()))
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| number(m, m.get_gauge().value()))
                .collect(),
        }),
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| {
                    let h = m.get_histogram();
                    // Prometheus buckets are cumulative; OTLP counts per bucket,
                    // with one more bucket above the last bound.
                    let mut counts = Vec::with_capacity(h.get_bucket().len() + 1);
                    let mut bounds = Vec::with_capacity(h.get_bucket().len());
                    let mut below = 0;
                    for b in h.get_bucket() {
                        if b.upper_bound().is_infinite() {
                            continue;
                        }
                        counts.push(b.cumulative_count().saturating_sub(below));
                        below = b.cumulative_count();
                        bounds.push(b.upper_bound());
                    }
                    counts.push(h.sample_count().saturating_sub(below));
                    HistogramDataPoint {
                        attributes: labels(m),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: h.sample_count(),
                        sum: Some(h.sample_sum()),
                        bucket_counts: counts,
                        explicit_bounds: bounds,
                        ..Default::default()
                    }
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        _ => return None,
    };
    Some(Metric {
        name: family.name().to_owned(),
        description: family.help().to_owned(),
        data: Some(data),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounter, Registry};

    #[test]
    fn prometheus_histograms_become_otlp_buckets_with_the_same_totals() {
        let registry = Registry::new_custom(Some("t".into()), None).unwrap();
        let h = HistogramVec::new(
            HistogramOpts::new("latency_seconds", "x").buckets(vec![0.1, 1.0]),
            &["route"],
        )
        .unwrap();
        let c = IntCounter::new("requests_total", "y").unwrap();
        registry.register(Box::new(h.clone())).unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.with_label_values(&["/a"]).observe(v);
        }
        c.inc_by(7);
        let request = export_request(&registry.gather(), &Resource::default(), 1);
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let hist = metrics
            .iter()
            .find(|m| m.name == "t_latency_seconds")
            .unwrap();
        let Some(metric::Data::Histogram(hist)) = &hist.data else {
            panic!("not a histogram: {hist:?}");
        };
        let point = &hist.data_points[0];
        assert_eq!(point.explicit_bounds, vec![0.1, 1.0]);
        assert_eq!(point.bucket_counts, vec![1, 2, 1]);
        assert_eq!(point.count, 4);
        assert_eq!(point.attributes[0].key, "route");
        let counter = metrics
            .iter()
            .find(|m| m.name == "t_requests_total")
            .unwrap();
        let Some(metric::Data::Sum(sum)) = &counter.data else {
            panic!("not a sum: {counter:?}");
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(7.0))
        );
    }
}
