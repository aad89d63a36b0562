//! The on-sale spike: 2,000 concurrent requests for 500 seats through two
//! API instances and two instances of each processor, also with a
//! seat-processor killed mid-sale, and an open-loop spike above capacity. Afterwards RocksDB, PostgreSQL and Redis
//! must agree seat by seat, and no seat may be held by two bookings.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_platform::messages::{StateRecord, decode_state};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, call, stores};

async fn start_pairs(stack: &mut Stack) -> Vec<String> {
    stack.start("reservation-processor", "reservation-1").await;
    stack.start("reservation-processor", "reservation-2").await;
    stack.start("seat-processor", "seat-1").await;
    stack.start("seat-processor", "seat-2").await;
    stack.start("api", "api-1").await;
    stack.start("api", "api-2").await;
    vec![stack.api("api-1"), stack.api("api-2")]
}

fn loadgen_args<'a>(apis: &'a str, event: &'a str) -> Vec<&'a str> {
    vec![
        "loadgen",
        "--api",
        apis,
        "--event",
        event,
        "--requests",
        "2000",
        "--concurrency",
        "100",
        "--max-quantity",
        "4",
    ]
}

/// Books every seat still free, one at a time, so the sale ends sold out.
async fn sell_out(stack: &Stack, api: &str, event: &str) {
    let (_, seats) = stack.seat_map(api, event).await;
    let (_, detail) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events/{event}"),
        None,
        None,
        &[],
    )
    .await;
    let taken = seats["seats"].as_object().unwrap();
    let mut n = 0;
    for section in detail["spec"]["venue"]["sections"].as_array().unwrap() {
        for row in section["rows"].as_array().unwrap() {
            for number in 1..=row["seats"].as_u64().unwrap() {
                let seat = format!(
                    "{}-{}-{number}",
                    section["code"].as_str().unwrap(),
                    row["label"].as_str().unwrap()
                );
                if taken.contains_key(&seat) {
                    continue;
                }
                let (_, token) = stack.buyer_token(api).await;
                n += 1;
                let (status, body) = call(
                    &stack.http,
                    Method::POST,
                    &format!("{api}/api/events/{event}/bookings"),
                    Some(&token),
                    Some(json!({ "seats": [seat] })),
                    &[("Idempotency-Key", &format!("sellout-{n}"))],
                )
                .await;
                assert!(
                    status == 201 || status == 202,
                    "booking free seat {seat}: {status} {body}"
                );
            }
        }
    }
}

/// Seat -> booking in PostgreSQL (active rows), Redis and the seat-processors'
/// RocksDB (newest copy of each partition); all three must be equal and
/// cover every seat.
async fn assert_stores_agree(stack: &Stack, api: &str, event: &str, seat_instances: &[&str]) {
    let event_uuid: uuid::Uuid = event.parse().unwrap();
    let postgres = stores::postgres_seats(stack, event).await;
    let cache = stores::redis_seats(stack, event, &["A", "B"]).await;

    let (_, detail) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events/{event}"),
        None,
        None,
        &[],
    )
    .await;
    let spec: boxoffice_domain::EventSpec = serde_json::from_value(detail["spec"].clone()).unwrap();
    // Per partition, the instance that applied the most.
    let mut newest: BTreeMap<String, (i64, BTreeMap<String, uuid::Uuid>)> = BTreeMap::new();
    for instance in seat_instances {
        let path = stack.dir.join("state").join(instance);
        let db =
            rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), &path, false).unwrap();
        let mut per_partition: BTreeMap<String, (i64, BTreeMap<String, uuid::Uuid>)> =
            BTreeMap::new();
        for item in db.iterator(rocksdb::IteratorMode::Start) {
            let (k, v) = item.unwrap();
            let key = String::from_utf8_lossy(&k).into_owned();
            let (partition, rest) = key.split_once('/').unwrap();
            let entry = per_partition.entry(partition.to_owned()).or_default();
            if rest == "#applied" {
                entry.0 = i64::from_be_bytes(v.as_ref().try_into().unwrap());
            } else if rest.starts_with("b/")
                && let StateRecord::Booking(b) = decode_state(&v).unwrap()
                && b.event_id.0 == event_uuid
                && b.status.is_active()
                // A home part's count of seats held in another part.
                && b.quota_of.is_none()
            {
                // A seat is taken by the active booking that lists it.
                for seat in b.seats {
                    let twice = entry.1.insert(seat.to_string(), b.id.0);
                    assert!(twice.is_none(), "seat {seat} in two active bookings");
                }
            }
        }
        for (p, (applied, seats)) in per_partition {
            if newest.get(&p).is_none_or(|(a, _)| applied > *a) {
                newest.insert(p, (applied, seats));
            }
        }
    }
    let rocks: BTreeMap<String, uuid::Uuid> = newest.into_values().flat_map(|(_, s)| s).collect();

    assert_eq!(
        postgres.len(),
        spec.venue.capacity(),
        "every seat sold or held in PostgreSQL"
    );
    assert_eq!(postgres, cache, "PostgreSQL and Redis agree seat by seat");
    assert_eq!(postgres, rocks, "PostgreSQL and RocksDB agree seat by seat");
}

