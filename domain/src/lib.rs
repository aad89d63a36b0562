//! The ticketing domain of boxoffice, free of I/O.
//!
//! Everything the seat-processor decides is decided here, by
//! [`SeatMap::apply`]: a pure function of the current seat map and one command.
//! Because it is deterministic, replaying the command log rebuilds exactly the
//! same state, which is what makes exactly-once processing possible without
//! broker transactions.

pub mod allocation;
pub mod ids;
pub mod seatmap;
pub mod venue;
pub mod waiting_room;

pub use allocation::best_available;
pub use ids::{BookingId, BuyerId, EventId, IdError, RowLabel, SeatId, SectionCode};
pub use seatmap::{
    Booking, BookingStatus, Command, CommandKind, Forward, Outcome, PartsError, REFUSAL_TTL_MS,
    RETIRE_AFTER_MS, RejectReason, SaleState, SeatCounts, SeatMap, SeatStatus, Selection,
    StateChange, Transition,
};
pub use venue::{EventSpec, LayoutError, PriceCategory, Row, Section, VenueLayout};
pub use waiting_room::{Joining, Turn, WaitingRoom};
