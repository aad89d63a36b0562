//! The seat map of one event and its state machine.
//!
//! [`SeatMap::apply`] takes one command and returns what changed and what
//! happened. It is deterministic: the time it reasons with comes in the
//! command, never from a clock, so replaying the same commands always yields
//! the same seat map.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::allocation::best_available;
use crate::ids::{BookingId, BuyerId, EventId, SeatId, SectionCode};
use crate::venue::EventSpec;

/// How long a refused request is remembered, in command time: a retry with
/// the same idempotency key within it gets the same refusal; afterwards the
/// refusal is forgotten, so a flood of refused attempts cannot grow the
/// state without bound (docs/seat-state-protocol.md, "Bounded state").
pub const REFUSAL_TTL_MS: i64 = 10 * 60 * 1000;

/// How long after its start (or its sale's scheduled close, if later) an
/// event is retired: its seats and bookings leave the seat-processor's state
/// and every later command for it is refused. PostgreSQL keeps the record.
pub const RETIRE_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;

/// Who has a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatStatus {
    Free,
    Held(BookingId),
    Sold(BookingId),
}

impl SeatStatus {
    pub fn booking(self) -> Option<BookingId> {
        match self {
            Self::Free => None,
            Self::Held(b) | Self::Sold(b) => Some(b),
        }
    }
}

/// Seats of an event by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeatCounts {
    pub free: usize,
    pub held: usize,
    pub sold: usize,
}

/// Whether buyers may book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaleState {
    /// Open inside the event's on-sale window, closed outside it.
    Scheduled,
    /// Opened by an organizer, regardless of the window.
    Open,
    /// Closed by an organizer, regardless of the window.
    Closed,
}

impl SaleState {
    pub fn is_open(self, spec: &EventSpec, at_ms: i64) -> bool {
        match self {
            Self::Open => true,
            Self::Closed => false,
            Self::Scheduled => (spec.sale_opens_at_ms..spec.sale_closes_at_ms).contains(&at_ms),
        }
    }
}

/// Which seats a buyer asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Exactly these seats, all or nothing.
    Seats(Vec<SeatId>),
    /// The best `quantity` adjacent seats in a section.
    BestAvailable { section: SectionCode, quantity: u16 },
}

/// Why a command was refused. Stable: the API turns these into error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    UnknownEvent,
    EventExists,
    SaleNotOpen,
    UnknownSeat,
    UnknownSection,
    DuplicateSeat,
    InvalidQuantity,
    SeatsTaken,
    NoAdjacentSeats,
    BuyerLimitExceeded,
    IdempotencyKeyReused,
    UnknownBooking,
    NotYourBooking,
    HoldExpired,
    NotHeld,
    AlreadyConfirmed,
    SeatsInSeveralParts,
}

impl RejectReason {
    /// Every reason, for looking one up by its code.
    pub const ALL: [Self; 17] = [
        Self::UnknownEvent,
        Self::EventExists,
        Self::SaleNotOpen,
        Self::UnknownSeat,
        Self::UnknownSection,
        Self::DuplicateSeat,
        Self::InvalidQuantity,
        Self::SeatsTaken,
        Self::NoAdjacentSeats,
        Self::BuyerLimitExceeded,
        Self::IdempotencyKeyReused,
        Self::UnknownBooking,
        Self::NotYourBooking,
        Self::HoldExpired,
        Self::NotHeld,
        Self::AlreadyConfirmed,
        Self::SeatsInSeveralParts,
    ];

    /// The reason with this code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The stable, machine-readable code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownEvent => "unknown_event",
            Self::EventExists => "event_exists",
            Self::SaleNotOpen => "sale_not_open",
            Self::UnknownSeat => "unknown_seat",
            Self::UnknownSection => "unknown_section",
            Self::DuplicateSeat => "duplicate_seat",
            Self::InvalidQuantity => "invalid_quantity",
            Self::SeatsTaken => "seats_taken",
            Self::NoAdjacentSeats => "no_adjacent_seats",
            Self::BuyerLimitExceeded => "buyer_limit_exceeded",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::UnknownBooking => "unknown_booking",
            Self::NotYourBooking => "not_your_booking",
            Self::HoldExpired => "hold_expired",
            Self::NotHeld => "not_held",
            Self::AlreadyConfirmed => "already_confirmed",
            Self::SeatsInSeveralParts => "seats_in_several_parts",
        }
    }

    /// A sentence for the buyer.
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownEvent => "This event does not exist.",
            Self::EventExists => "An event with this id already exists.",
            Self::SaleNotOpen => "The sale for this event is not open.",
            Self::UnknownSeat => "At least one of these seats does not exist.",
            Self::UnknownSection => "This section does not exist.",
            Self::DuplicateSeat => "A seat was asked for twice.",
            Self::InvalidQuantity => "The number of seats is out of range.",
            Self::SeatsTaken => "Some of these seats were taken meanwhile.",
            Self::NoAdjacentSeats => "No row in this section has that many adjacent free seats.",
            Self::BuyerLimitExceeded => "This would exceed the seat limit per buyer.",
            Self::IdempotencyKeyReused => {
                "This Idempotency-Key was already used for a different request."
            }
            Self::UnknownBooking => "This booking does not exist.",
            Self::NotYourBooking => "This booking belongs to another buyer.",
            Self::HoldExpired => "The hold expired; the seats were released.",
            Self::NotHeld => "This booking is no longer held.",
            Self::AlreadyConfirmed => "This booking is already confirmed.",
            Self::SeatsInSeveralParts => {
                "These seats are decided in different parts of the venue: pick seats in one section."
            }
        }
    }
}

