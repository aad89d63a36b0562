//! Taking over a partition (docs/seat-state-protocol.md): open a new
//! ownership epoch with a claim, fold the changelog into the newest complete
//! state, write that state as the new epoch's snapshot closed by its marker,
//! retire the older namespaces, and keep a local copy in RocksDB.
//!
//! Nothing here trusts local state: a new pod, a lost volume and a restart
//! all restore from the changelog, so the result never depends on what this
//! instance happened to keep. Restore time is bounded by the live state (plus
//! whatever compaction or retirement has not removed yet), not by history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use boxoffice_platform::config::{CommonConfig, Topics};
use boxoffice_platform::kafka;
use boxoffice_platform::messages::{ChangelogRecord, StateRecord, decode_changelog};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::Partition;
use super::append::{self, Landed};
use super::changelog::{self, CLAIM_KEY, FoldError, Found, LogEntry};
use super::store::{Positions, Store};

/// How long reading a partition's changelog may take before the restore
/// gives up and retries.
const READ_DEADLINE: Duration = Duration::from_secs(300);
/// How often a restore that lost a race with another writer is retried.
const ATTEMPTS: u32 = 5;

/// Why taking over a partition failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Another writer wrote between our claim and our marker, or a newer
    /// epoch is complete: retried with a new claim.
    #[error("lost the partition to another writer: {0}")]
    Contended(String),
    /// The commands topic does not hold what the state says was applied:
    /// never guessed around (docs/seat-state-protocol.md, "Refusals").
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Restores `partition` for `writer`; retries a restore that lost a race.
pub async fn restore(
    common: &CommonConfig,
    topics: &Topics,
    store: Arc<Store>,
    producer: &FutureProducer,
    writer: &str,
    partition: i32,
) -> Result<Partition, RestoreError> {
    let mut attempt = 1;
    loop {
        match try_restore(common, topics, &store, producer, writer, partition).await {
            Err(RestoreError::Contended(why)) if attempt < ATTEMPTS => {
                tracing::warn!(
                    partition,
                    attempt,
                    why,
                    "restore lost a race; claiming again"
                );
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            result => return result,
        }
    }
}

async fn try_restore(
    common: &CommonConfig,
    topics: &Topics,
    store: &Arc<Store>,
    producer: &FutureProducer,
    writer: &str,
    partition: i32,
) -> Result<Partition, RestoreError> {
    let started = Instant::now();
    let claim = ChangelogRecord {
        epoch: -1,
        batch: -1,
        body: StateRecord::Claim {
            writer: writer.to_owned(),
        },
        previous: None,
    };
    let epoch = append::one(
        producer,
        &topics.changelog,
        partition,
        CLAIM_KEY,
        Some(&claim),
    )
    .await
    .context("claiming the partition")?;

    let (mut found, commands) = {
        let (common, topics) = (common.clone(), topics.clone());
        tokio::task::spawn_blocking(move || read(&common, &topics, partition, epoch))
            .await
            .context("restore task panicked")??
    };
    let next_command = check_commands(partition, found.applied, commands)?;

    // Seats come from the bookings; an older layout's seat records are
    // left behind with its namespace.
    found
        .state
        .retain(|_, r| !matches!(r, StateRecord::Seat { .. }));
    // The snapshot: live state only.
    let batch = found.applied.unwrap_or(-1);
    let snapshot: Vec<(String, Option<ChangelogRecord>)> = found
        .state
        .values()
        .map(|body| {
            let record = ChangelogRecord {
                epoch,
                batch,
                body: body.clone(),
                previous: None,
            };
            (changelog::key(epoch, body), Some(record))
        })
        .collect();
    let mut next = append_run(
        producer,
        topics,
        partition,
        epoch + 1,
        &snapshot,
        "snapshot",
    )
    .await?;
    next = append_run(
        producer,
        topics,
        partition,
        next,
        &[{
            let (key, marker) = changelog::marker(epoch, batch);
            (key, Some(marker))
        }],
        "marker",
    )
    .await?;
    // Our namespace is complete: the older ones are superseded. A tombstone
    // lets compaction remove a key for good.
    let tombstones = futures::future::join_all(
        found
            .stale
            .iter()
            .map(|k| append::one(producer, &topics.changelog, partition, k, None)),
    )
    .await;
    let retired = tombstones.iter().filter(|r| r.is_ok()).count();
    if let Some(last) = tombstones.iter().filter_map(|r| r.as_ref().ok()).max() {
        next = next.max(last + 1);
    }

    store.replace(
        partition,
        &found.state,
        Positions {
            applied: found.applied,
            epoch: Some(epoch),
        },
    )?;
    let events = store.load(partition)?;
    tracing::info!(
        partition,
        epoch,
        from_epoch = ?found.epoch,
        applied = ?found.applied,
        live_records = snapshot.len(),
        retired,
        events = events.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored partition"
    );
    Ok(Partition {
        applied: found.applied,
        epoch,
        next_changelog: next,
        next_command,
        events,
        forgotten: vec![],
    })
}

/// Appends a run of the takeover; a gap means another writer is on the
/// partition, and the takeover starts again.
async fn append_run(
    producer: &FutureProducer,
    topics: &Topics,
    partition: i32,
    next: i64,
    records: &[(String, Option<ChangelogRecord>)],
    what: &str,
) -> Result<i64, RestoreError> {
    match append::run(producer, &topics.changelog, partition, next, records, what).await? {
        Landed::Next(next) => Ok(next),
        Landed::Gap(why) => Err(RestoreError::Contended(why)),
    }
}

/// The commands partition's low and high watermarks.
type Watermarks = (i64, i64);

/// Reads the whole changelog partition (up to its end as of now, after our
/// claim) and folds it; also fetches the commands partition's watermarks.
fn read(
    common: &CommonConfig,
    topics: &Topics,
    partition: i32,
    epoch: i64,
) -> Result<(Found, Watermarks), RestoreError> {
    let started = Instant::now();
    let consumer: BaseConsumer = kafka::client_config(common, "boxoffice-seat-restore")
        .set("group.id", "boxoffice-seat-restore")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // Records removed under us (retired by a newer owner) must surface.
        .set("auto.offset.reset", "error")
        .create()
        .context("creating the restore consumer")?;
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer
        .fetch_watermarks(&topics.changelog, partition, timeout)
        .context("reading the changelog's watermarks")?;
    let commands = consumer
        .fetch_watermarks(&topics.commands, partition, timeout)
        .context("reading the commands' watermarks")?;
    let mut entries = Vec::new();
    if low < high {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topics.changelog, partition, Offset::Offset(low))
            .context("assigning the changelog")?;
        consumer.assign(&tpl).context("assigning the changelog")?;
        loop {
            if started.elapsed() > READ_DEADLINE {
                return Err(anyhow::anyhow!(
                    "reading changelog partition {partition} took over {READ_DEADLINE:?}"
                )
                .into());
            }
            match consumer.poll(Duration::from_millis(500)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    return Err(RestoreError::Contended(format!(
                        "reading the changelog: {e}"
                    )));
                }
                Some(Ok(m)) => {
                    if m.offset() >= high {
                        break;
                    }
                    // An unreadable record is not retried around: the state
                    // it holds would be lost.
                    let value = m.payload().map(decode_changelog).transpose().map_err(|e| {
                        RestoreError::Refused(format!(
                            "changelog {partition}@{} is unreadable: {e}",
                            m.offset()
                        ))
                    })?;
                    entries.push(LogEntry {
                        offset: m.offset(),
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        value,
                    });
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
            }
        }
    }
    let read = entries.len();
    let found = changelog::fold(entries, epoch).map_err(|e| match e {
        // An epoch is the offset of a record on this log: one at or past its
        // end means the offsets were renumbered (the topic re-created or
        // copied), and every new claim would lose to it.
        FoldError::Superseded { epoch } if epoch >= high => RestoreError::Refused(format!(
            "changelog partition {partition} holds epoch {epoch} but ends at offset {high}: \
             its offsets were renumbered (re-created or copied), so ownership epochs no \
             longer order writers. Refusing to run this partition \
             (docs/seat-state-protocol.md, \"Refusals\")"
        )),
        FoldError::Superseded { .. } => RestoreError::Contended(e.to_string()),
        FoldError::Legacy { .. } => RestoreError::Refused(e.to_string()),
    })?;
    tracing::debug!(
        partition,
        epoch,
        low,
        high,
        read,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read changelog"
    );
    Ok((found, commands))
}

