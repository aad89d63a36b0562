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
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::CommonConfig;

/// Base configuration for any client of this instance.
pub fn client_config(common: &CommonConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &common.kafka_brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "2000");
    c
}

/// An idempotent producer: retries never duplicate or reorder records within
/// a partition, which the changelog restore relies on.
pub fn producer(common: &CommonConfig, client_id: &str) -> anyhow::Result<FutureProducer> {
    Ok(client_config(common, client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()?)
}

/// A consumer in `group`. Offsets are committed in the background, but only
/// those the caller stored after finishing with a message.
pub fn consumer<C: ConsumerContext + 'static>(
    common: &CommonConfig,
    group: &str,
    client_id: &str,
    context: C,
) -> anyhow::Result<StreamConsumer<C>> {
    Ok(client_config(common, client_id)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "60000")
        .set("fetch.wait.max.ms", "20")
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

/// Creates the topics if they are missing: `partitions` each; the changelog
/// compacted.
pub async fn ensure_topics(common: &CommonConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(common, "boxoffice-admin").create()?;
    let topics = common.topics();
    let new = [
        NewTopic::new(
            &topics.commands,
            common.partitions,
            TopicReplication::Fixed(1),
        ),
        NewTopic::new(
            &topics.events,
            common.partitions,
            TopicReplication::Fixed(1),
        ),
        NewTopic::new(
            &topics.changelog,
            common.partitions,
            TopicReplication::Fixed(1),
        )
        .set("cleanup.policy", "compact"),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(name) => tracing::info!(
                topic = name,
                partitions = common.partitions,
                "created topic"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name} failed: {code}"),
        }
    }
    Ok(())
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
