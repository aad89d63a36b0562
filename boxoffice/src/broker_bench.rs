//! `boxoffice broker-bench`: what the broker alone does on this machine,
//! with the pipeline's own client settings (idempotent producer, `acks=all`,
//! the same linger and fetch wait): messages of a given size produced to a
//! fresh topic while a consumer reads them back. The pipeline's speed is
//! then shown against this ceiling (bench/run.sh).
//!
//! `--watermarks` instead counts the records in every topic of a prefix, so
//! a benchmark can tell how many records the broker stored per decision.

use std::time::{Duration, Instant};

use boxoffice_platform::config::CommonConfig;
use boxoffice_platform::kafka;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use serde::Serialize;

#[derive(clap::Args, Debug, Clone)]
pub struct BrokerBenchArgs {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Messages to send.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Payload bytes per message (the pipeline's messages are 100-400 B).
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Sends not yet acknowledged at once.
    #[arg(long, default_value_t = 1_000)]
    pub in_flight: usize,
    /// Instead: print the records held by every topic named with this
    /// prefix (high watermark minus low), as JSON, and exit.
    #[arg(long)]
    pub watermarks: Option<String>,
}

#[derive(Serialize)]
struct Ceiling {
    messages: usize,
    size: usize,
    partitions: i32,
    produced_per_s: f64,
    consumed_per_s: f64,
    /// Produced and consumed once each, end to end.
    through_per_s: f64,
    round_trip_ms_p50: f64,
    round_trip_ms_p99: f64,
}

pub async fn run(args: BrokerBenchArgs) -> anyhow::Result<()> {
    if let Some(prefix) = &args.watermarks {
        let counts = watermarks(&args.common, prefix)?;
        println!("{}", serde_json::to_string(&counts)?);
        return Ok(());
    }
    let topic = format!(
        "broker-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let partitions = args.common.partitions;
    let admin: AdminClient<DefaultClientContext> =
        kafka::client_config(&args.common, "broker-bench-admin").create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(args.common.replication_factor),
            )],
            &options,
        )
        .await?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    eprintln!(
        "[broker-bench] {} messages of {} B to {topic} ({partitions} partitions)",
        args.messages, args.size
    );

    let consumer: BaseConsumer = kafka::fetch_config(&args.common, "broker-bench-consumer")
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    // Assigned, not subscribed: no group join delays the first reads.
    let mut all = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        all.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&all)?;
    let expected = args.messages;
    let reader = std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, Instant)> {
        let mut trips = Vec::with_capacity(expected);
        let mut last = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(600);
        while trips.len() < expected && Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m?;
            let sent = m
                .payload()
                .and_then(|p| p.get(..16))
                .map(|b| u128::from_le_bytes(b.try_into().expect("16 bytes")));
            if let Some(sent) = sent {
                let now = now_micros();
                trips.push(Duration::from_micros(now.saturating_sub(sent) as u64));
                last = Instant::now();
            }
        }
        Ok((trips, last))
    });

    let producer = kafka::producer(&args.common, "broker-bench-producer")?;
    // Both clients connected before the clock starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut sends = futures::stream::FuturesUnordered::new();
    let mut acknowledged = 0usize;
    let mut progress = Instant::now();
    for i in 0..args.messages {
        let mut payload = vec![0u8; args.size.max(16)];
        payload[..16].copy_from_slice(&now_micros().to_le_bytes());
        let key = (i % 1024).to_string();
        let producer = producer.clone();
        let topic = topic.clone();
        sends.push(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| anyhow::anyhow!("send failed: {e}"))
        });
        while sends.len() >= args.in_flight {
            futures::StreamExt::next(&mut sends)
                .await
                .expect("pending")?;
            acknowledged += 1;
        }
        if progress.elapsed() >= Duration::from_secs(1) {
            eprintln!("[broker-bench] {acknowledged} acknowledged");
            progress = Instant::now();
        }
    }
    while let Some(r) = futures::StreamExt::next(&mut sends).await {
        r?;
    }
    let produced = started.elapsed();
    let (mut trips, last) = tokio::task::spawn_blocking(move || reader.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    anyhow::ensure!(
        trips.len() == args.messages,
        "read back {} of {} messages",
        trips.len(),
        args.messages
    );
    let consumed = last.duration_since(started);
    trips.sort();
    let pct =
        |p: f64| trips[((trips.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    let ceiling = Ceiling {
        messages: args.messages,
        size: args.size,
        partitions,
        produced_per_s: args.messages as f64 / produced.as_secs_f64(),
        consumed_per_s: args.messages as f64 / consumed.as_secs_f64(),
        through_per_s: args.messages as f64 / consumed.max(produced).as_secs_f64(),
        round_trip_ms_p50: pct(0.5),
        round_trip_ms_p99: pct(0.99),
    };
    println!("{}", serde_json::to_string(&ceiling)?);
    let _ = admin.delete_topics(&[&topic], &options).await;
    Ok(())
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Records per topic of `prefix` (high watermark minus low, summed over
/// partitions).
fn watermarks(
    common: &CommonConfig,
    prefix: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let consumer: BaseConsumer =
        kafka::client_config(common, "broker-bench-watermarks").create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let mut counts = std::collections::BTreeMap::new();
    for t in metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix))
    {
        let mut n = 0;
        for p in t.partitions() {
            let (low, high) =
                consumer.fetch_watermarks(t.name(), p.id(), Duration::from_secs(10))?;
            n += high - low;
        }
        counts.insert(t.name().to_owned(), n);
    }
    Ok(counts)
}
