//! Dependencies failing under a running system: the broker crashes, the
//! database connection is cut. Readiness and the write path answer 503 (or
//! defer) while they are gone, the system recovers by itself when they come
//! back, and no acknowledged booking is lost.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::proxy::Proxy;
use support::{Broker, Stack, book, call, settled_booking, wait_status};

/// Waits until every role of `running_with_a_booking` is ready again.
async fn all_ready_again(stack: &Stack) {
    for instance in ["api-1", "seat-1", "reservation-1"] {
        let ready = stack.ready_url(instance);
        wait_status(stack, &ready, None, 200, Duration::from_secs(60)).await;
    }
}

/// Books until the system decides, as a client retrying 503s with the same
/// key would (for up to 60 s); follows a 202. The decided booking, or the
/// refusal's status and body.
async fn book_once_back(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    key: &str,
    body: Value,
) -> Result<Value, (u16, Value)> {
    let started = Instant::now();
    loop {
        let (status, answer) = book(stack, api, event, token, key, body.clone()).await;
        match status {
            200 | 201 => return Ok(answer),
            202 => {
                return Ok(
                    settled_booking(stack, api, token, answer["id"].as_str().unwrap()).await,
                );
            }
            503 if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => return Err((status, answer)),
        }
    }
}

/// Starts one of each role, creates an event and holds seat A-1-1: the
/// booking acknowledged before the fault. Returns (api, event, token, booking).
async fn running_with_a_booking(stack: &mut Stack) -> (String, String, String, Value) {
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 1, 4, 10, 600).await;
    let (_, token) = stack.buyer_token(&api).await;
    let (status, before) = book(
        stack,
        &api,
        &event,
        &token,
        "before",
        json!({ "seats": ["A-1-1"] }),
    )
    .await;
    assert_eq!(status, 201, "{before}");
    (api, event, token, before)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_crash_answers_503_and_the_system_recovers_without_losing_bookings() {
    let mut stack = Stack::new("broker-down");
    let mut broker = Broker::start(stack.dir.join("broker")).await;
    stack.use_broker(&broker);
    let (api, event, token, before) = running_with_a_booking(&mut stack).await;

    broker.kill();
    for instance in ["api-1", "seat-1", "reservation-1"] {
        let ready = stack.ready_url(instance);
        let report = wait_status(&stack, &ready, None, 503, Duration::from_secs(30)).await;
        assert_ne!(report["checks"]["kafka"], "ok", "{instance}: {report}");
    }
    let (status, refused) = book(
        &stack,
        &api,
        &event,
        &token,
        "during",
        json!({ "seats": ["A-1-2"] }),
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["code"], "unavailable");
    assert!(refused["message"].as_str().is_some_and(|m| !m.is_empty()));

    broker.restart().await;
    all_ready_again(&stack).await;
    // The booking acknowledged before the crash is still there, the refused
    // one can be retried with its key, and new bookings flow again.
    let kept = settled_booking(&stack, &api, &token, before["id"].as_str().unwrap()).await;
    assert_eq!(kept["status"], "held");
    let retried = book_once_back(
        &stack,
        &api,
        &event,
        &token,
        "during",
        json!({ "seats": ["A-1-2"] }),
    )
    .await
    .unwrap_or_else(|(status, body)| panic!("booking after recovery: {status} {body}"));
    assert_eq!(retried["status"], "held", "{retried}");
    assert_eq!(retried["seats"], json!(["A-1-2"]));
    let (status, after) = book(
        &stack,
        &api,
        &event,
        &token,
        "after",
        json!({ "seats": ["A-1-3"] }),
    )
    .await;
    assert!(matches!(status, 201 | 202), "{status} {after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_defers_bookings_and_records_them_when_it_returns() {
    let mut stack = Stack::new("db-down");
    let mut pg = Proxy::start("127.0.0.1:5432").await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        pg.port, stack.database
    );
    stack.extra_env.push(("DATABASE_URL".into(), url));
    let (api, event, token, before) = running_with_a_booking(&mut stack).await;

    pg.cut();
    let ready = stack.ready_url("reservation-1");
    let report = wait_status(&stack, &ready, None, 503, Duration::from_secs(30)).await;
    assert_ne!(report["checks"]["postgres"], "ok", "{report}");

    // The queue still takes the booking; its outcome cannot be recorded, so
    // the buyer gets the deferred answer (202 + where to look), not an error.
    let (status, deferred) = book(
        &stack,
        &api,
        &event,
        &token,
        "during",
        json!({ "seats": ["A-1-2"] }),
    )
    .await;
    assert_eq!(status, 202, "{deferred}");
    let id = deferred["id"].as_str().unwrap().to_owned();
    let (status, pending) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/bookings/{id}?wait_ms=500"),
        Some(&token),
        None,
        &[],
    )
    .await;
    // Whether it is recorded cannot be told while the database is away: a
    // 503 with a reason, and the client polls again.
    assert_eq!(status, 503, "while the database is away: {pending}");
    assert_eq!(pending["code"], "unavailable");

    pg.restore().await;
    wait_status(&stack, &ready, None, 200, Duration::from_secs(60)).await;
    let recorded = settled_booking(&stack, &api, &token, &id).await;
    assert_eq!(recorded["status"], "held", "{recorded}");
    assert_eq!(recorded["seats"], json!(["A-1-2"]));
    let kept = settled_booking(&stack, &api, &token, before["id"].as_str().unwrap()).await;
    assert_eq!(kept["status"], "held");
}

/// A 503 means the command is given up: it must not turn up later and take
/// seats the buyer was told it could not book (a retry with a new key would
/// then hold twice). The producer's delivery timeout ends before the 503.
#[tokio::test(flavor = "multi_thread")]
async fn a_booking_answered_503_is_not_applied_when_the_broker_returns() {
    let mut stack = Stack::new("late-503");
    let mut broker = Broker::start(stack.dir.join("broker")).await;
    stack.use_broker(&broker);
    let (api, event, token, _) = running_with_a_booking(&mut stack).await;

    broker.kill();
    let started = Instant::now();
    let (status, refused) = book(
        &stack,
        &api,
        &event,
        &token,
        "lost",
        json!({ "seats": ["A-1-2"] }),
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("same Idempotency-Key")),
        "the 503 says how to retry: {refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered within the publish timeout"
    );
    // The broker comes back at once: a command still queued in the producer
    // would be delivered now and hold A-1-2.
    broker.restart().await;
    all_ready_again(&stack).await;
    let (_, rival) = stack.buyer_token(&api).await;
    let taken = book_once_back(
        &stack,
        &api,
        &event,
        &rival,
        "rival",
        json!({ "seats": ["A-1-2"] }),
    )
    .await
    .unwrap_or_else(|(status, body)| {
        panic!("A-1-2 must still be free after the 503: {status} {body}")
    });
    assert_eq!(taken["status"], "held", "{taken}");
    // The first buyer's retry with its key is decided once, like any other.
    let (status, retried) = book(
        &stack,
        &api,
        &event,
        &token,
        "lost",
        json!({ "seats": ["A-1-2"] }),
    )
    .await;
    assert_eq!(
        (status, retried["code"].as_str()),
        (409, Some("seats_taken")),
        "{retried}"
    );
}
