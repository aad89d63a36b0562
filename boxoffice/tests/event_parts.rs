//! One event decided in two parts, on two partitions, by two seat-processors
//! (docs/event-partitioning.md): the per-buyer limit holds over both parts,
//! under a crowd and against one buyer hammering both at once; a pick across
//! parts is refused; confirmations, cancellations and expiries reach the
//! part that holds the seats; and PostgreSQL, Redis and the seat-processors
//! agree seat by seat afterwards.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, book, booked, call, settled_booking, stores};
use uuid::Uuid;

const SECTIONS: [&str; 4] = ["A", "B", "C", "D"];

/// Per partition of `event`, the copy that applied the most over every
/// seat-processor: partition -> (applied, seats).
async fn processor_parts(
    stack: &Stack,
    instances: &[&str],
    event: &str,
) -> BTreeMap<i64, (i64, stores::Seats)> {
    let mut newest: BTreeMap<i64, (i64, stores::Seats)> = BTreeMap::new();
    for instance in instances {
        let url = format!(
            "http://127.0.0.1:{}/internal/state/events/{event}",
            stack.roles[*instance].port
        );
        let res = stack.http.get(&url).send().await.unwrap();
        if res.status() == 404 {
            continue;
        }
        let body: Value = res.json().await.unwrap();
        for p in body["partitions"].as_array().unwrap() {
            let partition = p["partition"].as_i64().unwrap();
            let applied = p["applied"].as_i64().unwrap_or(-1);
            let seats: stores::Seats = p["seats"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(s, v)| (s.clone(), v["booking"].as_str().unwrap().parse().unwrap()))
                .collect();
            if newest.get(&partition).is_none_or(|(a, _)| applied > *a) {
                newest.insert(partition, (applied, seats));
            }
        }
    }
    newest
}

#[derive(QueryableByName)]
struct BuyerSeats {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    buyer_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seats: i64,
}

/// Seats each buyer holds or owns in PostgreSQL.
async fn seats_per_buyer(stack: &Stack, event: &str) -> BTreeMap<Uuid, i64> {
    let mut conn = AsyncPgConnection::establish(&stack.database_url())
        .await
        .unwrap();
    let rows: Vec<BuyerSeats> = diesel::sql_query(
        "SELECT b.buyer_id, count(*) AS seats FROM booking_seats s JOIN bookings b ON b.id = s.booking_id \
         WHERE s.event_id = $1 AND s.active GROUP BY b.buyer_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(event.parse::<Uuid>().unwrap())
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.buyer_id, r.seats)).collect()
}

