//! The seat state on real-Kafka terms (docs/seat-state-protocol.md): what
//! the local broker never does is done to the changelog here, and every
//! store must still agree seat by seat.
//! - Kafka's log cleaner compacts the changelog (only the latest record per
//!   key survives; tombstones go with their keys): a fresh instance restores
//!   from it exactly the state PostgreSQL holds, after several writer lives.
//!   Once from a simulated cleaner's copy, once with the broker's own
//!   compaction running every second under the live sale.
//! - A seat-processor frozen until the group evicts it wakes up as a zombie
//!   while another owns its partitions: nothing it writes changes the state.
//! - The commands topic is deleted and re-created: the processor refuses the
//!   partition loudly instead of skipping new commands as old ones.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::kafka::{self, BROKER};
use support::stores::{self, PARTITIONS, Seats};
use support::{Broker, Stack, book, call, decided, hold_and_pay};

/// A little of everything an on-sale does, in row `row`: explicit seats
/// held and paid, best-available held then cancelled, best-available left
/// held, and a rival refused the paid seats.
async fn on_sale_round(stack: &Stack, api: &str, event: &str, row: u32) {
    let seats = json!({ "seats": [format!("A-{row}-1"), format!("A-{row}-2")] });
    let (_, payer) = stack.buyer_token(api).await;
    hold_and_pay(
        stack,
        api,
        event,
        &payer,
        &format!("pay-{row}"),
        seats.clone(),
    )
    .await;

    let (_, canceller) = stack.buyer_token(api).await;
    let pick = json!({ "section": "B", "quantity": 3 });
    let (s, b) = book(
        stack,
        api,
        event,
        &canceller,
        &format!("cancel-{row}"),
        pick,
    )
    .await;
    let (s, held) = decided(stack, api, &canceller, s, b).await;
    assert!(s == 200 || s == 201, "{s} {held}");
    let url = format!("{api}/api/bookings/{}", held["id"].as_str().unwrap());
    let (s, gone) = call(
        &stack.http,
        Method::DELETE,
        &url,
        Some(&canceller),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{gone}");

    let (_, holder) = stack.buyer_token(api).await;
    let pick = json!({ "section": "B", "quantity": 2 });
    let (s, b) = book(stack, api, event, &holder, &format!("hold-{row}"), pick).await;
    let (s, held) = decided(stack, api, &holder, s, b).await;
    assert!(s == 200 || s == 201, "{s} {held}");

    let (_, rival) = stack.buyer_token(api).await;
    let (s, b) = book(stack, api, event, &rival, &format!("rival-{row}"), seats).await;
    let (s, refused) = decided(stack, api, &rival, s, b).await;
    assert_eq!(
        (s, refused["code"].as_str()),
        (409, Some("seats_taken")),
        "{refused}"
    );
}

/// The applied offset of the running instance holding `event` the furthest.
async fn applied_by(stack: &Stack, instances: &[&str], event: &str) -> (i64, Seats) {
    let mut best = (-1, Seats::new());
    for i in instances {
        if let Some(found) = stores::processor_seats(stack, i, event).await
            && found.0 > best.0
        {
            best = found;
        }
    }
    best
}

/// Four on-sale rounds over three writer lives: a crash, a fresh instance
/// (a new pod), a restart of the first on its old volume; each leaves its
/// records and markers. Returns the seats PostgreSQL holds, which the live
/// seat-1 agrees with, and the command it applied last.
async fn sale_over_three_writer_lives(stack: &mut Stack, api: &str, event: &str) -> (Seats, i64) {
    on_sale_round(stack, api, event, 1).await;
    stack.kill("seat-1");
    stack.start("seat-processor", "seat-2").await;
    on_sale_round(stack, api, event, 2).await;
    stack.kill("seat-2");
    stack.start("seat-processor", "seat-1").await;
    on_sale_round(stack, api, event, 3).await;
    on_sale_round(stack, api, event, 4).await;
    let postgres = stores::settled(stack, event, &["A", "B"]).await;
    let (applied, live) = applied_by(stack, &["seat-1"], event).await;
    assert_eq!(
        live, postgres,
        "the live seat-processor agrees with PostgreSQL"
    );
    (postgres, applied)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_instance_restores_exactly_from_a_compacted_changelog() {
    let mut stack = Stack::new("compaction");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 2, 6, 10, 600).await;
    let (postgres, applied) = sale_over_three_writer_lives(&mut stack, &api, &event).await;
    stack.stop("seat-1");
    let restored = stores::restore_from_compacted_copy(&mut stack, &event, applied).await;
    assert_eq!(
        restored, postgres,
        "restored from the compacted changelog, seat by seat"
    );
}

/// Compaction by the broker itself, not a copy: a broker of the test's own
/// compacts the changelog every second (the local broker's sweep; Kafka's
/// cleaner runs whenever it likes), while the sale goes on, writers crash
/// and new ones restore. Every restore must still be exact.
#[tokio::test(flavor = "multi_thread")]
async fn restores_stay_exact_while_the_broker_compacts_the_changelog() {
    let mut stack = Stack::new("brokercompaction");
    let broker = Broker::start_compacting(stack.dir.join("broker"), "1s").await;
    stack.use_broker(&broker);
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 2, 6, 10, 600).await;
    sale_over_three_writer_lives(&mut stack, &api, &event).await;

    // The broker really removed superseded records from the changelog.
    let changelog = format!("{}seat-changelog", stack.prefix);
    let started = Instant::now();
    loop {
        let (mut held, mut spanned) = (0, 0);
        for p in 0..PARTITIONS {
            let address = broker.address();
            held += tokio::task::block_in_place(|| kafka::read_partition(&address, &changelog, p))
                .len() as i64;
            spanned += kafka::span(&address, &changelog, p);
        }
        if held < spanned {
            eprintln!("the broker's compaction kept {held} of {spanned} changelog records");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the broker compacted nothing in 30 s ({held} records)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A new pod with an empty disk restores from what compaction left when
    // its partition's next command arrives, and the sale goes on from it.
    stack.stop("seat-1");
    stack.start("seat-processor", "seat-3").await;
    on_sale_round(&stack, &api, &event, 5).await;
    let postgres = stores::settled(&stack, &event, &["A", "B"]).await;
    let (_, live) = applied_by(&stack, &["seat-3"], &event).await;
    assert_eq!(
        live, postgres,
        "restored from the broker-compacted changelog and on from it, seat by seat"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_seat_processor_waking_up_as_a_zombie_changes_nothing() {
    let mut stack = Stack::new("zombie");
    stack.start("reservation-processor", "reservation-1").await;
    stack.start("seat-processor", "seat-1").await;
    stack.start("seat-processor", "seat-2").await;
    let api = format!("http://127.0.0.1:{}", stack.start("api", "api-1").await);
    let event = stack.create_event(&api, 2, 6, 10, 600).await;
    on_sale_round(&stack, &api, &event, 1).await;

    // Frozen past the session timeout (10 s): the group evicts it and its
    // partitions move to seat-2, which restores them and takes bookings.
    stack.pause("seat-1");
    let frozen = Instant::now();
    on_sale_round(&stack, &api, &event, 2).await;
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(frozen.elapsed())).await;
    on_sale_round(&stack, &api, &event, 3).await;
    // It wakes up with whatever it had in flight and its old state.
    stack.resume("seat-1");
    on_sale_round(&stack, &api, &event, 4).await;
    on_sale_round(&stack, &api, &event, 5).await;

    let postgres = stores::settled(&stack, &event, &["A", "B"]).await;
    let (applied, live) = applied_by(&stack, &["seat-1", "seat-2"], &event).await;
    assert_eq!(live, postgres, "the owner's state agrees with PostgreSQL");
    stack.stop("seat-1");
    stack.stop("seat-2");
    let restored = stores::restore_from_compacted_copy(&mut stack, &event, applied).await;
    assert_eq!(
        restored, postgres,
        "restored after the zombie, seat by seat"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_created_commands_topic_is_refused_loudly_not_skipped() {
    let mut stack = Stack::new("recreated");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 2, 6, 10, 600).await;
    on_sale_round(&stack, &api, &event, 1).await;
    stores::settled(&stack, &event, &["A", "B"]).await;
    stack.stop("seat-1");
    let commands = format!("{}booking-commands", stack.prefix);
    kafka::delete_topic(BROKER, &commands).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    kafka::create_topics(BROKER, std::slice::from_ref(&commands), PARTITIONS).await;
    stack.start("seat-processor", "seat-1").await;

    // The new command lands at an offset that was applied before: today's
    // partition must not take it for an old one.
    let (_, buyer) = stack.buyer_token(&api).await;
    let started = Instant::now();
    let body = loop {
        // The API's producer learns of the new topic first (503 meanwhile).
        let (status, body) = book(
            &stack,
            &api,
            &event,
            &buyer,
            "after",
            json!({ "seats": ["A-6-1"] }),
        )
        .await;
        if status == 202 {
            break body;
        }
        assert!(
            status == 503 && started.elapsed() < Duration::from_secs(30),
            "nothing may decide it: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let started = Instant::now();
    loop {
        let metrics = stack.metrics("seat-1").await;
        let refused = metrics
            .lines()
            .any(|l| l.starts_with("boxoffice_seat_partition_refused{") && l.ends_with(" 1"));
        if refused
            && stack
                .log_tail("seat-1", 200)
                .contains("deleted and re-created")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no loud refusal within 30 s:\n{}",
            stack.log_tail("seat-1", 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, pending) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/bookings/{}", body["id"].as_str().unwrap()),
        Some(&buyer),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, pending["code"].as_str()),
        (404, Some("unknown_booking")),
        "the command is neither skipped nor decided: {pending}"
    );
}

/// `boxoffice_seat_restores_total` of a running seat-processor.
async fn restores(stack: &Stack, instance: &str) -> u64 {
    let text = stack.metrics(instance).await;
    text.lines()
        .filter(|l| l.starts_with("boxoffice_seat_restores_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_instance_takes_only_the_partitions_that_move() {
    let mut stack = Stack::new("rebalance");
    let api = stack.start_all().await;
    // Enough events that every partition has some.
    let mut events = Vec::new();
    for _ in 0..8 {
        events.push(stack.create_event(&api, 1, 2, 10, 600).await);
    }
    let (_, buyer) = stack.buyer_token(&api).await;
    for (i, e) in events.iter().enumerate() {
        let (s, b) = book(
            &stack,
            &api,
            e,
            &buyer,
            &format!("one-{i}"),
            json!({ "seats": ["A-1-1"] }),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let before = restores(&stack, "seat-1").await;
    assert!(
        before >= 2,
        "seat-1 restored the partitions it was given: {before}"
    );

    // A second instance joins: the group moves some partitions to it; the
    // ones seat-1 keeps must not be revoked and reloaded.
    stack.start("seat-processor", "seat-2").await;
    let started = Instant::now();
    for attempt in 1.. {
        // New bookings each time (a new buyer, the next seat), so commands
        // reach the partitions seat-2 is given once the group has moved them.
        let (_, buyer) = stack.buyer_token(&api).await;
        for (i, e) in events.iter().enumerate() {
            let seat = json!({ "seats": [format!("A-2-{attempt}")] });
            let (s, b) = book(&stack, &api, e, &buyer, &format!("two-{attempt}-{i}"), seat).await;
            let (s, b) = decided(&stack, &api, &buyer, s, b).await;
            assert!(s == 201 || s == 200, "{s} {b}");
        }
        if restores(&stack, "seat-2").await > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && attempt < 10,
            "seat-2 took no partition in 60 s"
        );
        // The row has 10 seats, so 10 attempts: spaced so that they span the
        // 60 s the group may take to move partitions on a loaded machine.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(
        restores(&stack, "seat-1").await,
        before,
        "seat-1 reloaded partitions it kept:\n{}",
        stack.log_tail("seat-1", 30)
    );
}
