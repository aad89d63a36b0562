//! The Redis availability cache: pool, key names and readiness probe.
//!
//! Redis holds what buyers read on the hot path (seat maps, section counts,
//! bookings) with TTLs, and carries replies and seat updates over pub/sub.
//! It keeps nothing that PostgreSQL does not also have.

use deadpool_redis::{Manager, Pool, Runtime};

use crate::config::RedisConfig;

/// How long cached event data lives without being written again.
pub const EVENT_TTL_SECS: i64 = 7 * 24 * 3600;
/// How long a cached booking lives without being written again.
pub const BOOKING_TTL_SECS: i64 = 24 * 3600;

pub fn pool(redis: &RedisConfig) -> anyhow::Result<Pool> {
    // Bounded waits: an unreachable Redis is an error (and a 503), not a hang.
    let limit = Some(REDIS_WAIT);
    // Each connection's own bounds too: redis-rs gives a response 500 ms by
    // default, and on the 2-core benchmark machine, everything saturated,
    // Redis took longer than that in 2 of 8 spikes (a few dozen bookings
    // answered 503 `unavailable` at one moment). A slow answer is not an
    // outage: a buyer waits for it as for the rest of the pipeline.
    let connection = deadpool_redis::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_WAIT))
        .set_response_timeout(Some(REDIS_RESPONSE));
    let manager = Manager::new_with_config(redis.redis_url.expose(), connection)?;
    let mut pool = deadpool_redis::PoolConfig::new(64);
    pool.timeouts = deadpool_redis::Timeouts {
        wait: limit,
        create: limit,
        recycle: limit,
    };
    Ok(Pool::builder(manager)
        .config(pool)
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// The API's Redis: one multiplexed connection that every request of the
/// process shares, reconnected when it breaks.
///
/// A pooled connection costs a round trip per checkout: deadpool-redis
/// checks it with `UNWATCH` and `PING` first, so a call is two round trips
/// and three commands for Redis to run. A booking makes four calls (its
/// session, its rate limits, its event, a replay's booking), so the pool
/// doubled the API's Redis round trips and tripled the commands Redis
/// parsed (docs/performance.md). A multiplexed connection needs no
/// checkout: commands of concurrent requests are written one after the
/// other on one socket and answered in order. Nothing here uses `WATCH` or
/// `MULTI`, which a shared connection could not keep apart; the
/// reservation-processor, whose batches run a few calls each, keeps its
/// pool.
#[derive(Clone)]
pub struct Shared {
    conn: redis::aio::ConnectionManager,
}

impl Shared {
    /// Connects on first use, not here: a Redis that is down at start is an
    /// unready API answering `503`, as with a pool, not a failed start.
    pub fn new(redis: &RedisConfig) -> anyhow::Result<Self> {
        use redis::IntoConnectionInfo;
        let info = redis
            .redis_url
            .expose()
            .into_connection_info()?
            .set_tcp_settings(dead_peer_detection());
        let client = redis::Client::open(info)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_WAIT))
            .set_response_timeout(Some(REDIS_RESPONSE))
            // A broken connection is retried once, briefly, then the call
            // fails (a `503`) and the next call tries again: a Redis outage
            // must not hold requests for the default's seconds of backoff
            // (each call waits at most about 2.5 s to connect, then 2 s for
            // its answer).
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY)
            // Up to this many commands queue for the socket: one spike
            // second of a few thousand bookings, four calls each, must not
            // wait on the default's 50.
            .set_pipeline_buffer_size(PIPELINE_BUFFER);
        Ok(Self {
            conn: redis::aio::ConnectionManager::new_lazy_with_config(client, config)?,
        })
    }

    /// A handle on the shared connection, for one or more commands.
    pub fn conn(&self) -> redis::aio::ConnectionManager {
        self.conn.clone()
    }

    /// Readiness probe: Redis answers PING on the shared connection.
    pub async fn probe(self) -> Result<(), String> {
        ping(&mut self.conn()).await
    }
}

/// A Redis that vanished without closing the socket (a node lost, a
/// partition) leaves answers timing out, which redis-rs does not count as a
/// broken connection: without these, the kernel would keep retransmitting
/// to the dead peer for about 15 minutes before the connection failed and
/// was replaced. Unacknowledged data for [`DEAD_PEER`], or an idle
/// connection whose keepalive probes go unanswered, now fails it, and the
/// next call reconnects.
fn dead_peer_detection() -> redis::io::tcp::TcpSettings {
    let keepalive = redis::io::tcp::socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(10))
        .with_interval(std::time::Duration::from_secs(2));
    let settings = redis::io::tcp::TcpSettings::default().set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(DEAD_PEER);
    settings
}

/// How long sent data may go unacknowledged before the connection counts
/// as dead.
#[cfg(target_os = "linux")]
const DEAD_PEER: std::time::Duration = std::time::Duration::from_secs(5);
/// One connection attempt of the shared connection: short, since calls wait
/// on it (at most two attempts and a backoff below 500 ms between them).
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
const RECONNECT_RETRIES: usize = 1;
const RECONNECT_MAX_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
const PIPELINE_BUFFER: usize = 4096;

