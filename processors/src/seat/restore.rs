//! Restoring a partition's seat maps: local RocksDB first, then the tail of
//! the changelog written after it (by this or any other instance).
//!
//! Changelog records are buffered per writer until that writer's `Applied`
//! marker: a batch whose marker never made it (a crash mid-append) is
//! discarded and its commands are applied again, yielding the same records;
//! a marker at or below the applied offset (a late duplicate) discards its
//! batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use boxoffice_platform::config::{CommonConfig, Topics};
use boxoffice_platform::kafka;
use boxoffice_platform::messages::{StateRecord, decode_state};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::Partition;
use super::store::{Positions, Store};

/// How long a restore may take before the processor gives up and retries.
const RESTORE_DEADLINE: Duration = Duration::from_secs(300);

pub async fn restore(
    common: &CommonConfig,
    topics: &Topics,
    store: Arc<Store>,
    partition: i32,
) -> anyhow::Result<Partition> {
    let common = common.clone();
    let topic = topics.changelog.clone();
    tokio::task::spawn_blocking(move || restore_blocking(&common, &topic, &store, partition))
        .await
        .context("restore task panicked")?
}

fn restore_blocking(
    common: &CommonConfig,
    topic: &str,
    store: &Store,
    partition: i32,
) -> anyhow::Result<Partition> {
    let started = Instant::now();
    let local = store.positions(partition)?;
    let consumer: BaseConsumer = kafka::client_config(common, "boxoffice-seat-restore")
        .set("group.id", "boxoffice-seat-restore")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let start = local.changelog.map_or(low, |c| (c + 1).max(low));
    let mut positions = local;
    let mut replayed = 0usize;
    if start < high {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
        consumer.assign(&tpl)?;
        // Records wait for their writer's marker; writers never mix.
        let mut buffers: HashMap<Vec<u8>, Vec<(String, Vec<u8>)>> = HashMap::new();
        let mut applied_records: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            anyhow::ensure!(
                started.elapsed() < RESTORE_DEADLINE,
                "restoring partition {partition} took too long"
            );
            match consumer.poll(Duration::from_millis(500)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e).context("reading the changelog"),
                Some(Ok(m)) => {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                    let writer = m
                        .headers()
                        .and_then(|h| {
                            h.iter()
                                .find(|h| h.key == super::WRITER_HEADER)
                                .and_then(|h| h.value.map(<[u8]>::to_vec))
                        })
                        .unwrap_or_default();
                    let buffer = buffers.entry(writer).or_default();
                    let value = m.payload().unwrap_or_default().to_vec();
                    match decode_state(&value)
                        .with_context(|| format!("changelog offset {}", m.offset()))?
                    {
                        StateRecord::Applied { offset } => {
                            if positions.applied.is_none_or(|a| offset > a) {
                                replayed += buffer.len();
                                applied_records.append(buffer);
                                positions.applied = Some(offset);
                            } else {
                                // A duplicate of a batch already applied (a replay by another instance).
                                buffer.clear();
                            }
                            positions.changelog = Some(m.offset());
                        }
                        _ => buffer.push((key, value)),
                    }
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
            }
        }
        store.write(
            partition,
            &applied_records,
            Positions {
                applied: positions.applied,
                changelog: positions.changelog,
            },
        )?;
    }
    let events = store.load(partition)?;
    tracing::info!(
        partition,
        applied = ?positions.applied,
        changelog_from = start,
        changelog_to = high,
        replayed,
        events = events.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored partition"
    );
    Ok(Partition {
        applied: positions.applied,
        changelog: positions.changelog,
        events,
    })
}
