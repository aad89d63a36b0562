//! Doing to topics what a real Kafka cluster does and the local broker does
//! not: compaction (the log cleaner keeps only the latest record of every
//! key and, after `delete.retention.ms`, drops tombstones with their key),
//! and deleting a topic. Copies go to topics of another prefix, in order,
//! so a fresh instance can restore from them.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

pub const BROKER: &str = "127.0.0.1:9092";

fn config(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker);
    c
}

/// Every record of a partition, in order: (key, payload; `None` a tombstone).
pub type Records = Vec<(Vec<u8>, Option<Vec<u8>>)>;

pub fn read_partition(broker: &str, topic: &str, partition: i32) -> Records {
    let consumer: BaseConsumer = config(broker)
        .set("group.id", "boxoffice-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap();
    let mut out = Records::new();
    if low >= high {
        return out;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    loop {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                out.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().map(<[u8]>::to_vec),
                ));
                if m.offset() + 1 >= high {
                    return out;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("reading {topic}/{partition}: {e}"),
            None => panic!("reading {topic}/{partition}: no record within 10 s"),
        }
    }
}

/// The offsets a partition spans (high watermark minus low): more than the
/// records it holds once compaction removed some.
pub fn span(broker: &str, topic: &str, partition: i32) -> i64 {
    let consumer: BaseConsumer = config(broker).create().unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap();
    high - low
}

/// The partition of `topic` (of `partitions`) whose records are keyed `key`.
pub fn partition_of(broker: &str, topic: &str, partitions: i32, key: &str) -> i32 {
    (0..partitions)
        .find(|p| {
            read_partition(broker, topic, *p)
                .iter()
                .any(|(k, _)| k == key.as_bytes())
        })
        .unwrap_or_else(|| panic!("no record keyed {key} on {topic}"))
}

/// What Kafka's log cleaner leaves of a partition once it has cleaned all of
/// it: the latest record per key, tombstones and their keys gone, every
/// record at its old offset. A removed record leaves a gap, which a copy
/// fills with a tombstone of a key of its own (`gap/<offset>`), so copied
/// records keep their offsets, as compaction does. Returns the records and
/// how many real ones were kept.
pub fn compacted(records: Records) -> (Records, usize) {
    let mut latest: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, (k, _)) in records.iter().enumerate() {
        latest.insert(k.clone(), i);
    }
    let mut kept = 0;
    let out = records
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| {
            if latest[&k] == i && v.is_some() {
                kept += 1;
                (k, v)
            } else {
                (format!("gap/{i}").into_bytes(), None)
            }
        })
        .collect();
    (out, kept)
}

pub async fn create_topics(broker: &str, names: &[String], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(broker).create().unwrap();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

pub async fn delete_topic(broker: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = config(broker).create().unwrap();
    for r in admin
        .delete_topics(&[name], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

/// Appends `records` to `topic`/`partition`, in order (the idempotent
/// producer keeps the order of records sent together).
pub async fn append(broker: &str, topic: &str, partition: i32, records: &Records) {
    let producer: FutureProducer = config(broker)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for chunk in records.chunks(2_000) {
        let sends = chunk.iter().map(|(k, v)| {
            let mut r = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
                .partition(partition)
                .key(k);
            if let Some(v) = v {
                r = r.payload(v);
            }
            producer.send(r, Duration::from_secs(30))
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e).unwrap();
        }
    }
}
