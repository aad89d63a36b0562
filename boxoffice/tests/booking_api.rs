//! The booking path end to end, through the real broker, PostgreSQL and
//! Redis: one instance of each role.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, book, call};

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_4xx_with_a_stable_code() {
    let mut stack = Stack::new("badinput");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 2, 3, 10, 600).await;
    let (_, buyer) = stack.buyer_token(&api).await;
    let organizer = stack.organizer_token(&api).await;
    let bookings = format!("{api}/api/events/{event}/bookings");
    let h = &stack.http;

    let cases: Vec<(&str, (u16, Value), u16, &str)> = vec![
        ("no token", call(h, Method::POST, &bookings, None, Some(json!({"section": "A", "quantity": 1})), &[("Idempotency-Key", "k")]).await, 401, "unauthenticated"),
        ("forged token", call(h, Method::POST, &bookings, Some("buyer.x.y"), Some(json!({})), &[("Idempotency-Key", "k")]).await, 401, "invalid_token"),
        ("organizer books", call(h, Method::POST, &bookings, Some(&organizer), Some(json!({"section": "A", "quantity": 1})), &[("Idempotency-Key", "k")]).await, 403, "buyers_only"),
        ("buyer creates event", call(h, Method::POST, &format!("{api}/api/events"), Some(&buyer), Some(json!({})), &[]).await, 403, "organizers_only"),
        ("no idempotency key", call(h, Method::POST, &bookings, Some(&buyer), Some(json!({"section": "A", "quantity": 1})), &[]).await, 400, "missing_idempotency_key"),
        ("malformed json", call_raw(h, &bookings, &buyer, "{not json").await, 400, "malformed_json"),
        ("unknown field", book(&stack, &api, &event, &buyer, "k1", json!({"section": "A", "quantity": 1, "x": 1})).await, 400, "malformed_json"),
        ("unknown event", book(&stack, &api, "0190aaaa-0000-7000-8000-000000000000", &buyer, "k2", json!({"section": "A", "quantity": 1})).await, 404, "unknown_event"),
        ("not a uuid", call(h, Method::GET, &format!("{api}/api/events/nope"), None, None, &[]).await, 404, "not_found"),
        ("unknown seat", book(&stack, &api, &event, &buyer, "k3", json!({"seats": ["A-9-1"]})).await, 422, "unknown_seat"),
        ("malformed seat", book(&stack, &api, &event, &buyer, "k4", json!({"seats": ["A1"]})).await, 422, "invalid_seat"),
        ("duplicate seat", book(&stack, &api, &event, &buyer, "k5", json!({"seats": ["A-1-1", "A-1-1"]})).await, 422, "duplicate_seat"),
        ("unknown section", book(&stack, &api, &event, &buyer, "k6", json!({"section": "Z", "quantity": 1})).await, 422, "unknown_section"),
        ("zero quantity", book(&stack, &api, &event, &buyer, "k7", json!({"section": "A", "quantity": 0})).await, 422, "invalid_quantity"),
        ("too many", book(&stack, &api, &event, &buyer, "k8", json!({"section": "A", "quantity": 5})).await, 422, "invalid_quantity"),
        ("both forms", book(&stack, &api, &event, &buyer, "k9", json!({"seats": ["A-1-1"], "section": "A", "quantity": 1})).await, 422, "invalid_selection"),
        ("unknown route", call(h, Method::GET, &format!("{api}/api/nothing"), None, None, &[]).await, 404, "not_found"),
        ("unknown booking", call(h, Method::GET, &format!("{api}/api/bookings/0190aaaa-0000-7000-8000-000000000000"), Some(&buyer), None, &[]).await, 404, "unknown_booking"),
        ("bad event layout", call(h, Method::POST, &format!("{api}/api/events"), Some(&organizer), Some(json!({
            "name": "x", "starts_at": "2030-01-01T00:00:00Z", "sale_opens_at": "2029-01-01T00:00:00Z", "sale_closes_at": "2028-01-01T00:00:00Z",
            "venue": {"name": "v", "sections": []}, "price_categories": []})), &[]).await, 422, "invalid_event"),
    ];
    for (name, (status, body), want_status, want_code) in cases {
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["code"], want_code, "{name}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: a message for humans"
        );
    }

    // The contract is published: every route with its error codes.
    let (status, doc) = call(
        h,
        Method::GET,
        &format!("{api}/api/openapi.json"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{doc}"
    );
    assert!(doc["paths"]["/api/events/{id}/bookings"]["post"]["responses"]["409"].is_object());

    let (status, body) = call(
        h,
        Method::POST,
        &format!("{api}/api/events/{event}/sale"),
        Some(&organizer),
        Some(json!({"open": false})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sale_state"], "closed");
    let (status, body) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "k10",
        json!({"section": "A", "quantity": 1}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("sale_not_open")),
        "{body}"
    );
    // Reopened: bookable at once, though the instance keeps events for a
    // moment (crate::event_cache never serves a view that would refuse).
    let (status, body) = call(
        h,
        Method::POST,
        &format!("{api}/api/events/{event}/sale"),
        Some(&organizer),
        Some(json!({"open": true})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "k11",
        json!({"section": "A", "quantity": 1}),
    )
    .await;
    assert!(matches!(status, 201 | 202), "reopened: {status} {body}");
}

async fn call_raw(h: &reqwest::Client, url: &str, token: &str, raw: &str) -> (u16, Value) {
    let res = h
        .post(url)
        .bearer_auth(token)
        .header("Idempotency-Key", "raw")
        .header("Content-Type", "application/json")
        .body(raw.to_owned())
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_booking_is_held_replayed_confirmed_and_streamed_live() {
    let mut stack = Stack::new("happy");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 2, 3, 10, 600).await;
    let (buyer_id, buyer) = stack.buyer_token(&api).await;
    let (_, other) = stack.buyer_token(&api).await;

    // A second browser watches the seat map live.
    let mut stream = stack
        .http
        .get(format!("{api}/api/events/{event}/seats/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    let (status, held) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "first",
        json!({"seats": ["A-1-4", "A-1-5"]}),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["status"], "held");
    assert_eq!(held["buyer_id"], buyer_id.as_str());
    assert_eq!(held["total_cents"], 2 * 12900);
    assert!(
        held.get("fingerprint").is_none(),
        "internal fields stay internal"
    );
    let id = held["id"].as_str().unwrap().to_owned();

    let mut seen = String::new();
    while !seen.contains("A-1-5") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("seat change streamed")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("event: seats") && seen.contains("\"held\""),
        "{seen}"
    );
    // Each message says when it was published, so a watcher can tell how
    // late it sees a change.
    let published: i64 = seen
        .split("\"published_at_ms\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no publication time in {seen}"));
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        (now - 60_000..=now).contains(&published),
        "published at {published}, now {now}"
    );

    let (status, again) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "first",
        json!({"seats": ["A-1-4", "A-1-5"]}),
    )
    .await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(id.as_str())),
        "a replay returns the same booking: {again}"
    );
    let (status, reused) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "first",
        json!({"seats": ["A-1-6"]}),
    )
    .await;
    assert_eq!(
        (status, reused["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{reused}"
    );
    let (status, taken) = book(
        &stack,
        &api,
        &event,
        &other,
        "o1",
        json!({"seats": ["A-1-5", "A-1-6"]}),
    )
    .await;
    assert_eq!(
        (status, taken["code"].as_str()),
        (409, Some("seats_taken")),
        "{taken}"
    );
    let (status, body) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/bookings/{id}"),
        Some(&other),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_your_booking"))
    );

    let (status, seats) = stack.seat_map(&api, &event).await;
    assert_eq!(status, 200);
    assert_eq!(seats["seats"]["A-1-4"], "held");
    assert_eq!(seats["sections"][0]["held"], 2);
    assert_eq!(seats["sections"][0]["free"], 28);
    // The compact form: one character per seat in layout order.
    let compact = |q: &'static str| {
        let url = format!("{api}/api/events/{event}/seats?encoding={q}");
        let http = stack.http.clone();
        async move {
            let res = http.get(url).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, packed) = compact("compact").await;
    assert_eq!(status, 200, "{packed}");
    assert_eq!(
        packed["sections"][0]["states"],
        format!("...hh{}", ".".repeat(25)).as_str()
    );
    assert_eq!(packed["sections"][1]["states"], ".".repeat(30).as_str());
    assert_eq!(packed["seats"], json!({}), "{packed}");
    let (status, refused) = compact("everything").await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("invalid_query")),
        "{refused}"
    );

    let confirm_url = format!("{api}/api/bookings/{id}/confirm");
    let (status, confirmed) = call(
        &stack.http,
        Method::POST,
        &confirm_url,
        Some(&buyer),
        Some(json!({"payment_reference": "psp-123"})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["payment_reference"], "psp-123");
    let (status, body) = call(
        &stack.http,
        Method::DELETE,
        &format!("{api}/api/bookings/{id}"),
        Some(&buyer),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_confirmed"))
    );

    // Best-available, then cancel: the seats come back.
    let (status, best) = book(
        &stack,
        &api,
        &event,
        &other,
        "o2",
        json!({"section": "B", "quantity": 3}),
    )
    .await;
    assert_eq!(status, 201, "{best}");
    let seats_b: Vec<String> = best["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seats_b.len(), 3);
    assert!(
        seats_b.iter().all(|s| s.starts_with("B-1-")),
        "best row first: {seats_b:?}"
    );
    let best_id = best["id"].as_str().unwrap();
    let (status, cancelled) = call(
        &stack.http,
        Method::DELETE,
        &format!("{api}/api/bookings/{best_id}"),
        Some(&other),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    let (_, seats) = stack.seat_map(&api, &event).await;
    assert_eq!(seats["seats"]["A-1-4"], "sold");
    assert!(
        seats["seats"].get(&seats_b[0]).is_none(),
        "cancelled seats are free again: {seats}"
    );

    // The cache is only a cache: wipe it and the API rebuilds it from PostgreSQL.
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", stack.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    redis::cmd("DEL")
        .arg(&keys)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let (status, seats) = stack.seat_map(&api, &event).await;
    assert_eq!(status, 200, "{seats}");
    assert_eq!(
        seats["seats"]["A-1-4"], "sold",
        "rebuilt from PostgreSQL: {seats}"
    );
    let (status, body) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/bookings/{id}"),
        Some(&buyer),
        None,
        &[],
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("confirmed")));
    let (status, list) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        list["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == event.as_str()),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn holds_expire_and_a_late_confirm_is_refused() {
    let mut stack = Stack::new("expiry");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 1, 2, 6, 2).await;
    let (_, buyer) = stack.buyer_token(&api).await;
    let (status, held) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "e1",
        json!({"seats": ["A-1-1", "A-1-2"]}),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    let id = held["id"].as_str().unwrap().to_owned();

    let mut status_now = String::new();
    for _ in 0..100 {
        let (_, b) = call(
            &stack.http,
            Method::GET,
            &format!("{api}/api/bookings/{id}"),
            Some(&buyer),
            None,
            &[],
        )
        .await;
        status_now = b["status"].as_str().unwrap_or_default().to_owned();
        if status_now == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status_now, "expired", "the hold expired by itself");
    let (_, seats) = stack.seat_map(&api, &event).await;
    assert!(
        seats["seats"].as_object().unwrap().is_empty(),
        "expired seats are free: {seats}"
    );
    let (status, body) = call(
        &stack.http,
        Method::POST,
        &format!("{api}/api/bookings/{id}/confirm"),
        Some(&buyer),
        Some(json!({"payment_reference": "late"})),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("hold_expired")),
        "{body}"
    );
    let (_, other) = stack.buyer_token(&api).await;
    let (status, body) = book(
        &stack,
        &api,
        &event,
        &other,
        "e2",
        json!({"seats": ["A-1-1"]}),
    )
    .await;
    assert_eq!(status, 201, "released seats can be booked again: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn organizers_see_live_sale_figures_that_buyers_cannot() {
    let mut stack = Stack::new("stats");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 1, 2, 5, 600).await;
    let organizer = stack.organizer_token(&api).await;
    let (buyer_id, buyer) = stack.buyer_token(&api).await;
    let (_, rival) = stack.buyer_token(&api).await;
    let stats_url = format!("{api}/api/events/{event}/stats");

    // Who a token belongs to; no token or a forged one is refused.
    let session = format!("{api}/api/auth/session");
    let (status, me) = call(&stack.http, Method::GET, &session, Some(&buyer), None, &[]).await;
    assert_eq!(
        (status, me["role"].as_str(), me["id"].as_str()),
        (200, Some("buyer"), Some(buyer_id.as_str()))
    );
    let (status, me) = call(
        &stack.http,
        Method::GET,
        &session,
        Some(&organizer),
        None,
        &[],
    )
    .await;
    assert_eq!((status, me["role"].as_str()), (200, Some("organizer")));
    let (status, body) = call(&stack.http, Method::GET, &session, None, None, &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, body) = call(
        &stack.http,
        Method::GET,
        &session,
        Some("forged.token"),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );

    // Buyers cannot read the figures.
    let (status, body) = call(
        &stack.http,
        Method::GET,
        &stats_url,
        Some(&buyer),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("organizers_only"))
    );

    // One booking paid, one refused because its seat was taken.
    let (status, held) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "s-1",
        json!({ "seats": ["A-1-1", "A-1-2"] }),
    )
    .await;
    assert_eq!(status, 201, "{held}");
    let id = held["id"].as_str().unwrap();
    let (status, paid) = call(
        &stack.http,
        Method::POST,
        &format!("{api}/api/bookings/{id}/confirm"),
        Some(&buyer),
        Some(json!({ "payment_reference": "pay-1" })),
        &[("Idempotency-Key", "s-1-confirm")],
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    let (status, _) = book(
        &stack,
        &api,
        &event,
        &rival,
        "s-2",
        json!({ "seats": ["A-1-2"] }),
    )
    .await;
    assert_eq!(status, 409);

    // The figures catch up with PostgreSQL (the outcome is recorded asynchronously).
    let started = std::time::Instant::now();
    let stats = loop {
        let (status, stats) = call(
            &stack.http,
            Method::GET,
            &stats_url,
            Some(&organizer),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 200, "{stats}");
        if stats["bookings"]["decided"] == 2 && stats["sold"] == 2 {
            break stats;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "figures never caught up: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stats["capacity"], 10);
    assert_eq!(stats["free"], 8);
    assert_eq!(stats["held"], 0);
    assert_eq!(
        stats["bookings"]["by_status"],
        json!({ "confirmed": 1, "rejected": 1 })
    );
    assert_eq!(stats["bookings"]["rejections"], json!({ "seats_taken": 1 }));
    let price = held["total_cents"].as_i64().unwrap();
    assert!(price > 0);
    assert_eq!(stats["bookings"]["revenue_cents"], price);
    assert_eq!(stats["currency"], "EUR");

    // An unknown event is a 404, not an empty tally.
    let (status, body) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events/{}/stats", uuid::Uuid::new_v4()),
        Some(&organizer),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_event"))
    );
}