/// Books `body` with fresh keys until it is held (a release travels to the
/// buyer's home part on its own time); the held booking.
async fn booked_eventually(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    key: &str,
    body: Value,
) -> Value {
    let started = Instant::now();
    for attempt in 0.. {
        let (s, b) = booked(
            stack,
            api,
            event,
            token,
            &format!("{key}-{attempt}"),
            body.clone(),
        )
        .await;
        if s == 200 || s == 201 {
            return b;
        }
        assert_eq!(b["code"], "buyer_limit_exceeded", "{s} {b}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still refused after 20 s: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_in_two_parts_keeps_the_buyer_limit_and_the_seat_map() {
    let mut stack = Stack::new("parts");
    stack.start("reservation-processor", "reservation-1").await;
    stack.start("seat-processor", "seat-1").await;
    stack.start("seat-processor", "seat-2").await;
    stack.start("api", "api-1").await;
    let api = stack.api("api-1");
    let event = stack.create_event_in_parts(&api, 4, 2, 5, 600, 2).await;

    // Both parts exist, on two partitions (whichever instance owns them).
    let started = Instant::now();
    loop {
        let parts = processor_parts(&stack, &["seat-1", "seat-2"], &event).await;
        if parts.len() == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "parts: {parts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The limit (4) over both parts: A and C are part 0, B and D part 1.
    let (_, buyer) = stack.buyer_token(&api).await;
    // Each row: key, section, seats, and whether the limit refuses it.
    let mut held = BTreeMap::new();
    for (key, section, quantity, refused) in [
        ("a3", "A", 3, false),
        ("b2", "B", 2, true),
        ("d1", "D", 1, false),
        ("c1", "C", 1, true),
    ] {
        let body = json!({"section": section, "quantity": quantity});
        let (s, b) = booked(&stack, &api, &event, &buyer, key, body).await;
        if refused {
            assert_eq!(
                (s, b["code"].as_str()),
                (409, Some("buyer_limit_exceeded")),
                "{key}: {b}"
            );
        } else {
            assert!(s == 200 || s == 201, "{key}: {s} {b}");
            held.insert(key, b["id"].as_str().unwrap().to_owned());
        }
    }
    // A pick across parts is refused at once.
    let (s, b) = book(
        &stack,
        &api,
        &event,
        &buyer,
        "ab",
        json!({"seats": ["A-2-5", "B-2-5"]}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("seats_in_several_parts")),
        "{b}"
    );

    // Paying for the part-1 booking reaches part 1; cancelling the part-0
    // one frees its seats and, at the buyer's home part, its count.
    let d1 = &held["d1"];
    let (s, paid) = call(
        &stack.http,
        Method::POST,
        &format!("{api}/api/bookings/{d1}/confirm"),
        Some(&buyer),
        Some(json!({"payment_reference": "psp-d1"})),
        &[],
    )
    .await;
    assert_eq!(
        (s, paid["status"].as_str()),
        (200, Some("confirmed")),
        "{paid}"
    );
    let a3 = &held["a3"];
    let (s, cancelled) = call(
        &stack.http,
        Method::DELETE,
        &format!("{api}/api/bookings/{a3}"),
        Some(&buyer),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (s, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    let b3 = booked_eventually(
        &stack,
        &api,
        &event,
        &buyer,
        "b3",
        json!({"section": "B", "quantity": 3}),
    )
    .await;
    assert_eq!(b3["seats"].as_array().unwrap().len(), 3);

    // One buyer fires at both parts at once; a crowd books alongside.
    let (bot_id, bot) = stack.buyer_token(&api).await;
    let mut tasks = tokio::task::JoinSet::new();
    // (is the bot, token, key, body) for every request, sent all at once.
    let mut requests = Vec::new();
    for n in 0..24 {
        let body = json!({"section": SECTIONS[n % 4], "quantity": 1 + n % 2});
        requests.push((true, bot.clone(), format!("bot-{n}"), body));
    }
    for n in 0..12 {
        let (_, token) = stack.buyer_token(&api).await;
        let body = json!({"section": SECTIONS[(n + 1) % 4], "quantity": 2});
        requests.push((false, token, format!("crowd-{n}"), body));
    }
    for (is_bot, token, key, body) in requests {
        let (http, url) = (
            stack.http.clone(),
            format!("{api}/api/events/{event}/bookings"),
        );
        tasks.spawn(async move {
            let headers = [("Idempotency-Key", key.as_str())];
            let answer = call(
                &http,
                Method::POST,
                &url,
                Some(&token),
                Some(body),
                &headers,
            )
            .await;
            (is_bot, answer)
        });
    }
    let mut bot_ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (is_bot, (s, b)) = r.unwrap();
        assert!(matches!(s, 200 | 201 | 202 | 409), "{s} {b}");
        if is_bot && let Some(id) = b["id"].as_str() {
            bot_ids.push(id.to_owned());
        }
    }
    // Every request is decided in the end, none left pending between parts.
    for id in &bot_ids {
        let b = settled_booking(&stack, &api, &bot, id).await;
        assert!(
            matches!(b["status"].as_str(), Some("held" | "rejected")),
            "{b}"
        );
    }

    // The stores agree, and no buyer holds more than the limit anywhere.
    let settled = stores::settled(&stack, &event, &SECTIONS).await;
    let started = Instant::now();
    let rocks = loop {
        let parts = processor_parts(&stack, &["seat-1", "seat-2"], &event).await;
        let rocks: stores::Seats = parts.into_values().flat_map(|(_, s)| s).collect();
        if rocks == settled || started.elapsed() > Duration::from_secs(30) {
            break rocks;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        rocks, settled,
        "the seat-processors differ from PostgreSQL and Redis"
    );
    let per_buyer = seats_per_buyer(&stack, &event).await;
    for (b, n) in &per_buyer {
        assert!(*n <= 4, "buyer {b} holds {n} seats over both parts");
    }
    let bot_uuid: Uuid = bot_id.parse().unwrap();
    assert!(
        per_buyer.get(&bot_uuid).copied().unwrap_or(0) >= 1,
        "the bot got nothing at all"
    );
    let taken: BTreeSet<&String> = settled.keys().collect();
    assert!(
        taken.len() >= 4 + 12,
        "the crowd booked too little: {}",
        taken.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_outside_the_home_part_expires_there_and_frees_the_buyers_count() {
    let mut stack = Stack::new("parts-expiry");
    stack.start("reservation-processor", "reservation-1").await;
    stack.start("seat-processor", "seat-1").await;
    stack.start("api", "api-1").await;
    let api = stack.api("api-1");
    let event = stack.create_event_in_parts(&api, 2, 2, 5, 2, 2).await;
    let (_, buyer) = stack.buyer_token(&api).await;
    // Four seats in each part in turn: one of the two is not the buyer's
    // home part, so its hold is counted there and handed back on expiry.
    for (round, section) in ["A", "B", "A"].iter().enumerate() {
        let held = booked_eventually(
            &stack,
            &api,
            &event,
            &buyer,
            &format!("round-{round}"),
            json!({"section": section, "quantity": 4}),
        )
        .await;
        let id = held["id"].as_str().unwrap();
        let started = Instant::now();
        loop {
            let b = settled_booking(&stack, &api, &buyer, id).await;
            if b["status"] == "expired" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "hold never expired: {b}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let (_, seats) = stack.seat_map(&api, &event).await;
    assert!(seats["seats"].as_object().unwrap().is_empty(), "{seats}");
}
