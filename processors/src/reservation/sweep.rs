//! Forgetting refused bookings. A refusal is kept while a client may still
//! retry with the same key (the API answers a retry from the cache, which
//! keeps a booking as long); after `BOXOFFICE_REFUSAL_RETENTION_SECS` it is
//! deleted and only counted, so refused attempts, a bot's included, cannot
//! grow PostgreSQL without bound. The seat-processor forgets them too, by
//! command time (`REFUSAL_TTL_MS`, docs/seat-state-protocol.md).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ReservationMetrics, Shared, store};

/// Most refusals deleted in one statement, so one sweep never holds many locks.
const PER_STATEMENT: i64 = 5_000;

pub(super) async fn run(
    shared: Shared,
    retention: Duration,
    metrics: Arc<ReservationMetrics>,
    stop: CancellationToken,
) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut conn = match shared.pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "refusal sweep: no database connection");
                continue;
            }
        };
        let mut total = 0;
        loop {
            match store::sweep_refusals(&mut conn, before, PER_STATEMENT).await {
                Ok(n) => {
                    total += n;
                    metrics
                        .refusals_swept
                        .with_label_values(&[] as &[&str])
                        .inc_by(n);
                    if n < PER_STATEMENT as u64 || stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refusal sweep failed; will retry");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(count = total, older_than = %before, "swept refused bookings");
        }
    }
}
