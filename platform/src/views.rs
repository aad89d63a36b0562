//! JSON views shared by the reservation-processor (which writes them to Redis
//! and publishes them) and the API (which serves them): what buyers and
//! organizers see of events, seats and bookings.

use boxoffice_domain::{Booking, BookingStatus, EventId, EventSpec, RejectReason, SaleState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How an event's bookings stand in PostgreSQL: counts by status and by
/// rejection reason, and the revenue of confirmed bookings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingTally {
    /// Booking requests decided so far, whatever became of them.
    pub decided: u64,
    /// Bookings by status: `held`, `confirmed`, `cancelled`, `expired`, `rejected`.
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Rejected requests by reason code (`seat_taken`, `sale_not_open`, ...).
    pub rejections: std::collections::BTreeMap<String, u64>,
    /// Sum of confirmed bookings, in the currency's minor unit.
    pub revenue_cents: i64,
}

impl BookingTally {
    /// Adds `count` bookings in `status` (rejected ones with their `reason`)
    /// worth `cents` together.
    pub fn add(&mut self, status: &str, reason: Option<&str>, count: u64, cents: i64) {
        self.decided += count;
        *self.by_status.entry(status.to_owned()).or_default() += count;
        if let Some(reason) = reason {
            *self.rejections.entry(reason.to_owned()).or_default() += count;
        }
        if status == "confirmed" {
            self.revenue_cents += cents;
        }
    }
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// An event as buyers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventView {
    #[schema(value_type = uuid::Uuid)]
    pub id: EventId,
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub sale_opens_at: DateTime<Utc>,
    pub sale_closes_at: DateTime<Utc>,
    /// `scheduled` (follows the window), `open` or `closed`.
    pub sale_state: String,
    /// Whether the sale is open right now.
    pub on_sale: bool,
    pub capacity: usize,
    pub max_seats_per_buyer: u16,
    pub hold_duration_ms: i64,
    pub spec: EventSpec,
}

impl EventView {
    pub fn new(id: EventId, spec: EventSpec, sale: SaleState, now_ms: i64) -> Self {
        Self {
            id,
            name: spec.name.clone(),
            starts_at: ms_to_time(spec.starts_at_ms),
            sale_opens_at: ms_to_time(spec.sale_opens_at_ms),
            sale_closes_at: ms_to_time(spec.sale_closes_at_ms),
            sale_state: sale_name(sale).to_owned(),
            on_sale: sale.is_open(&spec, now_ms),
            capacity: spec.venue.capacity(),
            max_seats_per_buyer: spec.max_seats_per_buyer,
            hold_duration_ms: spec.hold_duration_ms,
            spec,
        }
    }

    pub fn sale(&self) -> SaleState {
        match self.sale_state.as_str() {
            "open" => SaleState::Open,
            "closed" => SaleState::Closed,
            _ => SaleState::Scheduled,
        }
    }

    /// Recomputes `on_sale` for the current instant.
    pub fn refreshed(mut self, now_ms: i64) -> Self {
        self.on_sale = self.sale().is_open(&self.spec, now_ms);
        self
    }
}

pub fn sale_name(sale: SaleState) -> &'static str {
    match sale {
        SaleState::Scheduled => "scheduled",
        SaleState::Open => "open",
        SaleState::Closed => "closed",
    }
}

/// A booking as its buyer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub buyer_id: Uuid,
    /// `held`, `confirmed`, `cancelled`, `expired` or `rejected`.
    pub status: String,
    pub seats: Vec<String>,
    pub reject_reason: Option<String>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub total_cents: i64,
    pub payment_reference: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Digest of the creating request; not shown to clients.
    #[schema(ignore)]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// Outcome sequence this view reflects (newer wins).
    #[serde(default)]
    pub version: i64,
}

impl BookingView {
    pub fn new(b: &Booking, version: i64) -> Self {
        Self {
            id: b.id.0,
            event_id: b.event_id.0,
            buyer_id: b.buyer.0,
            status: b.status.name().to_owned(),
            seats: b.seats.iter().map(ToString::to_string).collect(),
            reject_reason: match b.status {
                BookingStatus::Rejected(r) => Some(r.code().to_owned()),
                _ => None,
            },
            hold_expires_at: (b.status == BookingStatus::Held || b.hold_expires_at_ms > 0)
                .then(|| ms_to_time(b.hold_expires_at_ms)),
            total_cents: b.total_cents,
            payment_reference: b.payment_reference.clone(),
            updated_at: ms_to_time(b.updated_at_ms),
            fingerprint: b.fingerprint.clone(),
            version,
        }
    }
}

/// A refusal as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    pub code: String,
    pub message: String,
}

impl From<RejectReason> for Rejection {
    fn from(r: RejectReason) -> Self {
        Self {
            code: r.code().to_owned(),
            message: r.message().to_owned(),
        }
    }
}

/// What the reservation-processor publishes to the API instance waiting for
/// an outcome. `subject` is the booking id, or the event id for event
/// commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub subject: Uuid,
    pub rejection: Option<Rejection>,
    pub booking: Option<BookingView>,
    pub event: Option<EventView>,
    /// W3C trace context of the span that recorded the outcome.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub trace: std::collections::HashMap<String, String>,
}

/// One seat's new status, streamed to open seat maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatChange {
    pub seat: String,
    /// `free`, `held` or `sold`.
    pub status: String,
    pub booking_id: Option<Uuid>,
}

/// The seat changes of one outcome, published on the event's seat feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatFeedMessage {
    pub event_id: Uuid,
    pub version: i64,
    pub changes: Vec<SeatChange>,
    /// When the reservation-processor published these changes (ms since the
    /// epoch), right after recording them: from then on the seat map shows
    /// them, so a reader can tell how late it sees a change.
    #[serde(default)]
    pub published_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_statuses_reasons_and_confirmed_revenue_only() {
        let mut t = BookingTally::default();
        t.add("confirmed", None, 3, 27_000);
        t.add("held", None, 2, 18_000);
        t.add("rejected", Some("seat_taken"), 5, 0);
        t.add("rejected", Some("sale_not_open"), 1, 0);
        t.add("expired", None, 1, 9_000);
        assert_eq!(t.decided, 12);
        assert_eq!(t.revenue_cents, 27_000);
        assert_eq!(t.by_status["rejected"], 6);
        assert_eq!(t.rejections["seat_taken"], 5);
        assert_eq!(t.rejections.len(), 2);
    }
}
