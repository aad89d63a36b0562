//! Kafka clients, configured once. Everything here is plain Kafka protocol
//! through librdkafka, so the same code runs against Apache Kafka and the
//! local Kafka-protocol broker; nothing relies on broker transactions.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use boxoffice_domain::EventId;

use crate::config::CommonConfig;

/// Part `part` of an event decided in `parts` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPart {
    pub part: u16,
    pub parts: u16,
}

impl EventPart {
    /// The only part of an event decided in one.
    pub const WHOLE: Self = Self { part: 0, parts: 1 };

    /// How many partitions apart consecutive parts sit: the parts are
    /// spread evenly over the partitions, so that consecutive partitions
    /// going to one consumer (as range-like assignments do) does not put
    /// every part of an event on one seat-processor.
    pub fn stride(parts: u16, partitions: i32) -> i32 {
        (partitions / i32::from(parts.max(1))).max(1)
    }

    /// The partition of `booking-commands` that decides this part
    /// (docs/event-partitioning.md): part 0 where the producer's default
    /// partitioner puts the event id as a key (librdkafka's
    /// `consistent_random`: the CRC-32 of the key, modulo the partition
    /// count), part k `k * stride` partitions further on. Parts never share
    /// a partition: an event has at most as many parts as the topic has
    /// partitions.
    pub fn partition(self, event: EventId, partitions: i32) -> i32 {
        let n = partitions.max(1);
        let base = i64::from(crc32fast::hash(event.to_string().as_bytes())) % i64::from(n);
        let offset = i64::from(self.part) * i64::from(Self::stride(self.parts, n));
        i32::try_from((base + offset) % i64::from(n)).expect("below a partition count")
    }
}

/// The partition count of `topic`, from the broker's metadata.
pub async fn partition_count(producer: &FutureProducer, topic: &str) -> anyhow::Result<i32> {
    let producer = producer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        anyhow::ensure!(count > 0, "topic {topic} has no partitions (yet)");
        Ok(i32::try_from(count)?)
    })
    .await?
}

/// Base configuration for any client of this instance.
pub fn client_config(common: &CommonConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &common.kafka_brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "2000");
    c
}

/// The fetch settings of every consumer of the pipeline (and of the
/// broker benchmark, which measures what they cost).
pub fn fetch_config(common: &CommonConfig, client_id: &str) -> ClientConfig {
    let mut c = client_config(common, client_id);
    c.set("fetch.wait.max.ms", common.fetch_wait_ms.max(1).to_string());
    c
}

/// The settings of every producer: idempotent, so retries never duplicate
/// or reorder records within a partition (the changelog relies on it), and
/// acknowledged only once every in-sync replica has a record.
fn producer_config(common: &CommonConfig, client_id: &str) -> ClientConfig {
    let mut c = client_config(common, client_id);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", common.linger_ms.to_string());
    c
}

/// A producer of the processors: a record is retried for up to 30 s.
pub fn producer(common: &CommonConfig, client_id: &str) -> anyhow::Result<FutureProducer> {
    Ok(producer_config(common, client_id)
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// The API's producer of commands: a command the broker has not
/// acknowledged within `delivery_timeout` fails for good and is never sent
/// later, so a `503` answered after that timeout is not followed by the
/// command turning up on its own (a request the broker received but did not
/// acknowledge may still be applied: hence "retry with the same key").
pub fn command_producer(
    common: &CommonConfig,
    client_id: &str,
    delivery_timeout: Duration,
) -> anyhow::Result<FutureProducer> {
    let ms = delivery_timeout.as_millis().max(100);
    Ok(producer_config(common, client_id)
        .set("message.timeout.ms", ms.to_string())
        .set("request.timeout.ms", (ms * 4 / 5).max(50).to_string())
        .create()?)
}

/// A producer that replaces itself after a fatal error. librdkafka's fatal
/// errors are permanent for a client instance (an idempotent producer whose
/// sequence numbers the broker no longer knows, e.g. after a topic was
/// deleted and re-created, fails every send from then on), so the only way
/// back is a new client.
pub struct RenewingProducer {
    make: Box<dyn Fn() -> anyhow::Result<FutureProducer> + Send + Sync>,
    current: std::sync::RwLock<FutureProducer>,
}

impl RenewingProducer {
    pub fn new(
        make: impl Fn() -> anyhow::Result<FutureProducer> + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let first = make()?;
        Ok(Self {
            make: Box::new(make),
            current: std::sync::RwLock::new(first),
        })
    }

    /// The producer to send with now.
    pub fn get(&self) -> FutureProducer {
        self.current.read().expect("producer lock").clone()
    }

    /// After a failed send: replaces the producer if it is in a fatal state.
    pub fn renew_if_fatal(&self) {
        let mut current = self.current.write().expect("producer lock");
        let Some((code, reason)) = current.client().fatal_error() else {
            return;
        };
        match (self.make)() {
            Ok(fresh) => {
                tracing::warn!(%code, reason, "producer hit a fatal error; replaced it with a new one");
                *current = fresh;
            }
            Err(e) => {
                tracing::error!(%code, reason, error = %e, "producer hit a fatal error and could not be replaced")
            }
        }
    }
}

/// A consumer in `group`. Offsets are committed in the background, but only
/// those the caller stored after finishing with a message.
pub fn consumer<C: ConsumerContext + 'static>(
    common: &CommonConfig,
    group: &str,
    client_id: &str,
    context: C,
) -> anyhow::Result<StreamConsumer<C>> {
    Ok(fetch_config(common, client_id)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A group change moves only the partitions that must move; the
        // others keep their loaded state (no stop-the-world rebalances while
        // the lag-driven autoscaler adds and removes instances).
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "60000")
        // Statistics (consumer lag per partition) every 5 s, see ConsumerLag.
        .set("statistics.interval.ms", "5000")
        .create_with_context(context)?)
}

