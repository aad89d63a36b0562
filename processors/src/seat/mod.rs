//! The seat-processor: applies booking commands to seat maps, effectively
//! exactly once, without broker transactions, on any Kafka-protocol broker
//! (docs/seat-state-protocol.md is the authority).
//!
//! Taking over a partition opens a new ownership epoch and restores the
//! newest complete state from `seat-changelog` ([`restore`]). Then, for each
//! batch of commands from its partitions, it
//! 1. applies every command with the pure [`SeatMap::apply`] (deterministic:
//!    the same commands always give the same state and outcomes),
//! 2. publishes the outcomes to `booking-events`, undecodable commands to the
//!    dead-letter topic, and the changed state (with the values it replaces)
//!    to `seat-changelog` in its epoch's namespace, and waits for the broker,
//! 3. only then appends the batch's marker, and waits for the broker,
//! 4. writes the changes and the applied offset to RocksDB in one batch,
//! 5. stores the consumer offsets.
//!
//! A crash anywhere in between restores the last marked state and applies
//! the rest again: determinism makes the replayed outcomes identical, and
//! every outcome carries its command's offset (`seq`), so consumers drop
//! duplicates. A writer whose changelog records do not land back to back has
//! another writer beside it (a zombie, or a newer owner): it stops writing
//! that partition and restores it afresh before going on.

mod append;
pub mod changelog;
mod restore;
mod state_query;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_domain::{EventId, SeatMap, StateChange};
use boxoffice_platform::config::{CommonConfig, Topics};
use boxoffice_platform::health::Readiness;
use boxoffice_platform::kafka::ConsumerLag;
use boxoffice_platform::messages::{
    ChangelogRecord, OutcomeEnvelope, StateRecord, command_from_newer_schema, decode_command,
    encode_outcome,
};
use boxoffice_platform::metrics::Metrics;
use boxoffice_platform::{health, kafka, shutdown, trace};
use futures::StreamExt;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset};
use tokio_util::sync::CancellationToken;

use crate::rebalance::{PartitionTracker, TrackingContext};
use append::Landed;
use restore::RestoreError;
use store::{Positions, Store, record_key};

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
    fenced: IntCounterVec,
    refused: IntGaugeVec,
    dead_letters: IntCounterVec,
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
        let fenced = IntCounterVec::new(
            Opts::new(
                "seat_writer_fenced_total",
                "Times this instance found another writer on a partition's changelog and gave the partition up",
            ),
            &["stage"],
        )?;
        r.register(Box::new(fenced.clone()))?;
        let refused = IntGaugeVec::new(
            Opts::new(
                "seat_partition_refused",
                "1 while a partition is refused (its commands topic lost applied commands)",
            ),
            &["partition"],
        )?;
        r.register(Box::new(refused.clone()))?;
        let dead_letters = boxoffice_platform::kafka::dead_letter_counter(metrics)?;
        Ok(Self {
            commands,
            batch_size,
            stage_seconds,
            restores,
            rocksdb,
            partitions,
            compactions,
            event_seats,
            fenced,
            refused,
            dead_letters,
            lag: ConsumerLag::new(metrics)?,
        })
    }
}

/// The state of one owned partition.
pub(crate) struct Partition {
    /// The last command applied, if any.
    applied: Option<i64>,
    /// This instance's ownership epoch for the partition.
    epoch: i64,
    /// Where this writer's next changelog record must land; anything else
    /// means another writer appends too.
    next_changelog: i64,
    /// The offset of the next command to apply.
    next_command: i64,
    events: HashMap<EventId, SeatMap>,
    /// Keys the last committed batch forgot: absent as of its marker, so
    /// the next batch may tombstone them for compaction.
    forgotten: Vec<String>,
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
    boxoffice_platform::registry::prepare(&config.common).await?;

