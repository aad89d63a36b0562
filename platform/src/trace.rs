//! W3C trace context across the asynchronous hops of a booking: Kafka
//! message headers (API -> seat-processor -> reservation-processor) and the
//! reply over Redis (-> API). One booking is one trace.
//!
//! Without an OTLP endpoint the spans have no OpenTelemetry context and
//! nothing is injected: the headers simply stay absent.

use std::collections::HashMap;

use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Trace context as text fields (`traceparent`, `tracestate`).
pub type Carrier = HashMap<String, String>;

/// The W3C trace context of `span`.
pub fn carrier_of(span: &tracing::Span) -> Carrier {
    let mut carrier = Carrier::new();
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier
}

/// `headers` with the trace context of `carrier` appended.
pub fn with_headers(mut headers: OwnedHeaders, carrier: &Carrier) -> OwnedHeaders {
    for (key, value) in carrier {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    headers
}

/// The trace context a Kafka message carries.
pub fn carrier_from_headers(headers: Option<&BorrowedHeaders>) -> Carrier {
    let mut carrier = Carrier::new();
    if let Some(headers) = headers {
        for h in headers.iter() {
            if matches!(h.key, "traceparent" | "tracestate")
                && let Some(v) = h.value
            {
                carrier.insert(h.key.to_owned(), String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    carrier
}

/// Makes `span` a child of the remote span in `carrier` (no-op when empty).
pub fn continue_from(span: &tracing::Span, carrier: &Carrier) {
    if carrier.is_empty() {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    let _ = span.set_parent(cx);
}

/// The trace id of `span` (hex), for logs and tests; `None` without OTLP.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_round_trips_through_kafka_headers() {
        let mut carrier = Carrier::new();
        carrier.insert(
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        let headers = with_headers(OwnedHeaders::new(), &carrier);
        let back: Carrier = headers
            .iter()
            .filter_map(|h| Some((h.key.to_owned(), String::from_utf8(h.value?.to_vec()).ok()?)))
            .collect();
        assert_eq!(back, carrier);
    }
}
