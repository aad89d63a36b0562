//! Overload: more buyers at once than an API instance lets into the
//! pipeline. The rest are answered at once with `503 overloaded` and
//! `Retry-After` (never a timeout), a retry with the same key gets through,
//! and nothing is sold twice. A buyer's payment is never refused for load.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Stack, decided, hold_and_pay};

/// One booking request: status, Retry-After, body, time to the answer.
async fn request(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    key: &str,
) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let res = stack
        .http
        .post(format!("{api}/api/events/{event}/bookings"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "section": "A", "quantity": 1 }))
        .send()
        .await
        .expect("answered");
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, retry_after, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn buyers_above_the_admission_limit_are_answered_at_once_and_get_in_on_retry() {
    let mut stack = Stack::new("overload");
    stack.start("reservation-processor", "reservation-1").await;
    stack.start("seat-processor", "seat-1").await;
    // At most 4 booking requests in flight, so 120 at once must shed most.
    stack
        .start_with("api", "api-1", &[("BOXOFFICE_ADMISSION_MAX", "4")])
        .await;
    let api = stack.api("api-1");
    let event = stack.create_event(&api, 1, 20, 10, 600).await;
    let mut buyers = Vec::new();
    for _ in 0..120 {
        buyers.push(stack.buyer_token(&api).await.1);
    }

    let first = futures::future::join_all(buyers.iter().enumerate().map(|(i, token)| {
        let (stack, api, event) = (&stack, &api, &event);
        async move { request(stack, api, event, token, &format!("k{i}")).await }
    }))
    .await;
    let mut shed = Vec::new();
    for (i, (status, retry_after, body, took)) in first.iter().enumerate() {
        match status {
            503 => {
                assert_eq!(body["code"], "overloaded", "{body}");
                assert_eq!(
                    retry_after.as_deref(),
                    Some("1"),
                    "503 overloaded tells when to retry"
                );
                assert!(
                    body["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{body}"
                );
                assert!(
                    *took < Duration::from_secs(2),
                    "a shed request is answered at once, not after a timeout: {took:?}"
                );
                shed.push(i);
            }
            201 | 202 => {}
            other => panic!("request {i}: unexpected {other}: {body}"),
        }
    }
    assert!(
        shed.len() >= 20,
        "with 4 admitted at a time, many of 120 simultaneous requests are shed, got {}",
        shed.len()
    );
    let metrics = stack.metrics("api-1").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("boxoffice_api_commands_total{")
                && l.contains(r#"kind="request_booking""#)
                && l.contains(r#"result="overloaded""#)),
        "shed requests are counted"
    );

    // Retried with the same key after Retry-After, every one gets in, once.
    let mut bookings: HashMap<usize, Value> = HashMap::new();
    let mut pending = shed;
    let started = Instant::now();
    while !pending.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} buyers still shed after 2 min of retries",
            pending.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut still = Vec::new();
        for i in pending {
            let (status, _, body, _) =
                request(&stack, &api, &event, &buyers[i], &format!("k{i}")).await;
            match status {
                503 if body["code"] == "overloaded" => still.push(i),
                200..=202 => {
                    let (s, b) = decided(&stack, &api, &buyers[i], status, body).await;
                    assert!(s == 200 || s == 201, "{s} {b}");
                    bookings.insert(i, b);
                }
                other => panic!("retry of {i}: unexpected {other}: {body}"),
            }
        }
        pending = still;
    }
    for (i, (status, _, body, _)) in first.into_iter().enumerate() {
        if status == 201 || status == 202 {
            let (s, b) = decided(&stack, &api, &buyers[i], status, body).await;
            assert!(s == 200 || s == 201, "{s} {b}");
            bookings.insert(i, b);
        }
    }
    assert_eq!(bookings.len(), 120, "every buyer got one booking");
    let mut owner: HashMap<String, String> = HashMap::new();
    for b in bookings.values() {
        for seat in b["seats"].as_array().unwrap() {
            let id = b["id"].as_str().unwrap().to_owned();
            if let Some(other) = owner.insert(seat.as_str().unwrap().to_owned(), id.clone()) {
                panic!("seat {seat} given to {other} and {id}");
            }
        }
    }
    assert_eq!(owner.len(), 120);

    // Payments go through whatever the load: 40 at once against a limit of 4.
    let payer = stack.buyer_token(&api).await.1;
    let confirmed = hold_and_pay(
        &stack,
        &api,
        &event,
        &payer,
        "pay-1",
        json!({ "section": "A", "quantity": 2 }),
    )
    .await;
    assert_eq!(confirmed["status"], "confirmed");
    let confirms = futures::future::join_all(bookings.iter().take(40).map(|(i, b)| {
        let url = format!("{api}/api/bookings/{}/confirm", b["id"].as_str().unwrap());
        let (stack, token) = (&stack, &buyers[*i]);
        async move {
            let res = stack
                .http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "payment_reference": "card" }))
                .send()
                .await
                .expect("answered");
            res.status().as_u16()
        }
    }))
    .await;
    assert!(
        confirms.iter().all(|s| *s == 200 || *s == 202),
        "no payment is shed: {confirms:?}"
    );
}