/// The offset of the next command to apply, after checking that the
/// commands partition still holds it: a topic deleted and re-created (its
/// offsets start again below what was applied) or commands removed by
/// retention before they were applied are refused loudly, never skipped.
pub fn check_commands(
    partition: i32,
    applied: Option<i64>,
    (low, high): Watermarks,
) -> Result<i64, RestoreError> {
    let Some(applied) = applied else {
        // No state at all, yet the commands do not start at the beginning:
        // history was lost (the changelog, or commands to retention), and a
        // state built from what is left would free sold seats.
        if low > 0 {
            return Err(RestoreError::Refused(format!(
                "booking-commands partition {partition} starts at offset {low}, but the \
                 changelog holds no state for it: the commands before {low} are gone and so is \
                 their state. Refusing to rebuild it from what is left \
                 (docs/seat-state-protocol.md, \"Refusals\")"
            )));
        }
        return Ok(low);
    };
    if high <= applied {
        return Err(RestoreError::Refused(format!(
            "booking-commands partition {partition} ends at offset {high}, but commands up to \
             {applied} were applied: the topic was deleted and re-created. New commands would be \
             taken for old ones and skipped; refusing to run this partition. Restore the topic, or \
             start the system on a fresh topic prefix (docs/seat-state-protocol.md, \"Refusals\")"
        )));
    }
    if low > applied + 1 {
        return Err(RestoreError::Refused(format!(
            "booking-commands partition {partition} starts at offset {low}, but only commands up \
             to {applied} were applied: unapplied commands were deleted (retention shorter than \
             the backlog). Refusing to skip them (docs/seat-state-protocol.md, \"Refusals\")"
        )));
    }
    Ok(applied + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_commands_topic_is_refused() {
        assert!(matches!(
            check_commands(2, Some(41), (0, 5)),
            Err(RestoreError::Refused(m)) if m.contains("re-created")
        ));
        assert!(matches!(
            check_commands(2, Some(41), (0, 41)),
            Err(RestoreError::Refused(_))
        ));
    }

    #[test]
    fn commands_lost_to_retention_are_refused() {
        assert!(matches!(
            check_commands(0, Some(9), (20, 30)),
            Err(RestoreError::Refused(m)) if m.contains("retention")
        ));
    }

    #[test]
    fn the_next_command_follows_the_applied_one() {
        assert_eq!(check_commands(0, Some(9), (0, 30)).unwrap(), 10);
        assert_eq!(check_commands(0, Some(9), (10, 10)).unwrap(), 10);
        assert_eq!(check_commands(0, None, (0, 30)).unwrap(), 0);
        assert!(matches!(
            check_commands(0, None, (7, 30)),
            Err(RestoreError::Refused(m)) if m.contains("no state")
        ));
    }
}