/// Marks `message` processed, so the group's next commit resumes after it.
///
/// librdkafka stores "the offset after" by itself; storing `offset + 1` by
/// hand would make every resume skip one message (a lost command). A
/// partition revoked since the message was read is left alone: its new owner
/// resumes from the last commit and replays what this one did not finish.
pub fn mark_processed<C, K>(consumer: &K, message: &BorrowedMessage<'_>) -> anyhow::Result<()>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    match consumer.store_offset_from_message(message) {
        Ok(()) => Ok(()),
        Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {
            tracing::debug!(
                partition = message.partition(),
                offset = message.offset(),
                "not storing the offset of a partition revoked meanwhile"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A topic as this system creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: Vec<(&'static str, String)>,
}

/// Every topic of the system, with its settings: replication and
/// `min.insync.replicas` from configuration, the changelog compacted, dead
/// letters kept for 30 days.
pub fn topic_specs(common: &CommonConfig) -> anyhow::Result<Vec<TopicSpec>> {
    anyhow::ensure!(
        common.replication_factor >= 1 && common.min_insync_replicas >= 1,
        "the replication factor and min.insync.replicas must be at least 1"
    );
    anyhow::ensure!(
        common.min_insync_replicas <= common.replication_factor,
        "min.insync.replicas ({}) above the replication factor ({}) would refuse every write",
        common.min_insync_replicas,
        common.replication_factor
    );
    let topics = common.topics();
    let spec = |name: &str, extra: &[(&'static str, &str)]| {
        let mut configs = vec![(
            "min.insync.replicas",
            common.min_insync_replicas.to_string(),
        )];
        configs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        TopicSpec {
            name: name.to_owned(),
            partitions: common.partitions,
            replication_factor: common.replication_factor,
            configs,
        }
    };
    Ok(vec![
        spec(&topics.commands, &[]),
        spec(&topics.events, &[]),
        spec(&topics.changelog, &[("cleanup.policy", "compact")]),
        spec(&topics.dead_letters, &[("retention.ms", "2592000000")]),
    ])
}

/// Creates the topics if they are missing.
pub async fn ensure_topics(common: &CommonConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(common, "boxoffice-admin").create()?;
    let specs = topic_specs(common)?;
    if common.replication_factor == 1 {
        tracing::warn!(
            "topics are created with replication factor 1: losing the broker's disk loses every \
             booking (set BOXOFFICE_REPLICATION_FACTOR=3 and BOXOFFICE_MIN_INSYNC_REPLICAS=2 on a cluster)"
        );
    }
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication_factor),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(name) => tracing::info!(
                topic = name,
                partitions = common.partitions,
                replication_factor = common.replication_factor,
                min_insync_replicas = common.min_insync_replicas,
                "created topic"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name} failed: {code}"),
        }
    }
    Ok(())
}

/// Counts messages sent to the dead-letter topic, by source topic and reason.
pub fn dead_letter_counter(
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<prometheus::IntCounterVec> {
    let c = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "dead_letters_total",
            "Messages no processor could handle, sent to the dead-letter topic",
        ),
        &["source_topic", "reason"],
    )?;
    metrics.registry().register(Box::new(c.clone()))?;
    Ok(c)
}

/// A message no processor could handle, on its way to the dead-letter topic
/// with where it came from and why, so the partition can move on without
/// dropping anything silently.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    source_topic: String,
    partition: i32,
    offset: i64,
    reason: &'static str,
    detail: String,
}

