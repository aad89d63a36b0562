//! Appending to a partition of `seat-changelog`, the one way both a takeover
//! and a batch write it: records of a run are sent together, and the run
//! must land right after the writer's previous record. A run that does not
//! means another writer appends to the partition too
//! (docs/seat-state-protocol.md, "The writer, step by step").

use std::time::Duration;

use boxoffice_platform::messages::{ChangelogRecord, encode_changelog};
use rdkafka::producer::{FutureProducer, FutureRecord};

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a run landed.
pub enum Landed {
    /// Right where it had to: the offset the writer's next record must take.
    Next(i64),
    /// Elsewhere, in words: another writer is on the partition.
    Gap(String),
}

/// Appends `records` (`None`: a tombstone) together; they must land at
/// `next`, `next + 1`, ...
pub async fn run(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    next: i64,
    records: &[(String, Option<ChangelogRecord>)],
    what: &str,
) -> anyhow::Result<Landed> {
    let mut landed = futures::future::try_join_all(
        records
            .iter()
            .map(|(k, r)| one(producer, topic, partition, k, r.as_ref())),
    )
    .await
    .map_err(|e| e.context(format!("writing the {what}")))?;
    landed.sort_unstable();
    let end = next + landed.len() as i64;
    if landed.iter().copied().ne(next..end) {
        return Ok(Landed::Gap(format!(
            "the {what} landed at {:?}, not from {next} on",
            (landed.first(), landed.last())
        )));
    }
    Ok(Landed::Next(end))
}

/// One record (a tombstone without `record`); the offset it landed at.
pub async fn one(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    record: Option<&ChangelogRecord>,
) -> anyhow::Result<i64> {
    let payload = record.map(encode_changelog);
    let mut r = FutureRecord::<str, Vec<u8>>::to(topic)
        .partition(partition)
        .key(key);
    if let Some(p) = &payload {
        r = r.payload(p);
    }
    let delivery = producer
        .send(r, SEND_TIMEOUT)
        .await
        .map_err(|(e, _)| anyhow::anyhow!("appending to {topic}/{partition} failed: {e}"))?;
    Ok(delivery.offset)
}
