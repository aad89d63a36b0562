//! The events a booking request reads, kept parsed in this instance for a
//! moment.
//!
//! Every new booking needs its event: the venue (to check the selection and
//! find its part), the waiting room and whether the sale is open. Read from
//! Redis, that is one round trip and a JSON parse per booking, and the JSON
//! grows with the venue: a 10,000-seat event is a few KB, a stadium of 4,000
//! rows over 100 KB, parsed again for every one of thousands of bookings a
//! second. Kept here for [`FRESH_FOR`], a spike reads each event a few
//! times a second per instance instead.
//!
//! What a view this old can get wrong, and why it is safe:
//! - An event's venue, parts and waiting room never change once created;
//!   only its sale state does (`POST /api/events/{id}/sale`).
//! - A sale closed meanwhile: the booking goes to the seat-processor, which
//!   decides with the sale state it holds and refuses it (`sale_not_open`),
//!   as it does for any booking that races the close. The early refusal
//!   here only saves that trip.
//! - A sale opened meanwhile: a view that says the sale is not open is
//!   never trusted; the caller reads the event again ([`EventCache::get`]
//!   returns only views that are on sale). A sale that opens by its
//!   schedule is seen at once: `on_sale` is worked out again at every read.
//! - A sale changed through this instance is dropped from it at once
//!   ([`EventCache::forget`]); other instances see it within [`FRESH_FOR`].
//! - Everything else reads the event fresh (organizers, the seat map).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boxoffice_platform::views::EventView;
use uuid::Uuid;

/// How long a parsed event serves bookings before it is read again.
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// At most this many events are kept; past it the cache starts over (only
/// events that exist are kept, so only organizers can fill it).
const MAX_EVENTS: usize = 4096;

#[derive(Default)]
pub struct EventCache {
    events: Mutex<HashMap<Uuid, (Instant, Arc<EventView>)>>,
}

impl EventCache {
    /// The event `id` if it was read less than [`FRESH_FOR`] before `now`
    /// and its sale is open at `now_ms`.
    pub fn get(&self, id: Uuid, now: Instant, now_ms: i64) -> Option<Arc<EventView>> {
        let mut events = self.events.lock().expect("event cache lock");
        let (read_at, view) = events.get_mut(&id)?;
        if now.saturating_duration_since(*read_at) >= FRESH_FOR {
            return None;
        }
        let on_sale = view.sale().is_open(&view.spec, now_ms);
        if on_sale != view.on_sale {
            // The schedule moved on since it was read: keep the new answer.
            *view = Arc::new(EventView::clone(view).refreshed(now_ms));
        }
        on_sale.then(|| view.clone())
    }

    /// Drops what is kept of `id`: its sale changed through this instance,
    /// whose next booking must see it.
    pub fn forget(&self, id: Uuid) {
        self.events.lock().expect("event cache lock").remove(&id);
    }

    /// Keeps `view`, read at `read_at`.
    pub fn put(&self, view: Arc<EventView>, read_at: Instant) {
        let mut events = self.events.lock().expect("event cache lock");
        if events.len() >= MAX_EVENTS && !events.contains_key(&view.id.0) {
            events.clear();
        }
        events.insert(view.id.0, (read_at, view));
    }
}

#[cfg(test)]
mod tests {
    use boxoffice_domain::{EventId, EventSpec, SaleState};

    use super::*;

    fn view(sale: SaleState, opens_ms: i64, now_ms: i64) -> Arc<EventView> {
        let spec: EventSpec = serde_json::from_value(serde_json::json!({
            "name": "Test night",
            "starts_at_ms": opens_ms + 86_400_000,
            "sale_opens_at_ms": opens_ms,
            "sale_closes_at_ms": opens_ms + 3_600_000,
            "venue": {"name": "Hall", "sections": [{"code": "A", "name": "A", "price_category": "std",
                "rows": [{"label": "1", "seats": 10}]}]},
            "price_categories": [{"code": "std", "name": "Standard", "price_cents": 1000, "currency": "EUR"}],
            "max_seats_per_buyer": 4,
            "hold_duration_ms": 600_000,
        }))
        .expect("spec");
        Arc::new(EventView::new(EventId(Uuid::now_v7()), spec, sale, now_ms))
    }

    #[test]
    fn an_open_sale_is_served_until_it_is_stale() {
        let cache = EventCache::default();
        let t0 = Instant::now();
        let v = view(SaleState::Open, 0, 1_000);
        cache.put(v.clone(), t0);
        let hit = cache.get(v.id.0, t0 + FRESH_FOR / 2, 1_000);
        assert!(hit.is_some_and(|h| Arc::ptr_eq(&h, &v)), "served as read");
        assert!(cache.get(v.id.0, t0 + FRESH_FOR, 1_000).is_none(), "stale");
        assert!(cache.get(Uuid::now_v7(), t0, 1_000).is_none(), "never read");
    }

    #[test]
    fn a_view_that_would_refuse_is_never_served() {
        let cache = EventCache::default();
        let t0 = Instant::now();
        // Closed by hand: the caller must read again (it may have reopened).
        let closed = view(SaleState::Closed, 0, 1_000);
        cache.put(closed.clone(), t0);
        assert!(cache.get(closed.id.0, t0, 1_000).is_none());
        // Scheduled, before its window: not served either.
        let early = view(SaleState::Scheduled, 10_000, 1_000);
        cache.put(early.clone(), t0);
        assert!(cache.get(early.id.0, t0, 5_000).is_none());
    }

    #[test]
    fn a_scheduled_sale_is_seen_opening_and_closing_by_its_window() {
        let cache = EventCache::default();
        let t0 = Instant::now();
        // Read just before it opened: served as open once its time comes.
        let v = view(SaleState::Scheduled, 10_000, 9_999);
        assert!(!v.on_sale);
        cache.put(v.clone(), t0);
        let opened = cache.get(v.id.0, t0, 10_000).expect("open by its window");
        assert!(opened.on_sale);
        // Past its close: refused again, from the same cached read.
        assert!(cache.get(v.id.0, t0, 10_000 + 3_600_000).is_none());
    }

    #[test]
    fn a_full_cache_starts_over_rather_than_growing() {
        let cache = EventCache::default();
        let t0 = Instant::now();
        let first = view(SaleState::Open, 0, 1_000);
        cache.put(first.clone(), t0);
        for _ in 1..MAX_EVENTS {
            cache.put(view(SaleState::Open, 0, 1_000), t0);
        }
        let last = view(SaleState::Open, 0, 1_000);
        cache.put(last.clone(), t0);
        assert!(cache.get(first.id.0, t0, 1_000).is_none(), "dropped");
        assert!(cache.get(last.id.0, t0, 1_000).is_some(), "kept");
        assert_eq!(cache.events.lock().unwrap().len(), 1);
    }
}