/// Where a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    /// Seats taken in a part that is not the buyer's home part, waiting for
    /// the home part's answer about the per-buyer limit; nobody is told yet.
    Pending,
    Held,
    Confirmed,
    Cancelled,
    Expired,
    Rejected(RejectReason),
}

impl BookingStatus {
    /// Whether the booking keeps its seats.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Held | Self::Confirmed)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Rejected(_) => "rejected",
        }
    }
}

/// One booking as the seat-processor knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: BookingId,
    pub event_id: EventId,
    pub buyer: BuyerId,
    /// The seats it holds or owns; empty when rejected.
    pub seats: Vec<SeatId>,
    pub status: BookingStatus,
    pub hold_expires_at_ms: i64,
    pub total_cents: i64,
    /// Digest of the request that created it, to refuse a reused
    /// idempotency key with a different request.
    pub fingerprint: String,
    pub payment_reference: Option<String>,
    pub updated_at_ms: i64,
    /// Set on a **quota** record of a buyer's home part: seats of this
    /// buyer held in part `quota_of` (listed in `seats`), counted for the
    /// per-buyer limit here, never taken here (docs/event-partitioning.md).
    #[serde(default)]
    pub quota_of: Option<u16>,
}

/// A command for one event, with the instant it was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub at_ms: i64,
    pub kind: CommandKind,
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandKind {
    /// Creates part `part` of the event (every part gets one).
    CreateEvent {
        spec: EventSpec,
        part: u16,
    },
    SetSale {
        open: bool,
    },
    RequestBooking {
        booking_id: BookingId,
        buyer: BuyerId,
        selection: Selection,
        fingerprint: String,
    },
    ConfirmBooking {
        booking_id: BookingId,
        buyer: BuyerId,
        payment_reference: String,
    },
    CancelBooking {
        booking_id: BookingId,
        buyer: BuyerId,
    },
    ExpireHold {
        booking_id: BookingId,
    },
    /// To a buyer's home part, from part `from_part`, which took `seats` for
    /// the buyer and asks whether the per-buyer limit allows them.
    ReserveQuota {
        booking_id: BookingId,
        buyer: BuyerId,
        seats: Vec<SeatId>,
        from_part: u16,
    },
    /// The home part's answer to [`CommandKind::ReserveQuota`].
    QuotaAnswer {
        booking_id: BookingId,
        buyer: BuyerId,
        granted: bool,
    },
    /// To a buyer's home part: the seats it counted for this booking were
    /// given up (cancelled, expired, or never held after all).
    ReleaseQuota {
        booking_id: BookingId,
    },
}

impl CommandKind {
    /// The booking a command is about, if any.
    pub fn booking_id(&self) -> Option<BookingId> {
        match self {
            Self::CreateEvent { .. } | Self::SetSale { .. } => None,
            Self::RequestBooking { booking_id, .. }
            | Self::ConfirmBooking { booking_id, .. }
            | Self::CancelBooking { booking_id, .. }
            | Self::ExpireHold { booking_id }
            | Self::ReserveQuota { booking_id, .. }
            | Self::QuotaAnswer { booking_id, .. }
            | Self::ReleaseQuota { booking_id } => Some(*booking_id),
        }
    }
}

/// What happened, as published to `booking-events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    EventCreated {
        spec: EventSpec,
        sale: SaleState,
    },
    SaleChanged {
        sale: SaleState,
    },
    EventRejected {
        reason: RejectReason,
    },
    /// A booking command's result: the booking as it now stands (if it exists)
    /// and, when the command was refused, why.
    Booking {
        booking_id: BookingId,
        booking: Option<Booking>,
        rejection: Option<RejectReason>,
    },
}

/// One piece of state that changed, for the RocksDB store and the changelog.
///
/// Seats are not state of their own: a seat is held or sold by the active
/// booking that lists it, so the bookings alone rebuild every seat
/// ([`SeatMap::from_parts`]) and a booking costs one changelog record, not
/// one per seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateChange {
    /// The event (part `part` of it); `retired` once its bookings were dropped.
    Event {
        spec: EventSpec,
        sale: SaleState,
        retired: bool,
        part: u16,
    },
    Booking(Booking),
    /// A booking that no longer exists (an expired refusal, the bookings of
    /// a retired event).
    Forgotten(BookingId),
}

/// Stored parts that cannot be one event's state: two active bookings list
/// the same seat, or a booking lists a seat the venue does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartsError {
    #[error("seat {seat} is taken by both booking {first} and booking {second}")]
    SeatTakenTwice {
        seat: SeatId,
        first: BookingId,
        second: BookingId,
    },
    #[error("booking {booking} lists seat {seat}, which the venue does not have")]
    NoSuchSeat { seat: SeatId, booking: BookingId },
}

/// The result of applying one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    pub changes: Vec<StateChange>,
    pub outcomes: Vec<Outcome>,
    /// Commands for other parts of the same event, issued at the same
    /// instant as the command that caused them.
    pub forwards: Vec<Forward>,
}

