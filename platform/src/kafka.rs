//! Kafka clients, configured once. Everything here is plain Kafka protocol
//! through librdkafka, so the same code runs against Apache Kafka and the
//! local Kafka-protocol broker; nothing relies on broker transactions.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
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
        .create_with_context(context)?)
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