    let probe_producer = kafka::producer(&config.common, &format!("{instance}-probe"))?;
    let readiness = Readiness::new().with("kafka", move || kafka::probe(probe_producer.clone()));
    let query_store = store.clone();
    let server = health::serve(config.port, metrics.clone(), readiness, move |cfg| {
        state_query::routes(cfg, query_store.clone());
    })?;
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
    // Parts of one event talk through booking-commands, each part on its
    // own partition (docs/event-partitioning.md): where a part's commands
    // go follows from the topic's partition count.
    let command_partitions = kafka::partition_count(&producer, &topics.commands).await?;
    let mut owned: BTreeMap<i32, Partition> = BTreeMap::new();
    let mut held = Held::default();
    let mut restores: tokio::task::JoinSet<(i32, Result<Partition, RestoreError>)> =
        tokio::task::JoinSet::new();
    let mut batches = consumer.stream().ready_chunks(config.batch_max);
    let mut sample = tokio::time::interval(Duration::from_secs(5));

    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sample.tick() => {
                sample_store(store, metrics, &owned);
                continue;
            }
            Some(done) = restores.join_next(), if !restores.is_empty() => {
                // A restore aborted because its partition was revoked.
                let Ok((p, result)) = done else { continue };
                held.restoring.remove(&p);
                let tpl = only(&topics.commands, p);
                if !tracker.assigned().contains(&p) {
                    tracing::info!(partition = p, "restored a partition revoked meanwhile; dropped it");
                    let _ = consumer.resume(&tpl);
                    continue;
                }
                match result {
                    Ok(partition) => {
                        metrics.refused.with_label_values(&[&p.to_string()]).set(0);
                        metrics.restores.with_label_values(&["changelog"]).inc();
                        // Commands read while restoring were passed over:
                        // go back to the first one not applied (if the seek
                        // cannot be done yet, the next command read rewinds).
                        let next = partition.next_command;
                        owned.insert(p, partition);
                        match consumer.seek(&topics.commands, p, Offset::Offset(next), Duration::from_secs(10)) {
                            Ok(()) => {
                                held.rewinding.insert(p, next);
                            }
                            Err(e) => tracing::warn!(partition = p, error = %e, "could not rewind after the restore yet"),
                        }
                        consumer.resume(&tpl)?;
                    }
                    Err(RestoreError::Refused(why)) => {
                        held.refuse(p, &consumer, &topics.commands, metrics, &why)?;
                    }
                    Err(e) => {
                        // The restore task retries what can pass; anything
                        // else stops only this partition until it is
                        // assigned again.
                        held.refuse(p, &consumer, &topics.commands, metrics, &format!("restore failed: {e:#}"))?;
                    }
                }
                continue;
            }
            batch = batches.next() => match batch {
                Some(b) => b,
                None => anyhow::bail!("consumer stream ended"),
            },
        };
        for p in tracker.take_revoked() {
            held.let_go(p, &consumer, &topics.commands, metrics);
            if owned.remove(&p).is_some() {
                tracing::info!(partition = p, "dropped state of revoked partition");
            }
        }
        // Messages read before a revocation may still be in this batch.
        let assigned = tracker.assigned();
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
        // Commands below the next one to apply: (first, last, count) per partition.
        let mut skipped: BTreeMap<i32, (i64, i64, usize)> = BTreeMap::new();
        for m in &messages {
            let p = m.partition();
            if held.refused.contains(&p) || !assigned.contains(&p) {
                continue;
            }
            if let Some(&to) = held.rewinding.get(&p) {
                if m.offset() != to {
                    continue;
                }
                held.rewinding.remove(&p);
            }
            if held.restoring.contains_key(&p) {
                continue;
            }
            if !owned.contains_key(&p) {
                // Restore off the loop, the partition paused meanwhile, so
                // the consumer keeps polling (and its group membership) and
                // the other partitions go on.
                consumer.pause(&only(&topics.commands, p))?;
                let (common, topics, store, producer) = (
                    config.common.clone(),
                    topics.clone(),
                    store.clone(),
                    producer.clone(),
                );
                let writer = format!("{instance}/{}", uuid::Uuid::new_v4().simple());
                let task = restores.spawn(async move {
                    // Failures that may pass (the broker away, lost races)
                    // are retried here, backing off; a revocation aborts it.
                    let mut backoff = Duration::from_millis(500);
                    loop {
                        match restore::restore(&common, &topics, store.clone(), &producer, &writer, p)
                            .await
                        {
                            Err(RestoreError::Contended(why)) => {
                                tracing::warn!(partition = p, why, "restore keeps losing races; retrying")
                            }
                            Err(RestoreError::Other(e)) => {
                                tracing::warn!(partition = p, error = %e, "restore failed; retrying")
                            }
                            result => return (p, result),
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                });
                held.restoring.insert(p, task);
                continue;
            }
            let partition = owned.get_mut(&p).expect("owned, checked above");
            if m.offset() < partition.next_command {
                let s = skipped.entry(p).or_insert((m.offset(), m.offset(), 0));
                s.1 = m.offset();
                s.2 += 1;
                continue;
            }
            if m.offset() > partition.next_command {
                // The consumer is ahead of the restored state (its committed
                // offset came from a writer whose state was not the newest
                // complete one): go back rather than skip commands.
                let to = partition.next_command;
                tracing::warn!(
                    partition = p,
                    at = m.offset(),
                    to,
                    "consumer ahead of the restored state; rewinding"
                );
                consumer.seek(
                    &topics.commands,
                    p,
                    Offset::Offset(to),
                    Duration::from_secs(10),
                )?;
                held.rewinding.insert(p, to);
                continue;
            }
            if m.payload().is_some_and(command_from_newer_schema) {
                // A newer version's command: this version must not decide it
                // (nor drop it); the partition waits for an upgraded instance.
                let why = format!(
                    "command at offset {} was written with a newer schema than this version knows; an upgraded seat-processor must take the partition",
                    m.offset()
                );
                held.refuse(p, &consumer, &topics.commands, metrics, &why)?;
                continue;
            }
            let writes = pending.entry(p).or_default();
            apply_message(partition, m, writes, metrics, command_partitions);
            partition.applied = Some(m.offset());
            partition.next_command = m.offset() + 1;
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
            held.let_go(*p, &consumer, &topics.commands, metrics);
            if owned.remove(p).is_some() {
                tracing::info!(
                    partition = p,
                    "partition revoked mid-batch; its batch is left to the new owner"
                );
            }
        }
        let fenced = commit_batch(&producer, &topics, store, &mut owned, pending, metrics).await?;
        for (p, why) in fenced {
            owned.remove(&p);
            metrics.fenced.with_label_values(&["batch"]).inc();
            tracing::warn!(
                partition = p,
                why,
                "another writer is on this partition's changelog: giving it up; it is restored afresh if it stays ours"
            );
        }
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

/// The partitions the loop holds back: being restored, refused, or sent
/// back to an earlier command.
#[derive(Default)]
struct Held {
    /// Restores under way (their partitions paused meanwhile).
    restoring: HashMap<i32, tokio::task::AbortHandle>,
    /// Partitions stopped until they are assigned again (paused).
    refused: BTreeSet<i32>,
    /// Partitions sent back to an earlier command, and to which.
    rewinding: HashMap<i32, i64>,
}

impl Held {
    /// Stops `p` (and only it): paused, counted, and said why.
    fn refuse<C: rdkafka::consumer::ConsumerContext>(
        &mut self,
        p: i32,
        consumer: &StreamConsumer<C>,
        topic: &str,
        metrics: &SeatMetrics,
        why: &str,
    ) -> anyhow::Result<()> {
        consumer.pause(&only(topic, p))?;
        metrics.refused.with_label_values(&[&p.to_string()]).set(1);
        tracing::error!(partition = p, "partition refused: {why}");
        self.refused.insert(p);
        Ok(())
    }

    /// Forgets a partition this instance no longer owns: a restore under
    /// way is aborted, and its pause lifted (librdkafka keeps an
    /// application's pause across a later re-assignment).
    fn let_go<C: rdkafka::consumer::ConsumerContext>(
        &mut self,
        p: i32,
        consumer: &StreamConsumer<C>,
        topic: &str,
        metrics: &SeatMetrics,
    ) {
        self.rewinding.remove(&p);
        if self.refused.remove(&p) {
            metrics.refused.with_label_values(&[&p.to_string()]).set(0);
        }
        if let Some(task) = self.restoring.remove(&p) {
            task.abort();
        }
        let _ = consumer.resume(&only(topic, p));
    }
}

/// One partition of `topic`, for pause, resume and seek calls.
fn only(topic: &str, p: i32) -> rdkafka::TopicPartitionList {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, p);
    tpl
}

/// What one batch will write for one partition.
#[derive(Default)]
struct PendingWrites {
    /// Outcomes with the trace context of the command they answer.
    outcomes: Vec<(EventId, OutcomeEnvelope, trace::Carrier)>,
    /// The newest value of every key the batch changed, by key.
    changes: BTreeMap<String, StateRecord>,
    /// Commands nobody can read, for the dead-letter topic.
    dead_letters: Vec<kafka::DeadLetter>,
    /// Commands for other parts of an event: (partition, key, payload).
    /// Sent with the outcomes, before the marker, so a replay sends them
    /// again and never loses one; their receivers drop repeats.
    forwards: Vec<(i32, String, Vec<u8>)>,
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
    command_partitions: i32,
) {
    let envelope = match m.payload().map(decode_command) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            // A message nobody can read would block the partition forever:
            // it goes to the dead-letter topic, loudly, and the partition moves on.
            tracing::error!(partition = m.partition(), offset = m.offset(), error = %e, "undecodable command: to the dead-letter topic");
            metrics
                .commands
                .with_label_values(&["unknown", "undecodable"])
                .inc();
            writes
                .dead_letters
                .push(kafka::DeadLetter::of(m, "undecodable", &e.to_string()));
            return;
        }
        None => {
            tracing::error!(
                partition = m.partition(),
                offset = m.offset(),
                "empty command: to the dead-letter topic"
            );
            metrics
                .commands
                .with_label_values(&["unknown", "undecodable"])
                .inc();
            writes.dead_letters.push(kafka::DeadLetter::of(
                m,
                "empty",
                "the message has no payload",
            ));
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
    let at_ms = envelope.command.at_ms;
    // Events over for long enough leave the state, decided by command time
    // like everything else, so every replay retires them at the same command.
    for map in partition
        .events
        .values_mut()
        .filter(|m| m.retire_due(at_ms))
    {
        tracing::info!(event = %map.event_id(), partition = m.partition(), offset = m.offset(), "retiring an event that is over");
        let retired = map.event_id();
        for change in map.retire() {
            let (key, record) = change_record(retired, at_ms, change);
            writes.changes.insert(key, record);
        }
    }
    let mut slot = partition.events.remove(&event_id);
    let transition = SeatMap::apply_to(&mut slot, event_id, &envelope.command);
    let (part, parts) = slot.as_ref().map_or((0, 1), |m| (m.part(), m.spec().parts));
    if let Some(map) = slot {
        partition.events.insert(event_id, map);
    }
    if !transition.forwards.is_empty() {
        // Part k sits k strides after part 0 (kafka::EventPart): this
        // part's own partition tells where part 0 is.
        let stride = kafka::EventPart::stride(parts, command_partitions);
        let base = (m.partition() - i32::from(part) * stride).rem_euclid(command_partitions);
        for f in transition.forwards {
            let to = (base + i32::from(f.part) * stride).rem_euclid(command_partitions);
            let forward = boxoffice_platform::messages::CommandEnvelope {
                event_id,
                reply_to: envelope.reply_to.clone(),
                command: boxoffice_domain::Command {
                    at_ms: envelope.command.at_ms,
                    kind: f.kind,
                },
            };
            writes.forwards.push((
                to,
                event_id.to_string(),
                boxoffice_platform::messages::encode_command(&forward),
            ));
        }
    }
    let kind = command_kind(&envelope.command.kind);
    let result = if transition.outcomes.iter().any(is_rejection) {
        "rejected"
    } else {
        "applied"
    };
    metrics.commands.with_label_values(&[kind, result]).inc();
    for change in transition.changes {
        let (key, record) = change_record(event_id, at_ms, change);
        writes.changes.insert(key, record);
    }
    for outcome in transition.outcomes {
        writes.outcomes.push((
            event_id,
            OutcomeEnvelope {
                event_id,
                seq: m.offset(),
                at_ms: envelope.command.at_ms,
                reply_to: envelope.reply_to.clone(),
                part,
                outcome,
            },
            carrier.clone(),
        ));
    }
}

/// The local key and record of a state change.
fn change_record(event_id: EventId, at_ms: i64, change: StateChange) -> (String, StateRecord) {
    let forgotten = match &change {
        StateChange::Forgotten(b) => Some(store::booking_key(*b)),
        _ => None,
    };
    let record = StateRecord::of_change(event_id, at_ms, change);
    (forgotten.unwrap_or_else(|| record_key(&record)), record)
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
        K::ReserveQuota { .. } => "reserve_quota",
        K::QuotaAnswer { .. } => "quota_answer",
        K::ReleaseQuota { .. } => "release_quota",
    }
}