/// A command one part of an event sends to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub part: u16,
    pub kind: CommandKind,
}

/// The seats of one event: who holds what, and every booking made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    event_id: EventId,
    spec: EventSpec,
    /// Which part of the event this is: it takes seats only in the sections
    /// of this part (`spec.part_of_section_index`).
    part: u16,
    sale: SaleState,
    /// Seat status by seat index (sections, then rows, then seats, in layout order).
    seats: Vec<SeatStatus>,
    /// Index of the first seat of each section and row: `row_offsets[s][r]`.
    row_offsets: Vec<Vec<usize>>,
    bookings: HashMap<BookingId, Booking>,
    /// Seats each buyer holds or owns; derived from `bookings`.
    seats_per_buyer: HashMap<BuyerId, usize>,
    /// Refused bookings by the command time they are forgotten at; derived
    /// from `bookings`.
    refusals: BTreeSet<(i64, BookingId)>,
    /// Retired: no seats, no bookings, every command refused.
    retired: bool,
}

impl SeatMap {
    /// A new event with every seat free, decided in one part.
    pub fn new(event_id: EventId, spec: EventSpec) -> Self {
        Self::new_part(event_id, spec, 0)
    }

    /// Part `part` of a new event, with every seat free.
    pub fn new_part(event_id: EventId, spec: EventSpec, part: u16) -> Self {
        let capacity = spec.venue.capacity();
        Self::with_seats(
            event_id,
            spec,
            part,
            SaleState::Scheduled,
            vec![SeatStatus::Free; capacity],
            HashMap::new(),
        )
    }

    /// Rebuilds a seat map from stored parts (restore after a restart): the
    /// seats are those of its active bookings, held while the booking is
    /// held and sold once it is confirmed.
    pub fn from_parts(
        event_id: EventId,
        spec: EventSpec,
        part: u16,
        sale: SaleState,
        bookings: impl IntoIterator<Item = Booking>,
    ) -> Result<Self, PartsError> {
        let capacity = spec.venue.capacity();
        let bookings = bookings.into_iter().map(|b| (b.id, b)).collect();
        let mut map = Self::with_seats(event_id, spec, part, sale, Vec::new(), bookings);
        let mut seats = vec![SeatStatus::Free; capacity];
        // Quota records count seats of other parts; they take none here.
        for b in map
            .bookings
            .values()
            .filter(|b| b.status.is_active() && b.quota_of.is_none())
        {
            let status = match b.status {
                BookingStatus::Pending | BookingStatus::Held => SeatStatus::Held(b.id),
                _ => SeatStatus::Sold(b.id),
            };
            for seat in &b.seats {
                let i = map.seat_index(seat).ok_or_else(|| PartsError::NoSuchSeat {
                    seat: seat.clone(),
                    booking: b.id,
                })?;
                if let Some(first) = seats[i].booking() {
                    let (first, second) = (first.min(b.id), first.max(b.id));
                    return Err(PartsError::SeatTakenTwice {
                        seat: seat.clone(),
                        first,
                        second,
                    });
                }
                seats[i] = status;
            }
        }
        map.seats = seats;
        Ok(map)
    }

    fn with_seats(
        event_id: EventId,
        spec: EventSpec,
        part: u16,
        sale: SaleState,
        seats: Vec<SeatStatus>,
        bookings: HashMap<BookingId, Booking>,
    ) -> Self {
        let mut offset = 0;
        let row_offsets = spec
            .venue
            .sections
            .iter()
            .map(|s| {
                s.rows
                    .iter()
                    .map(|r| {
                        let start = offset;
                        offset += usize::from(r.seats);
                        start
                    })
                    .collect()
            })
            .collect();
        let mut seats_per_buyer = HashMap::new();
        for b in bookings.values().filter(|b| b.status.is_active()) {
            *seats_per_buyer.entry(b.buyer).or_insert(0) += b.seats.len();
        }
        let refusals = bookings.values().filter_map(forget_at).collect();
        Self {
            event_id,
            spec,
            part,
            sale,
            seats,
            row_offsets,
            bookings,
            seats_per_buyer,
            refusals,
            retired: false,
        }
    }

    /// A retired event: it keeps its spec and refuses every command.
    pub fn retired(event_id: EventId, spec: EventSpec, part: u16, sale: SaleState) -> Self {
        let mut map = Self::with_seats(event_id, spec, part, sale, vec![], HashMap::new());
        map.retired = true;
        map
    }

    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// Whether a command at `at_ms` finds this event due for retirement.
    pub fn retire_due(&self, at_ms: i64) -> bool {
        let end = self.spec.starts_at_ms.max(self.spec.sale_closes_at_ms);
        !self.retired && at_ms > end.saturating_add(RETIRE_AFTER_MS)
    }

    /// Retires the event: every booking, and so every taken seat, is forgotten.
    pub fn retire(&mut self) -> Vec<StateChange> {
        let mut ids: Vec<BookingId> = self.bookings.keys().copied().collect();
        ids.sort_unstable();
        let mut changes: Vec<StateChange> = ids.into_iter().map(StateChange::Forgotten).collect();
        *self = Self::retired(self.event_id, self.spec.clone(), self.part, self.sale);
        changes.push(StateChange::Event {
            spec: self.spec.clone(),
            sale: self.sale,
            retired: true,
            part: self.part,
        });
        changes
    }

