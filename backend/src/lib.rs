//! The boxoffice API: the REST and SSE entry point for buyers and organizers.
//!
//! Bookings are answered with deferred responses: the handler publishes a
//! command and awaits its outcome (no thread blocked) until a deadline, then
//! answers `202 Accepted` with the booking's URL to long-poll.

pub mod accounts;
pub mod admission;
pub mod auth;
pub mod config;
pub mod error;
pub mod event_cache;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod waiters;
pub mod waiting_room;

pub use config::ApiConfig;
pub use startup::run;
