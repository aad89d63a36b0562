//! Bounded state: refused attempts and finished events do not grow the
//! system forever (docs/seat-state-protocol.md, "Bounded state").
//! - A refusal answers retries of its key, then is forgotten: by the
//!   seat-processor once command time passes `REFUSAL_TTL_MS` (written to the
//!   changelog as a `Forgotten` record), by PostgreSQL after
//!   `BOXOFFICE_REFUSAL_RETENTION_SECS`, while the organizer's figures keep
//!   counting it.
//! - An event over for `RETIRE_AFTER_MS` is retired: its seats and bookings
//!   leave the seat-processor's state and the changelog's live namespace, a
//!   fresh instance restores it retired, every later request is refused, and
//!   PostgreSQL keeps the sale.
//!
//! Command time is moved on by appending commands stamped in the future, the
//! way a long on-sale's clock moves it.

mod support;

use std::time::{Duration, Instant};

use boxoffice_domain::{
    BookingId, BuyerId, Command, CommandKind, EventId, REFUSAL_TTL_MS, RETIRE_AFTER_MS,
};
use boxoffice_platform::messages::{
    CommandEnvelope, StateRecord, decode_changelog, encode_command,
};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use reqwest::Method;
use serde_json::{Value, json};
use support::kafka;
use support::stores::{self, PARTITIONS};
use support::{Stack, book, call, decided, hold_and_pay};
use uuid::Uuid;

