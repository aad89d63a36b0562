//! The seat-processor: applies booking commands to seat maps, effectively
//! exactly once, without broker transactions.
//!
//! For each batch of commands from its partitions it
//! 1. applies every command with the pure [`SeatMap::apply`] (deterministic:
//!    the same commands always give the same state and outcomes),
//! 2. publishes the outcomes to `booking-events` and waits for the broker,
//! 3. appends the state changes to `seat-changelog` (same partition), closed
//!    by an `Applied{offset}` marker, and waits for the broker,
//! 4. writes the changes and the applied offset to RocksDB in one batch,
//! 5. stores the consumer offsets.
//!
//! A crash anywhere in between replays the batch from the last marker on the
//! changelog: determinism makes the replayed outcomes identical, and every
//! outcome carries its command's offset (`seq`), so consumers drop
//! duplicates. Commands at or below a partition's applied offset are skipped.

mod restore;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_domain::{EventId, SeatMap, StateChange};
use boxoffice_platform::config::{CommonConfig, Topics};
use boxoffice_platform::health::Readiness;
use boxoffice_platform::kafka::ConsumerLag;
use boxoffice_platform::messages::{
    OutcomeEnvelope, StateRecord, decode_command, encode_outcome, encode_state,
};
use boxoffice_platform::metrics::Metrics;
use boxoffice_platform::{health, kafka, shutdown, trace};
use futures::StreamExt;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::rebalance::{PartitionTracker, TrackingContext};
use store::{Positions, Store, record_key};

/// Header naming the writer of a changelog record.
pub const WRITER_HEADER: &str = "boxoffice-writer";

/// Consumer group of every seat-processor instance (topic prefix included,
/// so systems sharing a broker never share a group).
pub fn group(common: &CommonConfig) -> String {
    common.group("seat-processor")
}

/// Settings of the seat-processor role.
#[derive(clap::Args, Debug, Clone)]
pub struct SeatProcessorConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Port of the health and metrics endpoints.
    #[arg(long, env = "BOXOFFICE_PORT", default_value_t = 8280)]
    pub port: u16,
    /// Directory of the RocksDB state; each instance uses a subdirectory named
    /// after itself.
    #[arg(long, env = "BOXOFFICE_STATE_DIR", default_value = ".stack/state")]
    pub state_dir: PathBuf,
    /// Most commands applied in one batch.
    #[arg(long, env = "BOXOFFICE_BATCH_MAX", default_value_t = 500)]
    pub batch_max: usize,
}

/// The seat-processor's instruments.
struct SeatMetrics {
    commands: IntCounterVec,
    batch_size: HistogramVec,
    stage_seconds: HistogramVec,
    restores: IntCounterVec,
    rocksdb: IntGaugeVec,
    partitions: IntGaugeVec,
    compactions: IntGaugeVec,
    event_seats: IntGaugeVec,
    lag: ConsumerLag,
}

impl SeatMetrics {
    fn new(metrics: &Metrics) -> anyhow::Result<Self> {
        let r = metrics.registry();
        let commands = IntCounterVec::new(
            Opts::new("seat_commands_total", "Commands applied by kind and result"),
            &["kind", "result"],
        )?;
        let batch_size = HistogramVec::new(
            HistogramOpts::new("seat_batch_size", "Commands per processed batch").buckets(vec![
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
            ]),
            &[],
        )?;
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("processing_stage_seconds", "Time per processing stage")
                .buckets(boxoffice_platform::metrics::LATENCY_BUCKETS.to_vec()),
            &["stage"],
        )?;
        let restores = IntCounterVec::new(
            Opts::new("seat_restores_total", "Partition restores"),
            &["source"],
        )?;
        let rocksdb = IntGaugeVec::new(
            Opts::new("rocksdb_bytes", "RocksDB memory and disk by kind"),
            &["kind"],
        )?;
        let partitions = IntGaugeVec::new(
            Opts::new("owned_partitions", "Partitions this instance owns"),
            &["topic"],
        )?;
        r.register(Box::new(commands.clone()))?;
        r.register(Box::new(batch_size.clone()))?;
        r.register(Box::new(stage_seconds.clone()))?;
        r.register(Box::new(restores.clone()))?;
        r.register(Box::new(rocksdb.clone()))?;
        r.register(Box::new(partitions.clone()))?;
        let compactions = IntGaugeVec::new(
            Opts::new(
                "rocksdb_compactions",
                "RocksDB compactions: running, pending (0/1)",
            ),
            &["state"],
        )?;
        r.register(Box::new(compactions.clone()))?;
        let event_seats = IntGaugeVec::new(
            Opts::new(
                "event_seats",
                "Seats per event by state (free, held, sold), for the events of owned partitions",
            ),
            &["event", "state"],
        )?;
        r.register(Box::new(event_seats.clone()))?;
        Ok(Self {
            commands,
            batch_size,
            stage_seconds,
            restores,
            rocksdb,
            partitions,
            compactions,
            event_seats,
            lag: ConsumerLag::new(metrics)?,
        })
    }
}