    /// Forgets the refusals due by `at_ms`.
    fn forget_refusals(&mut self, at_ms: i64) -> Vec<StateChange> {
        let mut changes = Vec::new();
        while let Some(&(due, id)) = self.refusals.first()
            && due < at_ms
        {
            self.refusals.pop_first();
            self.bookings.remove(&id);
            changes.push(StateChange::Forgotten(id));
        }
        changes
    }

    pub fn event_id(&self) -> EventId {
        self.event_id
    }

    pub fn spec(&self) -> &EventSpec {
        &self.spec
    }

    pub fn sale(&self) -> SaleState {
        self.sale
    }

    /// Which part of the event this map decides.
    pub fn part(&self) -> u16 {
        self.part
    }

    /// Whether the seat at `index` (layout order) is decided by this part.
    fn decides_index(&self, index: usize) -> bool {
        self.spec.parts <= 1
            || self
                .section_index_of(index)
                .is_some_and(|s| self.spec.part_of_section_index(s) == self.part)
    }

    /// The section of the seat at `index`.
    fn section_index_of(&self, index: usize) -> Option<usize> {
        self.row_offsets
            .iter()
            .rposition(|rows| rows.first().is_some_and(|start| *start <= index))
    }

    pub fn booking(&self, id: BookingId) -> Option<&Booking> {
        self.bookings.get(&id)
    }

    pub fn bookings(&self) -> impl Iterator<Item = &Booking> {
        self.bookings.values()
    }