/// The seat-processor's own view of the event, once `ready` accepts it.
async fn processor_view(
    stack: &Stack,
    instance: &str,
    event: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        if let Some(p) = stores::processor_partition(stack, instance, event).await
            && ready(&p)
        {
            return p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{instance}'s state of {event} never got there:\n{}",
            stack.log_tail(instance, 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Appends a command for `event` stamped `at_ms` to its partition.
async fn command_at(stack: &Stack, event: &str, at_ms: i64) {
    let broker = stack.broker();
    let topic = format!("{}booking-commands", stack.prefix);
    let partition =
        tokio::task::block_in_place(|| kafka::partition_of(&broker, &topic, PARTITIONS, event));
    let envelope = CommandEnvelope {
        event_id: EventId(event.parse().unwrap()),
        reply_to: None,
        command: Command {
            at_ms,
            kind: CommandKind::ExpireHold {
                booking_id: BookingId(Uuid::new_v4()),
            },
        },
    };
    let record = (event.as_bytes().to_vec(), Some(encode_command(&envelope)));
    kafka::append(&broker, &topic, partition, &vec![record]).await;
}

/// The latest changelog value of every key of the event's partition.
fn changelog_latest(stack: &Stack, event: &str) -> Vec<(String, Option<StateRecord>)> {
    let broker = stack.broker();
    let commands = format!("{}booking-commands", stack.prefix);
    let changelog = format!("{}seat-changelog", stack.prefix);
    let partition = kafka::partition_of(&broker, &commands, PARTITIONS, event);
    let mut latest: Vec<(String, Option<StateRecord>)> = vec![];
    for (key, value) in kafka::read_partition(&broker, &changelog, partition) {
        let key = String::from_utf8(key).unwrap();
        let value = value.map(|v| decode_changelog(&v).unwrap().body);
        latest.retain(|(k, _)| *k != key);
        latest.push((key, value));
    }
    latest
}

/// A new buyer asks for `seat`; the refusal's code (or the status held).
async fn new_buyer_books(stack: &Stack, api: &str, event: &str, seat: &str) -> String {
    let (_, token) = stack.buyer_token(api).await;
    let (s, b) = book(stack, api, event, &token, seat, json!({ "seats": [seat] })).await;
    let (s, b) = decided(stack, api, &token, s, b).await;
    match s {
        409 | 422 => b["code"].as_str().unwrap_or_default().to_owned(),
        _ => b["status"].as_str().unwrap_or_default().to_owned(),
    }
}

async fn stats(stack: &Stack, api: &str, event: &str) -> Value {
    let token = stack.organizer_token(api).await;
    let url = format!("{api}/api/events/{event}/stats");
    let (s, body) = call(&stack.http, Method::GET, &url, Some(&token), None, &[]).await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_forgotten_and_a_finished_event_is_retired() {
    let mut stack = Stack::new("bounded");
    stack
        .start_with(
            "reservation-processor",
            "reservation-1",
            &[("BOXOFFICE_REFUSAL_RETENTION_SECS", "2")],
        )
        .await;
    stack.start("seat-processor", "seat-1").await;
    let port = stack.start("api", "api-1").await;
    let api = format!("http://127.0.0.1:{port}");
    let event = stack.create_event(&api, 1, 2, 4, 600).await;
    let mut db = AsyncPgConnection::establish(&stack.database_url())
        .await
        .unwrap();

    // A sale, and a rival refused the same seat.
    let seat = json!({ "seats": ["A-1-1"] });
    let (_, payer) = stack.buyer_token(&api).await;
    let paid = hold_and_pay(&stack, &api, &event, &payer, "pay", seat.clone()).await;
    let paid_id: Uuid = paid["id"].as_str().unwrap().parse().unwrap();
    let (rival_id, rival) = stack.buyer_token(&api).await;
    let (s, refused) = book(&stack, &api, &event, &rival, "rival", seat.clone()).await;
    let (s, refused) = decided(&stack, &api, &rival, s, refused).await;
    assert_eq!(
        (s, refused["code"].as_str()),
        (409, Some("seats_taken")),
        "{refused}"
    );
    let refused_id = BookingId::for_idempotency_key(BuyerId(rival_id.parse().unwrap()), "rival").0;

    // The seat-processor remembers the refusal for its TTL.
    processor_view(&stack, "seat-1", &event, |p| p["refusals"] == 1).await;

    // PostgreSQL lets it go after its retention, and the figures still count it.
    let started = Instant::now();
    while stores::booking_status(&mut db, refused_id).await.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the refusal is still in PostgreSQL:\n{}",
            stack.log_tail("reservation-1", 20)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let figures = stats(&stack, &api, &event).await;
    assert_eq!(
        figures["bookings"]["rejections"]["seats_taken"], 1,
        "{figures}"
    );
    assert_eq!(figures["bookings"]["by_status"]["rejected"], 1, "{figures}");
    assert_eq!(
        figures["bookings"]["by_status"]["confirmed"], 1,
        "{figures}"
    );
    assert!(
        stack
            .metrics("reservation-1")
            .await
            .contains("boxoffice_refusals_swept_total"),
        "the sweep is counted"
    );
    // A retry of the same key still gets the same answer.
    let (s, again) = book(&stack, &api, &event, &rival, "rival", seat.clone()).await;
    let (s, again) = decided(&stack, &api, &rival, s, again).await;
    assert_eq!(
        (s, again["code"].as_str()),
        (409, Some("seats_taken")),
        "{again}"
    );

    // Command time passes the TTL: the seat-processor forgets the refusal,
    // on the changelog as a value (a torn batch restores the refusal).
    let now = chrono::Utc::now().timestamp_millis();
    command_at(&stack, &event, now + REFUSAL_TTL_MS + 60_000).await;
    let view = processor_view(&stack, "seat-1", &event, |p| p["refusals"] == 0).await;
    assert_eq!(view["bookings"], 1, "only the sale is left: {view}");
    let refusal_key = format!("/b/{refused_id}");
    let log = tokio::task::block_in_place(|| changelog_latest(&stack, &event));
    let forgotten: Vec<_> = log
        .iter()
        .filter(|(k, _)| k.ends_with(&refusal_key))
        .collect();
    assert!(
        forgotten
            .iter()
            .any(|(_, v)| matches!(v, Some(StateRecord::Forgotten { .. }) | None)),
        "the changelog forgets the refusal: {forgotten:?}"
    );
    assert!(
        !forgotten
            .iter()
            .any(|(_, v)| matches!(v, Some(StateRecord::Booking(_)))),
        "no live record of the refusal is left: {forgotten:?}"
    );

    // The event is over for long enough: retired.
    let starts_at = now + 30 * 24 * 3600 * 1000;
    command_at(&stack, &event, starts_at + RETIRE_AFTER_MS + 60_000).await;
    let view = processor_view(&stack, "seat-1", &event, |p| p["retired"] == true).await;
    assert_eq!(
        (view["bookings"].clone(), view["seats"].clone()),
        (json!(0), json!({})),
        "{view}"
    );
    assert_eq!(
        new_buyer_books(&stack, &api, &event, "A-2-1").await,
        "sale_not_open"
    );
    assert_eq!(
        stores::booking_status(&mut db, paid_id).await.as_deref(),
        Some("confirmed"),
        "PostgreSQL keeps the sale"
    );

    // A fresh instance restores it retired, and its snapshot carries nothing
    // of the event but the retired event record.
    stack.stop("seat-1");
    stack.start("seat-processor", "seat-2").await;
    assert_eq!(
        new_buyer_books(&stack, &api, &event, "A-2-2").await,
        "sale_not_open"
    );
    let view = processor_view(&stack, "seat-2", &event, |p| p["retired"] == true).await;
    assert_eq!(view["bookings"], 0, "{view}");
    let log = tokio::task::block_in_place(|| changelog_latest(&stack, &event));
    let live: Vec<&String> = log
        .iter()
        .filter(|(k, v)| k.contains(&event) && v.is_some())
        .map(|(k, _)| k)
        .collect();
    let epoch = view["epoch"].as_i64().unwrap();
    assert_eq!(
        live,
        vec![&format!("v4/{epoch}/e/{event}")],
        "only the retired event record is live on the changelog"
    );
    assert!(
        !log.iter()
            .any(|(k, v)| k.contains(&paid_id.to_string()) && v.is_some()),
        "the sale's booking left the changelog (PostgreSQL keeps it)"
    );
}
