//! Reading what each store holds about an event's seats, for tests that
//! compare them seat by seat: PostgreSQL directly, the Redis seat map, a
//! seat-processor's own state (its `/internal/state` query), and what a
//! fresh seat-processor restores from a compacted copy of the changelog.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::Stack;
use super::kafka;

/// Partitions of every topic in the tests (`Stack::start`).
pub const PARTITIONS: i32 = 4;

/// Seat id -> the booking holding or owning it.
pub type Seats = BTreeMap<String, Uuid>;

#[derive(QueryableByName)]
struct SeatRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    seat_id: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    booking_id: Uuid,
}

/// Active seats in PostgreSQL; a seat held by two bookings fails the test.
pub async fn postgres_seats(stack: &Stack, event: &str) -> Seats {
    let mut conn = AsyncPgConnection::establish(&stack.database_url())
        .await
        .unwrap();
    let rows: Vec<SeatRow> = diesel::sql_query(
        "SELECT seat_id, booking_id FROM booking_seats WHERE event_id = $1 AND active",
    )
    .bind::<diesel::sql_types::Uuid, _>(event.parse::<Uuid>().unwrap())
    .load(&mut conn)
    .await
    .unwrap();
    let mut seats = Seats::new();
    for r in rows {
        assert!(
            seats.insert(r.seat_id.clone(), r.booking_id).is_none(),
            "PostgreSQL has seat {} twice",
            r.seat_id
        );
    }
    seats
}

/// Taken seats in the Redis seat map of `sections`.
pub async fn redis_seats(stack: &Stack, event: &str, sections: &[&str]) -> Seats {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut seats = Seats::new();
    for section in sections {
        let map: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{}seats:{event}:{section}", stack.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        for (seat, value) in map {
            let booking = value.split_once(':').unwrap().1.parse().unwrap();
            seats.insert(seat, booking);
        }
    }
    seats
}

/// The partition copy of `event` with the most commands applied, as a
/// seat-processor's `/internal/state` reports it (`None`: it holds none).
pub async fn processor_partition(stack: &Stack, instance: &str, event: &str) -> Option<Value> {
    let url = format!(
        "http://127.0.0.1:{}/internal/state/events/{event}",
        stack.roles[instance].port
    );
    let res = stack.http.get(&url).send().await.unwrap();
    if res.status() == 404 {
        return None;
    }
    assert!(res.status().is_success(), "{url}: {}", res.status());
    let body: Value = res.json().await.unwrap();
    body["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|p| p["applied"].as_i64().unwrap_or(-1))
        .cloned()
}

/// A seat-processor's state for `event` from the partition copy with the
/// most commands applied: (applied offset, seats).
pub async fn processor_seats(stack: &Stack, instance: &str, event: &str) -> Option<(i64, Seats)> {
    let p = processor_partition(stack, instance, event).await?;
    let seats = p["seats"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(seat, v)| {
            (
                seat.clone(),
                v["booking"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    Some((p["applied"].as_i64().unwrap_or(-1), seats))
}

/// Waits until PostgreSQL and the Redis seat map of `sections` hold the
/// same seats; returns them.
pub async fn settled(stack: &Stack, event: &str, sections: &[&str]) -> Seats {
    let started = Instant::now();
    loop {
        let postgres = postgres_seats(stack, event).await;
        let redis = redis_seats(stack, event, sections).await;
        if postgres == redis && !postgres.is_empty() {
            return postgres;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "PostgreSQL and Redis still differ after 60 s:\n{postgres:?}\n{redis:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The seats a running seat-processor holds for `event`, once it has
/// applied at least `applied` (from the copy that has applied the most).
pub async fn processor_state(stack: &Stack, instance: &str, event: &str, applied: i64) -> Seats {
    let started = Instant::now();
    loop {
        if let Some((a, seats)) = processor_seats(stack, instance, event).await
            && a >= applied
        {
            return seats;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{instance} has not restored {event} up to {applied} within 60 s:\n{}",
            stack.log_tail(instance, 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Kafka's cleaner, simulated: the changelog compacted (the latest record per
/// key, tombstones gone) into a fresh topic prefix, the commands copied as
/// they are, both at their old offsets (the source partitions start at 0). A
/// fresh seat-processor on that prefix must restore exactly the seats
/// PostgreSQL holds.
pub async fn restore_from_compacted_copy(stack: &mut Stack, event: &str, applied: i64) -> Seats {
    let broker = stack.broker();
    let fresh = format!("{}compacted-", stack.prefix);
    let (from, to) = (stack.prefix.clone(), fresh.clone());
    let topics = |prefix: &str| {
        [
            format!("{prefix}booking-commands"),
            format!("{prefix}seat-changelog"),
        ]
    };
    kafka::create_topics(&broker, &topics(&to), PARTITIONS).await;
    let (mut kept, mut read) = (0, 0);
    let [commands, _] = topics(&from);
    let own =
        tokio::task::block_in_place(|| kafka::partition_of(&broker, &commands, PARTITIONS, event));
    for p in 0..PARTITIONS {
        let [commands, changelog] = topics(&from);
        let [fresh_commands, fresh_changelog] = topics(&to);
        let mut records =
            tokio::task::block_in_place(|| kafka::read_partition(&broker, &commands, p));
        if p == own {
            // Only the commands the state reflects: a command sent since
            // (a hold expiring) must not move the restored state on.
            records.truncate(usize::try_from(applied + 1).unwrap_or(0));
        }
        kafka::append(&broker, &fresh_commands, p, &records).await;
        let log = tokio::task::block_in_place(|| kafka::read_partition(&broker, &changelog, p));
        read += log.len();
        let (compacted, real) = kafka::compacted(log);
        kept += real;
        kafka::append(&broker, &fresh_changelog, p, &compacted).await;
    }
    eprintln!("compaction kept {kept} of {read} changelog records");
    assert!(
        kept < read,
        "the simulated cleaner must have removed something"
    );
    let instance = format!("seat-compacted-{}", stack.roles.len());
    stack
        .start_with(
            "seat-processor",
            &instance,
            &[("BOXOFFICE_TOPIC_PREFIX", fresh.as_str())],
        )
        .await;
    let seats = processor_state(stack, &instance, event, applied).await;
    stack.stop(&instance);
    seats
}

/// A booking's status in PostgreSQL (`None`: no such booking).
pub async fn booking_status(conn: &mut AsyncPgConnection, id: Uuid) -> Option<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let rows: Vec<Row> = diesel::sql_query("SELECT status FROM bookings WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .load(conn)
        .await
        .unwrap();
    rows.into_iter().next().map(|r| r.status)
}