/// Why a partition was given up during a batch.
type Fenced = Vec<(i32, String)>;

/// Publishes a batch, then its markers, then writes RocksDB: the marker only
/// once every outcome, dead letter and changelog record of its batch is
/// acknowledged, so no restore can see a batch without what it published.
/// Returns the partitions on which another writer showed up.
async fn commit_batch(
    producer: &FutureProducer,
    topics: &Topics,
    store: &Store,
    owned: &mut BTreeMap<i32, Partition>,
    pending: BTreeMap<i32, PendingWrites>,
    metrics: &SeatMetrics,
) -> anyhow::Result<Fenced> {
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    // The changelog records, each with the value it replaces: the value the
    // local copy holds, which is the state as of the previous marker.
    let mut records: BTreeMap<i32, Vec<(String, Option<ChangelogRecord>)>> = BTreeMap::new();
    for (p, w) in &pending {
        let epoch = owned[p].epoch;
        let previous = store.get_many(*p, w.changes.keys())?;
        // What the previous batch forgot is absent as of its marker: a
        // tombstone changes nothing a restore sees, torn batch or not.
        let mut list: Vec<(String, Option<ChangelogRecord>)> = owned[p]
            .forgotten
            .iter()
            .filter(|k| !w.changes.contains_key(*k))
            .map(|k| (changelog::key_of(epoch, k), None))
            .collect();
        list.extend(
            w.changes
                .iter()
                .zip(previous)
                .map(|((key, body), previous)| {
                    let record = ChangelogRecord {
                        epoch,
                        batch: w.last_offset,
                        body: body.clone(),
                        previous,
                    };
                    (changelog::key_of(epoch, key), Some(record))
                }),
        );
        records.insert(*p, list);
    }
    let outcome_payloads: Vec<(i32, String, Vec<u8>, &trace::Carrier)> = pending
        .iter()
        .flat_map(|(p, w)| {
            w.outcomes
                .iter()
                .map(move |(e, o, carrier)| (*p, e.to_string(), encode_outcome(o), carrier))
        })
        .collect();
    let outcome_sends = outcome_payloads.iter().map(|(p, key, payload, carrier)| {
        producer.send(
            FutureRecord::to(&topics.events)
                .partition(*p)
                .key(key)
                .payload(payload)
                .headers(trace::with_headers(OwnedHeaders::new(), carrier)),
            timeout,
        )
    });
    let dead_letter_sends = pending
        .values()
        .flat_map(|w| &w.dead_letters)
        .map(|d| d.send(producer, &topics.dead_letters, timeout));
    let forward_sends = pending
        .values()
        .flat_map(|w| &w.forwards)
        .map(|(to, key, payload)| {
            producer.send(
                FutureRecord::to(&topics.commands)
                    .partition(*to)
                    .key(key)
                    .payload(payload),
                timeout,
            )
        });
    let changelog_runs = records.iter().map(|(p, list)| {
        let next = owned[p].next_changelog;
        async move {
            let landed = append::run(producer, &topics.changelog, *p, next, list, "batch").await;
            (*p, landed)
        }
    });
    let (outcomes, forwards, dead_letters, changelog_runs) = futures::join!(
        futures::future::join_all(outcome_sends),
        futures::future::join_all(forward_sends),
        futures::future::join_all(dead_letter_sends),
        futures::future::join_all(changelog_runs),
    );
    for r in outcomes {
        r.map_err(|(e, _)| anyhow::anyhow!("publishing outcome failed: {e}"))?;
    }
    for r in forwards {
        r.map_err(|(e, _)| anyhow::anyhow!("sending a command to another part failed: {e}"))?;
    }
    for (r, d) in dead_letters
        .into_iter()
        .zip(pending.values().flat_map(|w| &w.dead_letters))
    {
        r?;
        metrics
            .dead_letters
            .with_label_values(&[&topics.commands, d.reason()])
            .inc();
    }
    metrics
        .stage_seconds
        .with_label_values(&["publish_outcomes"])
        .observe(started.elapsed().as_secs_f64());

    let started = Instant::now();
    let mut fenced = Fenced::new();
    let mut marker_runs = Vec::new();
    for (p, landed) in changelog_runs {
        match landed? {
            Landed::Next(next) => {
                let (key, marker) = changelog::marker(owned[&p].epoch, pending[&p].last_offset);
                marker_runs.push((p, next, (key, Some(marker))));
            }
            Landed::Gap(why) => fenced.push((p, why)),
        }
    }
    let markers = marker_runs.iter().map(|(p, next, marker)| async move {
        let landed = append::run(
            producer,
            &topics.changelog,
            *p,
            *next,
            std::slice::from_ref(marker),
            "marker",
        )
        .await;
        (*p, landed)
    });
    let mut marked = Vec::new();
    for (p, landed) in futures::future::join_all(markers).await {
        match landed? {
            Landed::Next(next) => marked.push((p, next)),
            Landed::Gap(why) => fenced.push((p, why)),
        }
    }
    metrics
        .stage_seconds
        .with_label_values(&["append_changelog"])
        .observe(started.elapsed().as_secs_f64());

    let started = Instant::now();
    for (p, next) in marked {
        let partition = owned.get_mut(&p).expect("pending partitions are owned");
        partition.next_changelog = next;
        partition.forgotten = pending[&p]
            .changes
            .iter()
            .filter(|(_, r)| matches!(r, StateRecord::Forgotten { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        store.write(
            p,
            &pending[&p].changes,
            Positions {
                applied: partition.applied,
                epoch: Some(partition.epoch),
            },
        )?;
    }
    metrics
        .stage_seconds
        .with_label_values(&["write_rocksdb"])
        .observe(started.elapsed().as_secs_f64());
    Ok(fenced)
}

fn sample_store(store: &Store, metrics: &SeatMetrics, owned: &BTreeMap<i32, Partition>) {
    // Events of partitions no longer owned drop out; their new owner reports them.
    metrics.event_seats.reset();
    // An instance may own several parts of one event: their seats add up.
    let mut per_event: BTreeMap<EventId, [usize; 3]> = BTreeMap::new();
    for map in owned.values().flat_map(|p| p.events.values()) {
        let c = map.counts();
        let sum = per_event.entry(map.event_id()).or_default();
        for (total, n) in sum.iter_mut().zip([c.free, c.held, c.sold]) {
            *total += n;
        }
    }
    for (event, counts) in per_event {
        let event = event.to_string();
        for (state, n) in ["free", "held", "sold"].into_iter().zip(counts) {
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