impl DeadLetter {
    /// `reason` is a stable code (a metric label); `detail` says more.
    pub fn of(message: &BorrowedMessage<'_>, reason: &'static str, detail: &str) -> Self {
        Self {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            source_topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            reason,
            detail: detail.to_owned(),
        }
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Publishes it, keyed like the original.
    pub async fn send(
        &self,
        producer: &FutureProducer,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let (partition, offset) = (self.partition.to_string(), self.offset.to_string());
        let headers = [
            ("boxoffice-dlq-source-topic", self.source_topic.as_str()),
            ("boxoffice-dlq-source-partition", partition.as_str()),
            ("boxoffice-dlq-source-offset", offset.as_str()),
            ("boxoffice-dlq-reason", self.reason),
            ("boxoffice-dlq-detail", self.detail.as_str()),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic).headers(headers);
        if let Some(k) = &self.key {
            record = record.key(k);
        }
        if let Some(p) = &self.payload {
            record = record.payload(p);
        }
        producer
            .send(record, timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| anyhow::anyhow!("publishing a dead letter failed: {e}"))
    }
}

/// Readiness probe: the broker answers a metadata request.
pub async fn probe(producer: FutureProducer) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e| format!("broker: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Queue depth as this consumer sees it: `kafka_consumer_lag{topic,
/// partition}`, from librdkafka's statistics (high watermark minus the
/// offset stored after processing), for the partitions it owns right now.
#[derive(Clone)]
pub struct ConsumerLag {
    lag: prometheus::IntGaugeVec,
}

impl ConsumerLag {
    pub fn new(metrics: &crate::metrics::Metrics) -> anyhow::Result<Self> {
        let lag = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "kafka_consumer_lag",
                "Messages not yet consumed per topic and partition (owned partitions)",
            ),
            &["topic", "partition"],
        )?;
        metrics.registry().register(Box::new(lag.clone()))?;
        Ok(Self { lag })
    }

    /// Records one statistics report.
    pub fn observe(&self, stats: &rdkafka::statistics::Statistics) {
        // Partitions this consumer no longer owns must not linger.
        self.lag.reset();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal partition and unknown lag.
                // The lag behind what was marked processed, not behind the
                // last (once a second) commit.
                let lag = if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag
                };
                if *partition < 0 || lag < 0 {
                    continue;
                }
                self.lag
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(lag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_an_event_are_spread_from_the_keyed_partition() {
        // librdkafka's CRC-32 is the IEEE one: its check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let event = EventId(uuid::Uuid::from_u128(42));
        let on = |part, parts, partitions| EventPart { part, parts }.partition(event, partitions);
        let base = on(0, 1, 6);
        assert_eq!(
            base,
            (crc32fast::hash(event.to_string().as_bytes()) % 6) as i32
        );
        for (parts, partitions) in [(6, 6), (2, 6), (3, 7), (4, 30), (30, 30), (1, 1)] {
            let all: std::collections::HashSet<i32> =
                (0..parts).map(|k| on(k, parts, partitions)).collect();
            assert_eq!(
                all.len(),
                usize::from(parts),
                "{parts} parts on {partitions} partitions"
            );
            assert!(all.iter().all(|p| (0..partitions).contains(p)));
        }
        // Two parts of six partitions sit three apart (two halves).
        assert_eq!(on(1, 2, 6), (on(0, 2, 6) + 3) % 6);
        assert_eq!(on(0, 2, 6), base, "part 0 is where the key puts the event");
    }

    fn common(replication_factor: i32, min_insync_replicas: i32) -> CommonConfig {
        CommonConfig {
            instance: None,
            kafka_brokers: "b:9092".into(),
            fetch_wait_ms: 20,
            linger_ms: 2,
            topic_prefix: "x-".into(),
            partitions: 12,
            replication_factor,
            min_insync_replicas,
            schema_registry_url: None,
        }
    }

    #[test]
    fn topics_carry_the_configured_replication() {
        let specs = topic_specs(&common(3, 2)).unwrap();
        assert_eq!(specs.len(), 4);
        for t in &specs {
            assert_eq!((t.partitions, t.replication_factor), (12, 3), "{}", t.name);
            assert!(
                t.configs.contains(&("min.insync.replicas", "2".into())),
                "{}",
                t.name
            );
        }
        let changelog = specs.iter().find(|t| t.name == "x-seat-changelog").unwrap();
        assert!(
            changelog
                .configs
                .contains(&("cleanup.policy", "compact".into()))
        );
        assert!(specs.iter().any(|t| t.name == "x-dead-letters"));
    }

    #[test]
    fn impossible_replication_settings_are_refused() {
        assert!(topic_specs(&common(1, 2)).is_err());
        assert!(topic_specs(&common(0, 0)).is_err());
    }
}
