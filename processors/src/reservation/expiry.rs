//! Hold expiry. Each instance looks for overdue holds on the partitions it
//! owns and sends `ExpireHold` through `booking-commands`, so expiry is
//! ordered with every other command for that event. Duplicates (two
//! instances during a rebalance, a resend) are harmless: the seat-processor
//! only expires a hold that is still held and due.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_domain::{BookingId, Command, CommandKind, EventId};
use boxoffice_platform::messages::{CommandEnvelope, encode_command};
use boxoffice_platform::now_ms;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::{ReservationMetrics, Shared, store};
use crate::rebalance::PartitionTracker;

/// How long before an unanswered `ExpireHold` is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(15);

pub(super) async fn run(
    shared: Shared,
    producer: FutureProducer,
    commands_topic: String,
    tracker: PartitionTracker,
    every: Duration,
    metrics: Arc<ReservationMetrics>,
    stop: CancellationToken,
) {
    let mut sent: HashMap<uuid::Uuid, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let partitions: Vec<i32> = tracker.assigned().into_iter().collect();
        if partitions.is_empty() {
            continue;
        }
        sent.retain(|_, at| at.elapsed() < RESEND_AFTER);
        let due = match shared.pool.get().await {
            Ok(mut conn) => store::due_holds(&mut conn, &partitions, 1000).await,
            Err(e) => {
                tracing::warn!(error = %e, "expiry sweep: no database connection");
                continue;
            }
        };
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "expiry sweep failed");
                continue;
            }
        };
        let fresh: Vec<_> = due
            .into_iter()
            .filter(|d| !sent.contains_key(&d.id))
            .collect();
        if fresh.is_empty() {
            continue;
        }
        let at = now_ms();
        // To the partition that decided the booking (the outcomes of a
        // partition of booking-commands are on the same partition of
        // booking-events), so it is ordered with that booking's commands.
        let payloads: Vec<(String, Vec<u8>, uuid::Uuid, i32)> = fresh
            .iter()
            .map(|d| {
                let envelope = CommandEnvelope {
                    event_id: EventId(d.event_id),
                    reply_to: None,
                    command: Command {
                        at_ms: at,
                        kind: CommandKind::ExpireHold {
                            booking_id: BookingId(d.id),
                        },
                    },
                };
                (
                    d.event_id.to_string(),
                    encode_command(&envelope),
                    d.id,
                    d.kafka_partition,
                )
            })
            .collect();
        let sends = payloads.iter().map(|(key, payload, _, partition)| {
            producer.send(
                FutureRecord::to(&commands_topic)
                    .partition(*partition)
                    .key(key)
                    .payload(payload),
                Duration::from_secs(5),
            )
        });
        for (result, (_, _, id, _)) in futures::future::join_all(sends)
            .await
            .into_iter()
            .zip(&payloads)
        {
            match result {
                Ok(_) => {
                    sent.insert(*id, Instant::now());
                    metrics
                        .expiry_commands
                        .with_label_values(&[] as &[&str])
                        .inc();
                }
                Err((e, _)) => {
                    tracing::warn!(booking = %id, error = %e, "sending ExpireHold failed; will retry")
                }
            }
        }
        tracing::info!(count = payloads.len(), "sent hold expiries");
    }
}
