//! What the reservation-processor writes to Redis: the availability cache
//! (event, seat status per section, bookings), the seat feed of open seat
//! maps, and replies to waiting API instances.

use boxoffice_platform::cache::{BOOKING_TTL_SECS, EVENT_TTL_SECS, Keys, seat_value};
use boxoffice_platform::views::{BookingView, EventView, Reply, SeatChange, SeatFeedMessage};
use deadpool_redis::Pool;
use redis::Pipeline;

use super::store::ActiveSeat;

/// The section of a seat id (`A-3-12` -> `A`).
pub fn section_of(seat: &str) -> &str {
    seat.split('-').next().unwrap_or(seat)
}

/// Redis writes of one batch, sent as one pipeline.
pub struct CacheBatch<'a> {
    keys: &'a Keys,
    pipe: Pipeline,
    empty: bool,
    /// Stamped on the seat feed's messages: a batch is built after its
    /// outcomes are recorded and sent at once.
    published_at_ms: i64,
}

impl<'a> CacheBatch<'a> {
    pub fn new(keys: &'a Keys) -> Self {
        Self {
            keys,
            pipe: redis::pipe(),
            empty: true,
            published_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    pub fn put_event(&mut self, view: &EventView, created_ms: i64) {
        let json = serde_json::to_string(view).expect("views serialise");
        self.pipe
            .set_ex(self.keys.event(view.id), json, EVENT_TTL_SECS as u64)
            .ignore();
        self.pipe
            .zadd(self.keys.events(), view.id.to_string(), created_ms)
            .ignore();
        self.pipe
            .expire(self.keys.events(), EVENT_TTL_SECS)
            .ignore();
        self.empty = false;
    }

    /// Caches a booking and moves its seats; publishes the seat changes.
    pub fn put_booking(&mut self, view: &BookingView) {
        let json = serde_json::to_string(view).expect("views serialise");
        self.pipe
            .set_ex(self.keys.booking(view.id), json, BOOKING_TTL_SECS as u64)
            .ignore();
        self.empty = false;
        if view.seats.is_empty() {
            return;
        }
        let active = matches!(view.status.as_str(), "held" | "confirmed");
        let mut changes = Vec::with_capacity(view.seats.len());
        for seat in &view.seats {
            let key = self.keys.section_seats(view.event_id, section_of(seat));
            if active {
                self.pipe
                    .hset(&key, seat, seat_value(&view.status, view.id))
                    .ignore();
                self.pipe.expire(&key, EVENT_TTL_SECS).ignore();
            } else {
                self.pipe.hdel(&key, seat).ignore();
            }
            changes.push(SeatChange {
                seat: seat.clone(),
                status: match (active, view.status.as_str()) {
                    (true, "confirmed") => "sold",
                    (true, _) => "held",
                    (false, _) => "free",
                }
                .to_owned(),
                booking_id: active.then_some(view.id),
            });
        }
        let feed = SeatFeedMessage {
            event_id: view.event_id,
            version: view.version,
            changes,
            published_at_ms: self.published_at_ms,
        };
        self.pipe
            .publish(
                self.keys.seat_feed(view.event_id),
                serde_json::to_string(&feed).expect("feed serialises"),
            )
            .ignore();
    }

    pub fn reply(&mut self, instance: &str, reply: &Reply) {
        let json = serde_json::to_string(reply).expect("replies serialise");
        self.pipe
            .publish(self.keys.replies(instance), json)
            .ignore();
        self.empty = false;
    }

    pub async fn send(self, pool: &Pool) -> anyhow::Result<()> {
        if self.empty {
            return Ok(());
        }
        let mut conn = pool.get().await?;
        self.pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// Replaces an event's cached seats with what PostgreSQL holds, atomically,
/// and the event itself last (its presence tells readers the seats are there).
pub async fn rebuild_event(
    pool: &Pool,
    keys: &Keys,
    view: &EventView,
    created_ms: i64,
    seats: &[ActiveSeat],
) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for section in &view.spec.venue.sections {
        pipe.del(keys.section_seats(view.id, section.code.as_str()))
            .ignore();
    }
    for s in seats {
        let key = keys.section_seats(view.id, section_of(&s.seat_id));
        pipe.hset(&key, &s.seat_id, seat_value(&s.status, s.booking_id))
            .ignore();
        pipe.expire(&key, EVENT_TTL_SECS).ignore();
    }
    let json = serde_json::to_string(view)?;
    pipe.set_ex(keys.event(view.id), json, EVENT_TTL_SECS as u64)
        .ignore();
    pipe.zadd(keys.events(), view.id.to_string(), created_ms)
        .ignore();
    pipe.expire(keys.events(), EVENT_TTL_SECS).ignore();
    let mut conn = pool.get().await?;
    pipe.query_async::<()>(&mut conn).await?;
    Ok(())
}

/// Caches a booking read from PostgreSQL.
pub async fn put_booking_only(pool: &Pool, keys: &Keys, view: &BookingView) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let json = serde_json::to_string(view)?;
    redis::cmd("SET")
        .arg(keys.booking(view.id))
        .arg(json)
        .arg("EX")
        .arg(BOOKING_TTL_SECS)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}