/// The state of one owned partition.
struct Partition {
    applied: Option<i64>,
    changelog: Option<i64>,
    events: HashMap<EventId, SeatMap>,
}

/// Runs the seat-processor until `shutdown` is cancelled.
pub async fn run(
    config: SeatProcessorConfig,
    instance: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Metrics::new("seat-processor", &instance)?;
    let seat_metrics = Arc::new(SeatMetrics::new(&metrics)?);
    let store = Arc::new(Store::open(&config.state_dir.join(&instance))?);
    kafka::ensure_topics(&config.common).await?;

    let probe_producer = kafka::producer(&config.common, &format!("{instance}-probe"))?;
    let readiness = Readiness::new().with("kafka", move || kafka::probe(probe_producer.clone()));
    let server = health::serve(config.port, metrics.clone(), readiness, |_| {})?;
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);
    tracing::info!(port = config.port, state_dir = %config.state_dir.display(), "seat-processor started");

    shutdown::supervise("seat-processor", &shutdown, || {
        process(&config, &instance, &store, &seat_metrics, &shutdown)
    })
    .await;
    server_handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("seat-processor stopped");
    Ok(())
}

/// One life of the processing loop, with fresh clients.
async fn process(
    config: &SeatProcessorConfig,
    instance: &str,
    store: &Arc<Store>,
    metrics: &SeatMetrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topics = config.common.topics();
    let tracker = PartitionTracker::default();
    let context = TrackingContext {
        topic: topics.commands.clone(),
        tracker: tracker.clone(),
        lag: metrics.lag.clone(),
    };
    let consumer: StreamConsumer<TrackingContext> =
        kafka::consumer(&config.common, &group(&config.common), instance, context)?;
    consumer.subscribe(&[&topics.commands])?;
    let producer = kafka::producer(&config.common, instance)?;
    let mut owned: BTreeMap<i32, Partition> = BTreeMap::new();
    // Tags this process life's changelog records, so a restore never mixes a
    // batch of one writer with records of another (a zombie's late writes).
    let writer = format!("{instance}/{}", uuid::Uuid::new_v4().simple());
    let mut batches = consumer.stream().ready_chunks(config.batch_max);
    let mut sample = tokio::time::interval(Duration::from_secs(5));

    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sample.tick() => {
                sample_store(store, metrics, &owned);
                continue;
            }
            batch = batches.next() => match batch {
                Some(b) => b,
                None => anyhow::bail!("consumer stream ended"),
            },
        };
        for p in tracker.take_revoked() {
            if owned.remove(&p).is_some() {
                tracing::info!(partition = p, "dropped state of revoked partition");
            }
        }
        let mut messages = Vec::with_capacity(batch.len());
        for m in batch {
            messages.push(m?);
        }
        metrics
            .batch_size
            .with_label_values(&[] as &[&str])
            .observe(messages.len() as f64);

        let started = Instant::now();
        let mut pending: BTreeMap<i32, PendingWrites> = BTreeMap::new();
        // Commands at or below the applied offset: (first, last, count) per partition.
        let mut skipped: BTreeMap<i32, (i64, i64, usize)> = BTreeMap::new();
        for m in &messages {
            let p = m.partition();
            if let std::collections::btree_map::Entry::Vacant(slot) = owned.entry(p) {
                slot.insert(restore::restore(&config.common, &topics, store.clone(), p).await?);
                metrics.restores.with_label_values(&["changelog"]).inc();
            }
            let partition = owned.get_mut(&p).expect("restored above");
            if partition.applied.is_some_and(|a| m.offset() <= a) {
                let s = skipped.entry(p).or_insert((m.offset(), m.offset(), 0));
                s.1 = m.offset();
                s.2 += 1;
                continue;
            }
            let writes = pending.entry(p).or_default();
            apply_message(partition, m, writes, metrics);
            partition.applied = Some(m.offset());
            writes.last_offset = m.offset();
        }
        for (p, (first, last, count)) in &skipped {
            tracing::info!(
                partition = p,
                first,
                last,
                count,
                applied = owned.get(p).and_then(|x| x.applied),
                "skipped commands already applied (a replay after restore)"
            );
        }
        metrics
            .stage_seconds
            .with_label_values(&["apply"])
            .observe(started.elapsed().as_secs_f64());
        if pending.is_empty() {
            continue;
        }
        // A partition taken away meanwhile is another instance's now: do not
        // write its changelog (the new owner replays these commands itself).
        let revoked = tracker.take_revoked();
        let pending: BTreeMap<i32, PendingWrites> = pending
            .into_iter()
            .filter(|(p, _)| !revoked.contains(p))
            .collect();
        for p in &revoked {
            if owned.remove(p).is_some() {
                tracing::info!(
                    partition = p,
                    "partition revoked mid-batch; its batch is left to the new owner"
                );
            }
        }
        for (p, w) in &pending {
            tracing::debug!(
                partition = p,
                last_offset = w.last_offset,
                commands = w.spans.len(),
                "committing batch"
            );
        }
        commit_batch(
            &producer, &writer, &topics, store, &mut owned, pending, metrics,
        )
        .await?;
        for m in &messages {
            if let Some(p) = owned.get(&m.partition())
                && p.applied.is_some_and(|a| a >= m.offset())
            {
                kafka::mark_processed(&consumer, m)?;
            }
        }
    }
    tracing::info!("seat-processor draining: committing offsets");
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .ok();
    Ok(())
}

