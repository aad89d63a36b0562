//! One booking is one trace: the roles export spans by OTLP to receivers in
//! this test (the API and reservation-processor by HTTP/protobuf, the
//! seat-processor by gRPC, so both exporters are exercised), which checks that the API, seat-processor and
//! reservation-processor spans of a booking share a trace id and link to
//! their parents across Kafka and Redis. The same receiver gets the metrics
//! pushed by OTLP from the instruments `/metrics` shows.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::json;
use support::{Stack, book};

/// A span as received: its service, name, ids and parent.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// Metric names pushed, with the pod attribute of their data points.
type Pushed = Arc<Mutex<Vec<(String, String)>>>;

async fn export_metrics(pushed: web::Data<Pushed>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = ExportMetricsServiceRequest::decode(body.as_ref()) else {
        return HttpResponse::BadRequest().finish();
    };
    record_metrics(&pushed, request);
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(ExportMetricsServiceResponse::default().encode_to_vec())
}

fn record_metrics(pushed: &Pushed, request: ExportMetricsServiceRequest) {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let mut out = pushed.lock().unwrap();
    for rm in request.resource_metrics {
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let attributes = match &m.data {
                    Some(Data::Histogram(h)) => h.data_points.first().map(|p| p.attributes.clone()),
                    Some(Data::Sum(s)) => s.data_points.first().map(|p| p.attributes.clone()),
                    Some(Data::Gauge(g)) => g.data_points.first().map(|p| p.attributes.clone()),
                    _ => None,
                };
                let pod = attributes
                    .unwrap_or_default()
                    .iter()
                    .find(|a| a.key == "pod")
                    .map(|a| format!("{:?}", a.value))
                    .unwrap_or_default();
                out.push((m.name, pod));
            }
        }
    }
}

/// The gRPC side of the metrics receiver.
struct GrpcMetrics(Pushed);

#[tonic::async_trait]
impl MetricsService for GrpcMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        record_metrics(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn export(spans: web::Data<Spans>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return HttpResponse::BadRequest().finish();
    };
    record(&spans, request);
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}

/// The gRPC side of the receiver.
struct GrpcReceiver(Spans);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn record(spans: &Spans, request: ExportTraceServiceRequest) {
    let mut out = spans.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Received {
                    service: service.clone(),
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|a| {
                            (
                                a.key.clone(),
                                format!("{:?}", a.value.as_ref().map(|v| &v.value)),
                            )
                        })
                        .collect(),
                });
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_booking_is_one_trace_across_kafka_and_redis_and_metrics_are_pushed() {
    let spans: Spans = Arc::default();
    let pushed: Pushed = Arc::default();
    let data = web::Data::new(spans.clone());
    let pushed_data = web::Data::new(pushed.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(pushed_data.clone())
            .app_data(web::PayloadConfig::new(64 << 20))
            .route("/v1/traces", web::post().to(export))
            .route("/v1/metrics", web::post().to(export_metrics))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());

    let grpc_port = support::free_port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcReceiver(spans.clone())))
            .add_service(MetricsServiceServer::new(GrpcMetrics(pushed.clone())))
            .serve(([127, 0, 0, 1], grpc_port).into()),
    );

    // Each role exports with its own settings: HTTP for two, gRPC for one.
    let otlp = |endpoint: String, protocol: &str| -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), protocol.into()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL".into(), "1000".into()),
        ]
    };
    let over_http = otlp(format!("http://127.0.0.1:{port}"), "http/protobuf");
    let over_grpc = otlp(format!("http://127.0.0.1:{grpc_port}"), "grpc");
    let mut stack = Stack::new("traces");
    stack.extra_env = over_http.clone();
    stack.start("reservation-processor", "reservation-1").await;
    stack.extra_env = over_grpc;
    stack.start("seat-processor", "seat-1").await;
    stack.extra_env = over_http;
    let api = format!("http://127.0.0.1:{}", stack.start("api", "api-1").await);
    let event = stack.create_event(&api, 1, 4, 10, 600).await;
    let (_, token) = stack.buyer_token(&api).await;
    let (status, booking) = book(
        &stack,
        &api,
        &event,
        &token,
        "traced",
        json!({ "seats": ["A-2-3"] }),
    )
    .await;
    assert_eq!(status, 201, "{booking}");
    let booking_id = booking["id"].as_str().unwrap().to_owned();

    // Find the spans of this booking: the seat-processor's carries its id.
    let started = Instant::now();
    let chain = loop {
        let all = spans.lock().unwrap().clone();
        if let Some(chain) = chain_of(&all, &booking_id) {
            break chain;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no complete trace for booking {booking_id} after 30 s; got spans: {:#?}",
            all.iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let [http, publish, apply, record, reply] = chain;
    assert!(http.service.contains("boxoffice-api"), "{http:?}");
    assert!(
        http.name.contains("POST /api/events/{id}/bookings"),
        "{http:?}"
    );
    assert!(
        http.parent.chars().all(|c| c == '0'),
        "the HTTP span is the root: {http:?}"
    );
    assert!(
        apply.service.contains("boxoffice-seat-processor"),
        "{apply:?}"
    );
    assert!(
        record.service.contains("boxoffice-reservation-processor"),
        "{record:?}"
    );
    assert!(reply.service.contains("boxoffice-api"), "{reply:?}");
    // No personal data in attributes: ids of things, never of people.
    for s in [&http, &publish, &apply, &record, &reply] {
        assert!(!s.attributes.keys().any(|k| k.contains("buyer")), "{s:?}");
    }

    // Logs lead to the trace: the API's access log line for this request
    // carries the trace id.
    let api_log = std::fs::read_to_string(stack.dir.join("logs/api-1.log")).unwrap();
    assert!(
        api_log.lines().any(|l| l.contains("request served")
            && l.contains(&format!("\"trace_id\":\"{}\"", http.trace_id))),
        "no access log line with trace id {}",
        http.trace_id
    );

    // The instruments behind /metrics are pushed too, per pod.
    let started = Instant::now();
    let wanted = [
        ("boxoffice_http_request_duration_seconds", "api-1"),
        ("boxoffice_seat_commands_total", "seat-1"),
        ("boxoffice_booking_outcomes_total", "reservation-1"),
    ];
    loop {
        let got = pushed.lock().unwrap().clone();
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(name, pod)| !got.iter().any(|(n, p)| n == name && p.contains(pod)))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "metrics never pushed: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The spans of one booking's trace, each the parent of the next:
/// HTTP request -> publish -> apply -> record -> reply.
fn chain_of(all: &[Received], booking_id: &str) -> Option<[Received; 5]> {
    let apply = all.iter().find(|s| {
        s.name == "apply command"
            && s.attributes
                .get("booking.id")
                .is_some_and(|v| v.contains(booking_id))
    })?;
    let by_id = |id: &str| {
        all.iter()
            .find(|s| s.span_id == id && s.trace_id == apply.trace_id)
    };
    let publish = by_id(&apply.parent)?;
    let http = by_id(&publish.parent)?;
    let record = all.iter().find(|s| {
        s.name == "record outcome" && s.parent == apply.span_id && s.trace_id == apply.trace_id
    })?;
    let reply = all.iter().find(|s| {
        s.name == "reply to api" && s.parent == record.span_id && s.trace_id == apply.trace_id
    })?;
    assert_eq!(publish.name, "publish command");
    Some([
        http.clone(),
        publish.clone(),
        apply.clone(),
        record.clone(),
        reply.clone(),
    ])
}
