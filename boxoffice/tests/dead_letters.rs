//! Poison messages: a command nobody can read, an outcome nobody can read,
//! and a forged outcome that would sell a held seat a second time (which
//! PostgreSQL's unique index refuses). Each goes to the dead-letter topic
//! with its reason and is counted; its partition moves on.

mod support;

use std::time::{Duration, Instant};

use boxoffice_domain::{Booking, BookingId, BookingStatus, BuyerId, EventId, Outcome};
use boxoffice_platform::messages::{OutcomeEnvelope, encode_outcome};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use serde_json::json;
use support::kafka::{self, BROKER};
use support::{Stack, book};
use uuid::Uuid;

/// The dead letters so far: (reason, source topic, key).
fn dead_letters(topic: &str) -> Vec<(String, String, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", format!("dlq-reader-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) else {
            if !out.is_empty() {
                break;
            }
            continue;
        };
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        out.push((
            header("boxoffice-dlq-reason"),
            header("boxoffice-dlq-source-topic"),
            m.key().unwrap_or_default().to_vec(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_partition_moves_on() {
    let mut stack = Stack::new("poison");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 1, 4, 10, 600).await;
    let (buyer, token) = stack.buyer_token(&api).await;
    let (status, held) = book(
        &stack,
        &api,
        &event,
        &token,
        "first",
        json!({ "seats": ["A-1-1"] }),
    )
    .await;
    assert_eq!(status, 201, "{held}");

    let commands = format!("{}booking-commands", stack.prefix);
    let outcomes = format!("{}booking-events", stack.prefix);
    let p = tokio::task::block_in_place(|| kafka::partition_of(BROKER, &commands, 4, &event));
    let garbage = vec![(event.as_bytes().to_vec(), Some(b"not avro at all".to_vec()))];
    kafka::append(BROKER, &commands, p, &garbage).await;
    kafka::append(BROKER, &outcomes, p, &garbage).await;
    // A well-formed outcome no seat-processor would ever send: another
    // booking holding A-1-1, which is held already.
    let forged = OutcomeEnvelope {
        event_id: EventId(event.parse().unwrap()),
        seq: i64::MAX / 2,
        at_ms: 0,
        reply_to: None,
        part: 0,
        outcome: Outcome::Booking {
            booking_id: BookingId(Uuid::new_v4()),
            booking: Some(Booking {
                id: BookingId(Uuid::new_v4()),
                event_id: EventId(event.parse().unwrap()),
                buyer: BuyerId(buyer.parse().unwrap()),
                seats: vec!["A-1-1".parse().unwrap()],
                status: BookingStatus::Held,
                hold_expires_at_ms: i64::MAX / 4,
                total_cents: 1,
                fingerprint: "forged".into(),
                payment_reference: None,
                updated_at_ms: 0,
                quota_of: None,
            }),
            rejection: None,
        },
    };
    let forged = vec![(event.as_bytes().to_vec(), Some(encode_outcome(&forged)))];
    kafka::append(BROKER, &outcomes, p, &forged).await;

    // The same partition still decides bookings.
    let (status, next) = book(
        &stack,
        &api,
        &event,
        &token,
        "after",
        json!({ "seats": ["A-1-2"] }),
    )
    .await;
    assert_eq!(status, 201, "the partition moved on: {next}");

    let dlq = format!("{}dead-letters", stack.prefix);
    let letters = tokio::task::block_in_place(|| dead_letters(&dlq));
    let reasons: Vec<(&str, &str)> = letters
        .iter()
        .map(|(r, t, _)| (r.as_str(), t.as_str()))
        .collect();
    for want in [
        ("undecodable", commands.as_str()),
        ("undecodable", outcomes.as_str()),
        ("double_sale", outcomes.as_str()),
    ] {
        assert!(
            reasons.contains(&want),
            "missing dead letter {want:?} in {reasons:?}"
        );
    }
    assert!(
        letters.iter().all(|(_, _, k)| k == event.as_bytes()),
        "keys kept"
    );
    for (instance, line) in [
        ("seat-1", "boxoffice_dead_letters_total{"),
        ("reservation-1", "boxoffice_dead_letters_total{"),
    ] {
        let text = stack.metrics(instance).await;
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{instance} counts dead letters"
        );
    }
    // PostgreSQL kept the real holder.
    let seats = support::stores::postgres_seats(&stack, &event).await;
    assert_eq!(seats["A-1-1"].to_string(), held["id"].as_str().unwrap());
}