/// What one batch will write for one partition.
#[derive(Default)]
struct PendingWrites {
    /// Outcomes with the trace context of the command they answer.
    outcomes: Vec<(EventId, OutcomeEnvelope, trace::Carrier)>,
    records: Vec<(String, Vec<u8>)>,
    last_offset: i64,
    /// One span per applied command, open until the batch is committed.
    spans: Vec<tracing::Span>,
}

/// Applies one command message to its partition's seat maps.
fn apply_message(
    partition: &mut Partition,
    m: &rdkafka::message::BorrowedMessage<'_>,
    writes: &mut PendingWrites,
    metrics: &SeatMetrics,
) {
    let envelope = match m.payload().map(decode_command) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            // A message nobody can read would block the partition forever: skip it, loudly.
            tracing::error!(partition = m.partition(), offset = m.offset(), error = %e, "skipping undecodable command");
            metrics
                .commands
                .with_label_values(&["unknown", "undecodable"])
                .inc();
            return;
        }
        None => {
            tracing::error!(
                partition = m.partition(),
                offset = m.offset(),
                "skipping empty command"
            );
            metrics
                .commands
                .with_label_values(&["unknown", "undecodable"])
                .inc();
            return;
        }
    };
    let event_id = envelope.event_id;
    let span = tracing::info_span!(
        "apply command",
        otel.kind = "consumer",
        command = command_kind(&envelope.command.kind),
        event.id = %event_id,
        booking.id = tracing::field::Empty,
        partition = m.partition(),
        offset = m.offset(),
    );
    if let Some(b) = envelope.command.kind.booking_id() {
        span.record("booking.id", tracing::field::display(b));
    }
    trace::continue_from(&span, &trace::carrier_from_headers(m.headers()));
    let carrier = trace::carrier_of(&span);
    writes.spans.push(span);
    let mut slot = partition.events.remove(&event_id);
    let transition = SeatMap::apply_to(&mut slot, event_id, &envelope.command);
    if let Some(map) = slot {
        partition.events.insert(event_id, map);
    }
    let kind = command_kind(&envelope.command.kind);
    let result = if transition.outcomes.iter().any(is_rejection) {
        "rejected"
    } else {
        "applied"
    };
    metrics.commands.with_label_values(&[kind, result]).inc();
    for change in transition.changes {
        let record = match change {
            StateChange::Event { spec, sale } => StateRecord::Event {
                event_id,
                spec,
                sale,
            },
            StateChange::Seat { index, status } => StateRecord::Seat {
                event_id,
                index,
                status,
            },
            StateChange::Booking(b) => StateRecord::Booking(b),
        };
        writes
            .records
            .push((record_key(&record), encode_state(&record)));
    }
    for outcome in transition.outcomes {
        writes.outcomes.push((
            event_id,
            OutcomeEnvelope {
                event_id,
                seq: m.offset(),
                at_ms: envelope.command.at_ms,
                reply_to: envelope.reply_to.clone(),
                outcome,
            },
            carrier.clone(),
        ));
    }
}

fn is_rejection(o: &boxoffice_domain::Outcome) -> bool {
    matches!(
        o,
        boxoffice_domain::Outcome::EventRejected { .. }
            | boxoffice_domain::Outcome::Booking {
                rejection: Some(_),
                ..
            }
    )
}

fn command_kind(k: &boxoffice_domain::CommandKind) -> &'static str {
    use boxoffice_domain::CommandKind as K;
    match k {
        K::CreateEvent { .. } => "create_event",
        K::SetSale { .. } => "set_sale",
        K::RequestBooking { .. } => "request_booking",
        K::ConfirmBooking { .. } => "confirm_booking",
        K::CancelBooking { .. } => "cancel_booking",
        K::ExpireHold { .. } => "expire_hold",
    }
}

