//! A consumer context that tells the processing loop which partitions it
//! gained and lost, so that it restores state for new partitions and drops
//! state it no longer owns.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use boxoffice_platform::kafka::ConsumerLag;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

/// Partitions revoked since the loop last looked, and the current assignment.
#[derive(Clone, Default)]
pub struct PartitionTracker {
    inner: Arc<Mutex<Tracked>>,
}

#[derive(Default)]
struct Tracked {
    revoked: BTreeSet<i32>,
    assigned: BTreeSet<i32>,
}

impl PartitionTracker {
    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> BTreeSet<i32> {
        std::mem::take(&mut self.inner.lock().expect("tracker lock").revoked)
    }

    /// Partitions currently assigned to this instance.
    pub fn assigned(&self) -> BTreeSet<i32> {
        self.inner.lock().expect("tracker lock").assigned.clone()
    }
}

/// The consumer context carrying a [`PartitionTracker`]; it also turns the
/// client's statistics into the consumer-lag gauge.
pub struct TrackingContext {
    pub topic: String,
    pub tracker: PartitionTracker,
    pub lag: ConsumerLag,
}

impl ClientContext for TrackingContext {
    fn stats(&self, statistics: Statistics) {
        self.lag.observe(&statistics);
    }
}

impl ConsumerContext for TrackingContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut t = self.tracker.inner.lock().expect("tracker lock");
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                tracing::info!(topic = %self.topic, partitions = ?parts, "partitions assigned");
                t.assigned.extend(parts);
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                tracing::info!(topic = %self.topic, partitions = ?parts, "partitions revoked");
                for p in parts {
                    t.assigned.remove(&p);
                    t.revoked.insert(p);
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}