fn run_loadgen(stack: &Stack, apis: &str, event: &str) -> Value {
    let (ok, out, err) = stack.run_tool(&loadgen_args(apis, event));
    let summary: Value =
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("loadgen output:\n{out}\n{err}"));
    assert!(ok, "loadgen reported broken invariants: {summary}\n{err}");
    eprintln!("loadgen summary: {summary}");
    summary
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_buyers_for_five_hundred_seats_each_seat_sold_once() {
    let mut stack = Stack::new("spike");
    let apis = start_pairs(&mut stack).await;
    let event = stack.create_event(&apis[0], 2, 10, 25, 600).await;
    let joined = apis.join(",");
    let summary = tokio::task::block_in_place(|| run_loadgen(&stack, &joined, &event));
    assert_eq!(summary["requests"], 2000);
    assert_eq!(summary["duplicate_seats"], 0);
    assert_eq!(summary["unresolved"], 0);
    assert_eq!(summary["server_errors"], 0);
    sell_out(&stack, &apis[1], &event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.stop("seat-1");
    stack.stop("seat-2");
    assert_stores_agree(&stack, &apis[0], &event, &["seat-1", "seat-2"]).await;
}

/// The open-loop spike, short: buyers arrive on a schedule above what a
/// test machine decides, whatever the system answers. What cannot be
/// decided in time is shed (`503 overloaded`, retried after `Retry-After`
/// with the same key), never timed out, and every seat is still sold once.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_loop_spike_above_capacity_is_shed_and_sold_once() {
    let mut stack = Stack::new("openloop");
    let apis = start_pairs(&mut stack).await;
    let event = stack.create_event(&apis[0], 2, 10, 25, 600).await;
    let joined = apis.join(",");
    let args = [
        "loadgen",
        "--api",
        &joined,
        "--event",
        &event,
        "--requests",
        "3000",
        "--concurrency",
        "3000",
        "--rate",
        "1000",
        "--ramp-secs",
        "1",
        "--max-quantity",
        "4",
        "--cancel-share",
        "0.2",
        "--retry-unavailable",
    ];
    let (ok, out, err) = tokio::task::block_in_place(|| stack.run_tool(&args));
    let summary: Value =
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("loadgen output:\n{out}\n{err}"));
    eprintln!("open-loop summary: {summary}");
    assert!(ok, "loadgen reported broken invariants: {summary}\n{err}");
    assert_eq!(summary["requests"], 3000);
    assert_eq!(summary["duplicate_seats"], 0);
    assert_eq!(summary["unresolved"], 0);
    assert_eq!(
        summary["server_errors"], 0,
        "nothing but overload answered 5xx"
    );
    assert!(
        summary["outcomes"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("transport")),
        "no request timed out or lost its connection: {summary}"
    );
    sell_out(&stack, &apis[1], &event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.stop("seat-1");
    stack.stop("seat-2");
    assert_stores_agree(&stack, &apis[0], &event, &["seat-1", "seat-2"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_processor_killed_mid_sale_loses_nothing() {
    let mut stack = Stack::new("kill");
    let apis = start_pairs(&mut stack).await;
    let event = stack.create_event(&apis[0], 2, 10, 25, 600).await;
    let joined = apis.join(",");
    let args: Vec<String> = loadgen_args(&joined, &event)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let loadgen = std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let the sale get going, then crash one seat-processor and bring up a
    // fresh instance (empty RocksDB) that must restore from the changelog.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.kill("seat-1");
    stack.start("seat-processor", "seat-3").await;
    let out = tokio::task::block_in_place(|| loadgen.wait_with_output()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "loadgen: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "invariants broken after the crash: {summary}"
    );
    assert_eq!(summary["duplicate_seats"], 0);
    assert_eq!(summary["unresolved"], 0);
    sell_out(&stack, &apis[1], &event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.stop("seat-2");
    stack.stop("seat-3");
    assert_stores_agree(&stack, &apis[0], &event, &["seat-1", "seat-2", "seat-3"]).await;
}