/// Publishes outcomes, then the changelog, then writes RocksDB: in this
/// order, so that state is never durable without its outcomes having been
/// published.
async fn commit_batch(
    producer: &FutureProducer,
    writer: &str,
    topics: &Topics,
    store: &Store,
    owned: &mut BTreeMap<i32, Partition>,
    pending: BTreeMap<i32, PendingWrites>,
    metrics: &SeatMetrics,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    let outcome_payloads: Vec<(i32, String, Vec<u8>, &trace::Carrier)> = pending
        .iter()
        .flat_map(|(p, w)| {
            w.outcomes
                .iter()
                .map(move |(e, o, carrier)| (*p, e.to_string(), encode_outcome(o), carrier))
        })
        .collect();
    let sends = outcome_payloads.iter().map(|(p, key, payload, carrier)| {
        producer.send(
            FutureRecord::to(&topics.events)
                .partition(*p)
                .key(key)
                .payload(payload)
                .headers(trace::with_headers(OwnedHeaders::new(), carrier)),
            timeout,
        )
    });
    for r in futures::future::join_all(sends).await {
        r.map_err(|(e, _)| anyhow::anyhow!("publishing outcome failed: {e}"))?;
    }
    metrics
        .stage_seconds
        .with_label_values(&["publish_outcomes"])
        .observe(started.elapsed().as_secs_f64());

    let started = Instant::now();
    let markers: BTreeMap<i32, (String, Vec<u8>)> = pending
        .iter()
        .map(|(p, w)| {
            let marker = StateRecord::Applied {
                offset: w.last_offset,
            };
            (*p, (record_key(&marker), encode_state(&marker)))
        })
        .collect();
    let mut changelog: Vec<(i32, bool, &str, &[u8])> = Vec::new();
    for (p, w) in &pending {
        changelog.extend(
            w.records
                .iter()
                .map(|(k, v)| (*p, false, k.as_str(), v.as_slice())),
        );
        let (k, v) = &markers[p];
        changelog.push((*p, true, k.as_str(), v.as_slice()));
    }
    let changelog_sends = changelog
        .iter()
        .map(|(p, is_marker, key, value)| async move {
            let writer = OwnedHeaders::new().insert(Header {
                key: WRITER_HEADER,
                value: Some(writer),
            });
            let record = FutureRecord::to(&topics.changelog)
                .partition(*p)
                .key(*key)
                .payload(*value)
                .headers(writer);
            (*p, *is_marker, producer.send(record, timeout).await)
        });
    let mut marker_offsets = HashMap::new();
    for (p, is_marker, r) in futures::future::join_all(changelog_sends).await {
        let delivery =
            r.map_err(|(e, _)| anyhow::anyhow!("appending to the changelog failed: {e}"))?;
        if is_marker {
            marker_offsets.insert(p, delivery.offset);
        }
    }
    metrics
        .stage_seconds
        .with_label_values(&["append_changelog"])
        .observe(started.elapsed().as_secs_f64());

    let started = Instant::now();
    for (p, w) in &pending {
        let partition = owned.get_mut(p).expect("pending partitions are owned");
        partition.changelog = marker_offsets.get(p).copied().or(partition.changelog);
        store.write(
            *p,
            &w.records,
            Positions {
                applied: partition.applied,
                changelog: partition.changelog,
            },
        )?;
    }
    metrics
        .stage_seconds
        .with_label_values(&["write_rocksdb"])
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

fn sample_store(store: &Store, metrics: &SeatMetrics, owned: &BTreeMap<i32, Partition>) {
    // Events of partitions no longer owned drop out; their new owner reports them.
    metrics.event_seats.reset();
    for map in owned.values().flat_map(|p| p.events.values()) {
        let c = map.counts();
        let event = map.event_id().to_string();
        for (state, n) in [("free", c.free), ("held", c.held), ("sold", c.sold)] {
            metrics
                .event_seats
                .with_label_values(&[event.as_str(), state])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    for (kind, property) in [
        ("memtables", "rocksdb.cur-size-all-mem-tables"),
        ("block_cache", "rocksdb.block-cache-usage"),
        ("table_readers", "rocksdb.estimate-table-readers-mem"),
        ("sst_files", "rocksdb.total-sst-files-size"),
        (
            "pending_compaction",
            "rocksdb.estimate-pending-compaction-bytes",
        ),
    ] {
        if let Some(v) = store.property(property) {
            metrics
                .rocksdb
                .with_label_values(&[kind])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
    for (state, property) in [
        ("running", "rocksdb.num-running-compactions"),
        ("pending", "rocksdb.compaction-pending"),
    ] {
        if let Some(v) = store.property(property) {
            metrics
                .compactions
                .with_label_values(&[state])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
    metrics
        .partitions
        .with_label_values(&["booking-commands"])
        .set(owned.len() as i64);
}