/// The longest wait for a Redis connection, from the pool or a new one.
const REDIS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest wait for one Redis answer.
const REDIS_RESPONSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness probe: Redis answers PING.
pub async fn probe(pool: Pool) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| format!("redis: {e}"))?;
    ping(&mut conn).await
}

/// One `PING`, for the readiness probes of the pool and the shared
/// connection.
async fn ping(conn: &mut impl redis::aio::ConnectionLike) -> Result<(), String> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("redis: {e}"))
}

/// The cache value of a taken seat: `held:<booking>` or `sold:<booking>`
/// (a booking `confirmed` is sold, any other active one held).
pub fn seat_value(status: &str, booking: uuid::Uuid) -> String {
    let state = if status == "confirmed" {
        "sold"
    } else {
        "held"
    };
    format!("{state}:{booking}")
}

/// Whether a [`seat_value`] says the seat is sold (else it is held).
pub fn is_sold(value: &str) -> bool {
    value.starts_with("sold:")
}

/// A section's seat states as one character per seat, in layout order (its
/// rows as listed, seats 1..n in each): `.` free, `h` held, `s` sold, from
/// the section's cache hash (seat id -> `held:..` / `sold:..`). Small at
/// stadium size; the web app reads it back (`decode_states` there). Seats
/// the section does not have are left out.
pub fn section_states<'a>(
    section: &boxoffice_domain::venue::Section,
    taken: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut offsets = std::collections::HashMap::with_capacity(section.rows.len());
    let mut next = 0usize;
    for row in &section.rows {
        offsets.insert(row.label.as_str(), (next, usize::from(row.seats)));
        next += usize::from(row.seats);
    }
    let mut states = vec![b'.'; next];
    for (seat, value) in taken {
        let mut parts = seat.splitn(3, '-');
        let (Some(code), Some(row), Some(number)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(&(start, seats)) = offsets.get(row) else {
            continue;
        };
        match number.parse::<usize>() {
            Ok(n) if code == section.code.as_str() && (1..=seats).contains(&n) => {
                states[start + n - 1] = if is_sold(value) { b's' } else { b'h' };
            }
            _ => {}
        }
    }
    String::from_utf8(states).expect("ASCII")
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

#[cfg(test)]
mod tests {
    use super::*;
    use boxoffice_domain::venue::{Row, Section};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn section(code: &str, rows: &[(&str, u16)]) -> Section {
        Section {
            code: code.parse().expect("code"),
            name: code.to_owned(),
            price_category: "STANDARD".to_owned(),
            rows: rows
                .iter()
                .map(|(label, seats)| Row {
                    label: label.parse().expect("label"),
                    seats: *seats,
                })
                .collect(),
        }
    }

    #[test]
    fn a_section_reads_one_character_per_seat_in_layout_order() {
        let s = section("B", &[("AA", 3), ("1", 2)]);
        let taken = [
            ("B-AA-2", "held:x"),
            ("B-1-2", "sold:y"),
            // Not this section's, not its rows, not its seats, not seat ids.
            ("C-AA-1", "sold:z"),
            ("B-9-1", "sold:z"),
            ("B-1-3", "sold:z"),
            ("B-1-0", "sold:z"),
            ("B-1", "sold:z"),
            ("B-1-x", "sold:z"),
        ];
        assert_eq!(section_states(&s, taken), ".h..s");
        assert_eq!(section_states(&s, []), ".....");
    }

    proptest! {
        /// Every seat's character is its state, whatever is taken.
        #[test]
        fn every_seat_is_where_the_layout_puts_it(
            rows in prop::collection::vec(1u16..40, 1..12),
            picks in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 0..200),
        ) {
            let labels: Vec<String> = (1..=rows.len()).map(|i| format!("R{i}")).collect();
            let layout: Vec<(&str, u16)> = labels.iter().map(String::as_str).zip(rows.iter().copied()).collect();
            let s = section("S", &layout);
            let ids: Vec<String> = layout
                .iter()
                .flat_map(|(label, n)| (1..=*n).map(move |i| format!("S-{label}-{i}")))
                .collect();
            let mut taken = HashMap::new();
            for (at, kind) in &picks {
                let id = &ids[at.index(ids.len())];
                match kind {
                    0 => { taken.remove(id); }
                    1 => { taken.insert(id.clone(), "held:b".to_owned()); }
                    _ => { taken.insert(id.clone(), "sold:b".to_owned()); }
                }
            }
            let code = section_states(&s, taken.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            prop_assert_eq!(code.len(), ids.len());
            for (id, c) in ids.iter().zip(code.chars()) {
                let want = match taken.get(id).map(String::as_str) {
                    None => '.',
                    Some(v) if is_sold(v) => 's',
                    Some(_) => 'h',
                };
                prop_assert_eq!(c, want, "seat {}", id);
            }
        }
    }
}
