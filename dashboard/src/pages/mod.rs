//! One module per page (or family of organizer pages that share a guard).

pub mod account;
pub mod event;
pub mod events;
pub mod new_event;
pub mod operations;
pub mod organizer;
pub mod sale;
pub mod sign_in;