    /// Every seat this part decides with its status, in layout order.
    pub fn seats(&self) -> impl Iterator<Item = (SeatId, SeatStatus)> + '_ {
        self.seats
            .iter()
            .enumerate()
            .filter(|(i, _)| self.decides_index(*i))
            .map(|(i, s)| (self.seat_at(i), *s))
    }

    /// How many of the seats this part decides are free, held and sold.
    pub fn counts(&self) -> SeatCounts {
        let mut c = SeatCounts::default();
        for (_, s) in self
            .seats
            .iter()
            .enumerate()
            .filter(|(i, _)| self.decides_index(*i))
        {
            match s {
                SeatStatus::Free => c.free += 1,
                SeatStatus::Held(_) => c.held += 1,
                SeatStatus::Sold(_) => c.sold += 1,
            }
        }
        c
    }

    pub fn status(&self, seat: &SeatId) -> Option<SeatStatus> {
        self.seat_index(seat).map(|i| self.seats[i])
    }

    /// The index of a seat in layout order, if it exists.
    pub fn seat_index(&self, seat: &SeatId) -> Option<usize> {
        let (s, section) = self
            .spec
            .venue
            .sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.code == seat.section)?;
        let (r, row) = section
            .rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.label == seat.row)?;
        (seat.number >= 1 && seat.number <= row.seats)
            .then(|| self.row_offsets[s][r] + usize::from(seat.number) - 1)
    }

    /// The seat at an index in layout order.
    ///
    /// # Panics
    /// If the index is beyond the event's capacity.
    pub fn seat_at(&self, index: usize) -> SeatId {
        for (s, section) in self.spec.venue.sections.iter().enumerate() {
            for (r, row) in section.rows.iter().enumerate() {
                let start = self.row_offsets[s][r];
                if index < start + usize::from(row.seats) {
                    return SeatId {
                        section: section.code.clone(),
                        row: row.label.clone(),
                        number: u16::try_from(index - start + 1)
                            .expect("row has at most u16 seats"),
                    };
                }
            }
        }
        panic!("seat index {index} beyond capacity {}", self.seats.len())
    }

    /// Applies a command to the event of `map`, creating it on `CreateEvent`.
    pub fn apply_to(map: &mut Option<SeatMap>, event_id: EventId, command: &Command) -> Transition {
        match (map.as_mut(), &command.kind) {
            (Some(existing), _) => existing.apply(command),
            (None, CommandKind::CreateEvent { spec, part }) => {
                let created = SeatMap::new_part(event_id, spec.clone(), *part);
                let t = Transition {
                    changes: vec![StateChange::Event {
                        spec: spec.clone(),
                        sale: created.sale,
                        retired: false,
                        part: *part,
                    }],
                    outcomes: vec![Outcome::EventCreated {
                        spec: spec.clone(),
                        sale: created.sale,
                    }],
                    forwards: vec![],
                };
                *map = Some(created);
                t
            }
            (None, CommandKind::SetSale { .. }) => Transition {
                changes: vec![],
                outcomes: vec![Outcome::EventRejected {
                    reason: RejectReason::UnknownEvent,
                }],
                forwards: vec![],
            },
            // Between parts of an event that does not exist here: nobody waits.
            (
                None,
                CommandKind::ReserveQuota { .. }
                | CommandKind::QuotaAnswer { .. }
                | CommandKind::ReleaseQuota { .. },
            ) => Transition::default(),
            (None, kind) => Transition {
                changes: vec![],
                outcomes: vec![Outcome::Booking {
                    booking_id: kind.booking_id().expect("booking commands name a booking"),
                    booking: None,
                    rejection: Some(RejectReason::UnknownEvent),
                }],
                forwards: vec![],
            },
        }
    }

    /// Applies one command to this event.
    pub fn apply(&mut self, command: &Command) -> Transition {
        if self.retired {
            return Self::refused_when_retired(&command.kind);
        }
        let forgotten = self.forget_refusals(command.at_ms);
        let mut t = self.decide(command);
        if !forgotten.is_empty() {
            t.changes.splice(0..0, forgotten);
        }
        t
    }

    /// A retired event refuses everything and remembers nothing.
    fn refused_when_retired(kind: &CommandKind) -> Transition {
        let outcome = match kind {
            CommandKind::CreateEvent { .. } => Outcome::EventRejected {
                reason: RejectReason::EventExists,
            },
            CommandKind::SetSale { .. } => Outcome::EventRejected {
                reason: RejectReason::SaleNotOpen,
            },
            CommandKind::RequestBooking { booking_id, .. } => Outcome::Booking {
                booking_id: *booking_id,
                booking: None,
                rejection: Some(RejectReason::SaleNotOpen),
            },
            CommandKind::ConfirmBooking { booking_id, .. }
            | CommandKind::CancelBooking { booking_id, .. } => Outcome::Booking {
                booking_id: *booking_id,
                booking: None,
                rejection: Some(RejectReason::UnknownBooking),
            },
            CommandKind::ExpireHold { .. }
            | CommandKind::ReserveQuota { .. }
            | CommandKind::QuotaAnswer { .. }
            | CommandKind::ReleaseQuota { .. } => return Transition::default(),
        };
        Transition {
            outcomes: vec![outcome],
            ..Transition::default()
        }
    }

    fn decide(&mut self, command: &Command) -> Transition {
        let at = command.at_ms;
        match &command.kind {
            CommandKind::CreateEvent { spec, part } => {
                let outcome = if *spec == self.spec && *part == self.part {
                    Outcome::EventCreated {
                        spec: spec.clone(),
                        sale: self.sale,
                    }
                } else {
                    Outcome::EventRejected {
                        reason: RejectReason::EventExists,
                    }
                };
                Transition {
                    outcomes: vec![outcome],
                    ..Transition::default()
                }
            }
            CommandKind::SetSale { open } => {
                self.sale = if *open {
                    SaleState::Open
                } else {
                    SaleState::Closed
                };
                Transition {
                    changes: vec![StateChange::Event {
                        spec: self.spec.clone(),
                        sale: self.sale,
                        retired: false,
                        part: self.part,
                    }],
                    outcomes: vec![Outcome::SaleChanged { sale: self.sale }],
                    forwards: vec![],
                }
            }
            CommandKind::RequestBooking {
                booking_id,
                buyer,
                selection,
                fingerprint,
            } => self.request(*booking_id, *buyer, selection, fingerprint, at),
            CommandKind::ConfirmBooking {
                booking_id,
                buyer,
                payment_reference,
            } => self.confirm(*booking_id, *buyer, payment_reference, at),
            CommandKind::CancelBooking { booking_id, buyer } => {
                self.cancel(*booking_id, *buyer, at)
            }
            CommandKind::ExpireHold { booking_id } => self.expire(*booking_id, at),
            CommandKind::ReserveQuota {
                booking_id,
                buyer,
                seats,
                from_part,
            } => self.reserve_quota(*booking_id, *buyer, seats, *from_part, at),
            CommandKind::QuotaAnswer {
                booking_id,
                buyer,
                granted,
            } => self.quota_answer(*booking_id, *buyer, *granted, at),
            CommandKind::ReleaseQuota { booking_id } => self.release_quota(*booking_id, at),
        }
    }

    fn request(
        &mut self,
        booking_id: BookingId,
        buyer: BuyerId,
        selection: &Selection,
        fingerprint: &str,
        at: i64,
    ) -> Transition {
        if let Some(existing) = self.bookings.get(&booking_id) {
            // A replay of the same request gets the same answer, never a second booking.
            let rejection = match existing.status {
                _ if existing.fingerprint != fingerprint
                    || existing.buyer != buyer
                    || existing.quota_of.is_some() =>
                {
                    Some(RejectReason::IdempotencyKeyReused)
                }
                // Still waiting for the home part: the answer follows.
                BookingStatus::Pending => return Transition::default(),
                BookingStatus::Rejected(reason) => Some(reason),
                _ => None,
            };
            return Transition {
                outcomes: vec![Outcome::Booking {
                    booking_id,
                    booking: self.visible(booking_id),
                    rejection,
                }],
                ..Transition::default()
            };
        }
        // The buyer's home part counts their seats; any other part takes
        // the seats and asks it (docs/event-partitioning.md).
        let home = self.spec.home_part(buyer);
        match self.choose_seats(buyer, selection, at) {
            Ok(indices) => {
                let seats: Vec<SeatId> = indices.iter().map(|i| self.seat_at(*i)).collect();
                let total_cents = seats
                    .iter()
                    .map(|s| self.spec.seat_price_cents(&s.section))
                    .sum();
                let at_home = home == self.part;
                let booking = Booking {
                    id: booking_id,
                    event_id: self.event_id,
                    buyer,
                    seats,
                    status: if at_home {
                        BookingStatus::Held
                    } else {
                        BookingStatus::Pending
                    },
                    hold_expires_at_ms: at + self.spec.hold_duration_ms,
                    total_cents,
                    fingerprint: fingerprint.to_owned(),
                    payment_reference: None,
                    updated_at_ms: at,
                    quota_of: None,
                };
                // Taken for everyone else either way; a pending booking is
                // told to nobody until the home part answers.
                self.set_seats(&indices, SeatStatus::Held(booking_id));
                *self.seats_per_buyer.entry(buyer).or_insert(0) += indices.len();
                self.bookings.insert(booking_id, booking.clone());
                let mut t = Transition {
                    changes: vec![StateChange::Booking(booking.clone())],
                    ..Transition::default()
                };
                if at_home {
                    t.outcomes.push(Outcome::Booking {
                        booking_id,
                        booking: Some(booking),
                        rejection: None,
                    });
                } else {
                    t.forwards.push(Forward {
                        part: home,
                        kind: CommandKind::ReserveQuota {
                            booking_id,
                            buyer,
                            seats: booking.seats,
                            from_part: self.part,
                        },
                    });
                }
                t
            }
            Err(reason) => {
                let booking = Booking {
                    id: booking_id,
                    event_id: self.event_id,
                    buyer,
                    seats: vec![],
                    status: BookingStatus::Rejected(reason),
                    hold_expires_at_ms: 0,
                    total_cents: 0,
                    fingerprint: fingerprint.to_owned(),
                    payment_reference: None,
                    updated_at_ms: at,
                    quota_of: None,
                };
                self.refuse(booking, reason)
            }
        }
    }

    /// Records `booking` as refused for `reason` (remembered for
    /// `REFUSAL_TTL_MS`); the buyer is told.
    fn refuse(&mut self, booking: Booking, reason: RejectReason) -> Transition {
        let booking_id = booking.id;
        self.refusals.extend(forget_at(&booking));
        self.bookings.insert(booking_id, booking.clone());
        Transition {
            changes: vec![StateChange::Booking(booking.clone())],
            outcomes: vec![Outcome::Booking {
                booking_id,
                booking: Some(booking),
                rejection: Some(reason),
            }],
            forwards: vec![],
        }
    }

    /// At a buyer's home part: may part `from_part` give the buyer `seats`?
    /// Decided once per booking; a repeated question (a replay) gets the
    /// same answer and changes nothing.
    fn reserve_quota(
        &mut self,
        booking_id: BookingId,
        buyer: BuyerId,
        seats: &[SeatId],
        from_part: u16,
        at: i64,
    ) -> Transition {
        let answer = |granted| Transition {
            forwards: vec![Forward {
                part: from_part,
                kind: CommandKind::QuotaAnswer {
                    booking_id,
                    buyer,
                    granted,
                },
            }],
            ..Transition::default()
        };
        if let Some(existing) = self.bookings.get(&booking_id) {
            return answer(existing.quota_of.is_some() && existing.status == BookingStatus::Held);
        }
        let limit = usize::from(self.spec.max_seats_per_buyer);
        let counted = self.seats_per_buyer.get(&buyer).copied().unwrap_or(0);
        let granted = self.spec.home_part(buyer) == self.part
            && from_part != self.part
            && counted + seats.len() <= limit;
        let quota = Booking {
            id: booking_id,
            event_id: self.event_id,
            buyer,
            seats: seats.to_vec(),
            status: if granted {
                BookingStatus::Held
            } else {
                BookingStatus::Rejected(RejectReason::BuyerLimitExceeded)
            },
            // Never expires here: the part holding the seats releases it.
            hold_expires_at_ms: i64::MAX,
            total_cents: 0,
            fingerprint: String::new(),
            payment_reference: None,
            updated_at_ms: at,
            quota_of: Some(from_part),
        };
        if granted {
            *self.seats_per_buyer.entry(buyer).or_insert(0) += seats.len();
        } else {
            self.refusals.extend(forget_at(&quota));
        }
        self.bookings.insert(booking_id, quota.clone());
        let mut t = answer(granted);
        t.changes.push(StateChange::Booking(quota));
        t
    }

    /// At the part holding a pending booking: the home part's answer. The
    /// buyer learns the outcome now. A grant for a booking that is no longer
    /// waiting and holds no seats (a repeated answer after a replay, or one
    /// for a booking given up meanwhile) is handed back, so the home part
    /// never keeps counting seats nobody holds.
    fn quota_answer(
        &mut self,
        booking_id: BookingId,
        buyer: BuyerId,
        granted: bool,
        at: i64,
    ) -> Transition {
        let status = self
            .bookings
            .get(&booking_id)
            .filter(|b| b.quota_of.is_none())
            .map(|b| b.status);
        match status {
            Some(BookingStatus::Pending) if granted => {
                self.updated(booking_id, at, |b| b.status = BookingStatus::Held)
            }
            Some(BookingStatus::Pending) => {
                let indices = self.indices_of(booking_id);
                self.set_seats(&indices, SeatStatus::Free);
                let reason = RejectReason::BuyerLimitExceeded;
                let mut booking = self.bookings[&booking_id].clone();
                booking.status = BookingStatus::Rejected(reason);
                booking.seats.clear();
                booking.hold_expires_at_ms = 0;
                booking.total_cents = 0;
                booking.updated_at_ms = at;
                self.uncount(booking.buyer, indices.len());
                self.refuse(booking, reason)
            }
            Some(BookingStatus::Held | BookingStatus::Confirmed) => Transition::default(),
            _ if granted => Transition {
                forwards: vec![self.hand_back(buyer, booking_id)],
                ..Transition::default()
            },
            _ => Transition::default(),
        }
    }

    /// At a buyer's home part: the seats counted for `booking_id` are no
    /// longer held. Anything else (unknown, already released) changes nothing.
    fn release_quota(&mut self, booking_id: BookingId, at: i64) -> Transition {
        match self.bookings.get_mut(&booking_id) {
            Some(q) if q.quota_of.is_some() && q.status == BookingStatus::Held => {
                q.status = BookingStatus::Cancelled;
                q.updated_at_ms = at;
                let q = q.clone();
                self.uncount(q.buyer, q.seats.len());
                self.refusals.extend(forget_at(&q));
                Transition {
                    changes: vec![StateChange::Booking(q)],
                    ..Transition::default()
                }
            }
            _ => Transition::default(),
        }
    }

    /// Tells the buyer's home part that this part no longer holds seats
    /// for `booking_id`.
    fn hand_back(&self, buyer: BuyerId, booking_id: BookingId) -> Forward {
        Forward {
            part: self.spec.home_part(buyer),
            kind: CommandKind::ReleaseQuota { booking_id },
        }
    }

    fn uncount(&mut self, buyer: BuyerId, seats: usize) {
        if let Some(n) = self.seats_per_buyer.get_mut(&buyer) {
            *n = n.saturating_sub(seats);
            if *n == 0 {
                self.seats_per_buyer.remove(&buyer);
            }
        }
    }

    /// Seat indices for a request, or why it cannot be served.
    fn choose_seats(
        &self,
        buyer: BuyerId,
        selection: &Selection,
        at: i64,
    ) -> Result<Vec<usize>, RejectReason> {
        if !self.sale.is_open(&self.spec, at) {
            return Err(RejectReason::SaleNotOpen);
        }
        let limit = usize::from(self.spec.max_seats_per_buyer);
        let requested = match selection {
            Selection::Seats(seats) => seats.len(),
            Selection::BestAvailable { quantity, .. } => usize::from(*quantity),
        };
        if requested == 0 || requested > limit {
            return Err(RejectReason::InvalidQuantity);
        }
        if self.seats_per_buyer.get(&buyer).copied().unwrap_or(0) + requested > limit {
            return Err(RejectReason::BuyerLimitExceeded);
        }
        match selection {
            Selection::Seats(seats) => {
                let mut indices = Vec::with_capacity(seats.len());
                for seat in seats {
                    let index = self.seat_index(seat).ok_or(RejectReason::UnknownSeat)?;
                    if indices.contains(&index) {
                        return Err(RejectReason::DuplicateSeat);
                    }
                    indices.push(index);
                }
                if !indices.iter().all(|i| self.decides_index(*i)) {
                    return Err(RejectReason::SeatsInSeveralParts);
                }
                if indices.iter().any(|i| self.seats[*i] != SeatStatus::Free) {
                    return Err(RejectReason::SeatsTaken);
                }
                Ok(indices)
            }
            Selection::BestAvailable { section, quantity } => {
                let s = self
                    .spec
                    .venue
                    .sections
                    .iter()
                    .position(|s| &s.code == section)
                    .ok_or(RejectReason::UnknownSection)?;
                if self.spec.part_of_section_index(s) != self.part {
                    return Err(RejectReason::SeatsInSeveralParts);
                }
                let rows: Vec<Vec<bool>> = self.spec.venue.sections[s]
                    .rows
                    .iter()
                    .zip(&self.row_offsets[s])
                    .map(|(row, start)| {
                        self.seats[*start..*start + usize::from(row.seats)]
                            .iter()
                            .map(|st| *st == SeatStatus::Free)
                            .collect()
                    })
                    .collect();
                let placement = best_available(&rows, usize::from(*quantity))
                    .ok_or(RejectReason::NoAdjacentSeats)?;
                let first = self.row_offsets[s][placement.row] + placement.first_seat;
                Ok((first..first + usize::from(*quantity)).collect())
            }
        }
    }

    fn confirm(
        &mut self,
        booking_id: BookingId,
        buyer: BuyerId,
        payment_reference: &str,
        at: i64,
    ) -> Transition {
        let booking = match self.owned_booking(booking_id, buyer) {
            Ok(b) => b,
            Err(t) => return t,
        };
        match booking.status {
            BookingStatus::Held if at > booking.hold_expires_at_ms => self.release(
                booking_id,
                BookingStatus::Expired,
                at,
                Some(RejectReason::HoldExpired),
            ),
            BookingStatus::Held => {
                let indices = self.indices_of(booking_id);
                self.set_seats(&indices, SeatStatus::Sold(booking_id));
                self.updated(booking_id, at, |b| {
                    b.status = BookingStatus::Confirmed;
                    b.payment_reference = Some(payment_reference.to_owned());
                })
            }
            BookingStatus::Confirmed => self.unchanged(booking_id, None),
            BookingStatus::Expired => self.unchanged(booking_id, Some(RejectReason::HoldExpired)),
            BookingStatus::Pending | BookingStatus::Cancelled | BookingStatus::Rejected(_) => {
                self.unchanged(booking_id, Some(RejectReason::NotHeld))
            }
        }
    }

    fn cancel(&mut self, booking_id: BookingId, buyer: BuyerId, at: i64) -> Transition {
        let booking = match self.owned_booking(booking_id, buyer) {
            Ok(b) => b,
            Err(t) => return t,
        };
        match booking.status {
            BookingStatus::Held => self.release(booking_id, BookingStatus::Cancelled, at, None),
            BookingStatus::Cancelled => self.unchanged(booking_id, None),
            BookingStatus::Confirmed => {
                self.unchanged(booking_id, Some(RejectReason::AlreadyConfirmed))
            }
            BookingStatus::Pending | BookingStatus::Expired | BookingStatus::Rejected(_) => {
                self.unchanged(booking_id, Some(RejectReason::NotHeld))
            }
        }
    }

    fn expire(&mut self, booking_id: BookingId, at: i64) -> Transition {
        match self.bookings.get(&booking_id) {
            Some(b)
                if b.status == BookingStatus::Held
                    && b.quota_of.is_none()
                    && at >= b.hold_expires_at_ms =>
            {
                self.release(booking_id, BookingStatus::Expired, at, None)
            }
            // Already settled, or not yet due: nothing to do, nobody waits for it.
            _ => Transition::default(),
        }
    }

    /// The booking if it exists and belongs to `buyer`, else the refusal.
    fn owned_booking(&self, booking_id: BookingId, buyer: BuyerId) -> Result<Booking, Transition> {
        // A quota record is the home part's count, not a booking a buyer can act on.
        match self
            .bookings
            .get(&booking_id)
            .filter(|b| b.quota_of.is_none())
        {
            None => Err(Transition {
                outcomes: vec![Outcome::Booking {
                    booking_id,
                    booking: None,
                    rejection: Some(RejectReason::UnknownBooking),
                }],
                ..Transition::default()
            }),
            Some(b) if b.buyer != buyer => Err(Transition {
                outcomes: vec![Outcome::Booking {
                    booking_id,
                    booking: None,
                    rejection: Some(RejectReason::NotYourBooking),
                }],
                ..Transition::default()
            }),
            Some(b) => Ok(b.clone()),
        }
    }

    /// Changes an existing booking as of `at`; the buyer is told.
    fn updated(
        &mut self,
        booking_id: BookingId,
        at: i64,
        change: impl FnOnce(&mut Booking),
    ) -> Transition {
        let booking = self.bookings.get_mut(&booking_id).expect("booking exists");
        change(booking);
        booking.updated_at_ms = at;
        let booking = booking.clone();
        Transition {
            changes: vec![StateChange::Booking(booking.clone())],
            outcomes: vec![Outcome::Booking {
                booking_id,
                booking: Some(booking),
                rejection: None,
            }],
            forwards: vec![],
        }
    }

    fn unchanged(&self, booking_id: BookingId, rejection: Option<RejectReason>) -> Transition {
        Transition {
            outcomes: vec![Outcome::Booking {
                booking_id,
                booking: self.visible(booking_id),
                rejection,
            }],
            ..Transition::default()
        }
    }

    /// A booking as outcomes may show it: never a pending one (nobody has
    /// been told of it, and the stores downstream know no such status) nor
    /// a home part's quota record.
    fn visible(&self, booking_id: BookingId) -> Option<Booking> {
        self.bookings
            .get(&booking_id)
            .filter(|b| b.quota_of.is_none() && b.status != BookingStatus::Pending)
            .cloned()
    }

    /// Frees a held booking's seats and moves it to `status`.
    fn release(
        &mut self,
        booking_id: BookingId,
        status: BookingStatus,
        at: i64,
        rejection: Option<RejectReason>,
    ) -> Transition {
        let indices = self.indices_of(booking_id);
        self.set_seats(&indices, SeatStatus::Free);
        let booking = self.bookings.get_mut(&booking_id).expect("booking exists");
        booking.status = status;
        booking.updated_at_ms = at;
        let booking = booking.clone();
        self.uncount(booking.buyer, indices.len());
        // Seats counted by another part (the buyer's home) are handed back.
        let forwards = if self.spec.home_part(booking.buyer) == self.part {
            vec![]
        } else {
            vec![self.hand_back(booking.buyer, booking_id)]
        };
        Transition {
            changes: vec![StateChange::Booking(booking.clone())],
            outcomes: vec![Outcome::Booking {
                booking_id,
                booking: Some(booking),
                rejection,
            }],
            forwards,
        }
    }

    fn indices_of(&self, booking_id: BookingId) -> Vec<usize> {
        self.bookings[&booking_id]
            .seats
            .iter()
            .map(|s| self.seat_index(s).expect("booked seats exist"))
            .collect()
    }

    fn set_seats(&mut self, indices: &[usize], status: SeatStatus) {
        for i in indices {
            self.seats[*i] = status;
        }
    }
}

/// When a refused booking is forgotten, with its id; `None` for the rest.
/// Refusals, and quota records no longer counted, are forgotten.
fn forget_at(b: &Booking) -> Option<(i64, BookingId)> {
    let gone = matches!(b.status, BookingStatus::Rejected(_))
        || (b.quota_of.is_some() && !b.status.is_active());
    gone.then(|| (b.updated_at_ms.saturating_add(REFUSAL_TTL_MS), b.id))
}

#[cfg(test)]
mod parts_tests;
#[cfg(test)]
mod tests;
