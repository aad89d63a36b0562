//! The Redis availability cache: pool, key names and readiness probe.
//!
//! Redis holds what buyers read on the hot path (seat maps, section counts,
//! bookings) with TTLs, and carries replies and seat updates over pub/sub.
//! It keeps nothing that PostgreSQL does not also have.

use deadpool_redis::{Config, Pool, Runtime};

use crate::config::RedisConfig;

/// How long cached event data lives without being written again.
pub const EVENT_TTL_SECS: i64 = 7 * 24 * 3600;
/// How long a cached booking lives without being written again.
pub const BOOKING_TTL_SECS: i64 = 24 * 3600;

pub fn pool(redis: &RedisConfig) -> anyhow::Result<Pool> {
    let mut config = Config::from_url(redis.redis_url.expose());
    // Bounded waits: an unreachable Redis is an error (and a 503), not a hang.
    let limit = Some(std::time::Duration::from_secs(5));
    let mut pool = deadpool_redis::PoolConfig::new(64);
    pool.timeouts = deadpool_redis::Timeouts {
        wait: limit,
        create: limit,
        recycle: limit,
    };
    config.pool = Some(pool);
    Ok(config.create_pool(Some(Runtime::Tokio1))?)
}

/// Readiness probe: Redis answers PING.
pub async fn probe(pool: Pool) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| format!("redis: {e}"))?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("redis: {e}"))
}

/// Key and channel names, all under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Sorted set of event ids, scored by creation time.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Whether a signed-in session still counts: `live` or `revoked`, a
    /// cache of the API's `sessions` table (docs/accounts.md).
    pub fn session(&self, session: impl std::fmt::Display) -> String {
        format!("{}session:{session}", self.prefix)
    }

    /// One of an event's waiting-room keys (`what`: draw, line, last,
    /// holders, opened, again). The event is the hash tag, so a Redis Cluster keeps
    /// them in one slot, as the script that uses them all needs.
    pub fn waiting_room(&self, event: impl std::fmt::Display, what: &str) -> String {
        format!("{}waiting-room:{{{event}}}:{what}", self.prefix)
    }

    /// JSON of an event: spec, sale state.
    pub fn event(&self, event: impl std::fmt::Display) -> String {
        format!("{}event:{event}", self.prefix)
    }

    /// Hash seat id -> "held:<booking>" / "sold:<booking>" for one section;
    /// free seats are absent.
    pub fn section_seats(&self, event: impl std::fmt::Display, section: &str) -> String {
        format!("{}seats:{event}:{section}", self.prefix)
    }

    /// JSON of a booking.
    pub fn booking(&self, booking: impl std::fmt::Display) -> String {
        format!("{}booking:{booking}", self.prefix)
    }

    /// Channel carrying outcomes to the API instance that waits for them.
    pub fn replies(&self, instance: &str) -> String {
        format!("{}replies:{instance}", self.prefix)
    }

    /// Channel carrying seat changes of one event to open seat maps.
    pub fn seat_feed(&self, event: impl std::fmt::Display) -> String {
        format!("{}seatfeed:{event}", self.prefix)
    }
}
