//! Server functions: what pages ask the server for. Each runs on the
//! dashboard server, which talks to the API with the visitor's token (kept in
//! an HttpOnly cookie), to the broker and to Prometheus or the instances'
//! `/metrics`; the browser only ever talks to this one origin.

use leptos::prelude::*;

use crate::model::{
    BuyerAnswer, EventCard, EventPageData, NewEvent, OpsSnapshot, RoomStanding, SaleStats,
    SeatRequest,
};

/// The events on the platform, newest first.
#[server(prefix = "/rpc", endpoint = "list_events")]
pub async fn list_events() -> Result<Vec<EventCard>, ServerFnError> {
    crate::server::api::list_events()
        .await
        .map_err(ServerFnError::new)
}

/// An event's layout and its seats' states now.
#[server(prefix = "/rpc", endpoint = "event_page")]
pub async fn event_page(id: String) -> Result<EventPageData, ServerFnError> {
    crate::server::api::event_page(&id)
        .await
        .map_err(ServerFnError::new)
}

/// The state of every seat now, one character per seat
/// (`crate::model::decode_states` reads it).
#[server(prefix = "/rpc", endpoint = "seat_states")]
pub async fn seat_states(id: String) -> Result<Vec<String>, ServerFnError> {
    crate::server::api::seat_states(&id)
        .await
        .map_err(ServerFnError::new)
}

/// Asks for seats for the buyer behind the cookie (a new buyer when there is
/// none); `key` makes a retried click the same booking.
#[server(prefix = "/rpc", endpoint = "request_seats")]
pub async fn request_seats(
    event: String,
    request: SeatRequest,
    key: String,
) -> Result<BuyerAnswer, ServerFnError> {
    crate::server::api::request_seats(&event, request, &key)
        .await
        .map_err(ServerFnError::new)
}

/// Joins an event's waiting room (`join`), or asks where the visitor
/// stands in it.
#[server(prefix = "/rpc", endpoint = "waiting_room")]
pub async fn waiting_room(event: String, join: bool) -> Result<RoomStanding, ServerFnError> {
    crate::server::api::waiting_room(&event, join)
        .await
        .map_err(ServerFnError::new)
}

/// Waits (up to a few seconds) for a booking still in the queue.
#[server(prefix = "/rpc", endpoint = "await_booking")]
pub async fn await_booking(id: String) -> Result<BuyerAnswer, ServerFnError> {
    crate::server::api::await_booking(&id)
        .await
        .map_err(ServerFnError::new)
}

/// The payment step: buys the held seats.
#[server(prefix = "/rpc", endpoint = "confirm_booking")]
pub async fn confirm_booking(id: String) -> Result<BuyerAnswer, ServerFnError> {
    crate::server::api::confirm_booking(&id)
        .await
        .map_err(ServerFnError::new)
}

/// Gives the held seats back.
#[server(prefix = "/rpc", endpoint = "cancel_booking")]
pub async fn cancel_booking(id: String) -> Result<BuyerAnswer, ServerFnError> {
    crate::server::api::cancel_booking(&id)
        .await
        .map_err(ServerFnError::new)
}

/// Signs an organizer in: with their account's email and password, or,
/// with no email, with the house organizer's shared password.
#[server(prefix = "/rpc", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), ServerFnError> {
    crate::server::api::sign_in(&email, &password)
        .await
        .map_err(ServerFnError::new)
}

/// Opens an organizer account and signs it in.
#[server(prefix = "/rpc", endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String) -> Result<(), ServerFnError> {
    crate::server::api::sign_up(&email, &password)
        .await
        .map_err(ServerFnError::new)
}

/// Signs out: the API ends the session, so the token is refused
/// everywhere, not only forgotten by this browser.
#[server(prefix = "/rpc", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    crate::server::api::sign_out().await;
    Ok(())
}

/// Whether the visitor is signed in with a buyer account (not a guest).
#[server(prefix = "/rpc", endpoint = "buyer_signed_in")]
pub async fn buyer_signed_in() -> Result<bool, ServerFnError> {
    Ok(crate::server::api::buyer_signed_in().await)
}

/// Signs a buyer in, or (`new`) opens their account.
#[server(prefix = "/rpc", endpoint = "buyer_sign_in")]
pub async fn buyer_sign_in(
    email: String,
    password: String,
    new: bool,
) -> Result<(), ServerFnError> {
    crate::server::api::buyer_sign_in(&email, &password, new)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/rpc", endpoint = "buyer_sign_out")]
pub async fn buyer_sign_out() -> Result<(), ServerFnError> {
    crate::server::api::buyer_sign_out().await;
    Ok(())
}

/// The events the signed-in organizer runs.
#[server(prefix = "/rpc", endpoint = "my_events")]
pub async fn my_events() -> Result<Vec<EventCard>, ServerFnError> {
    crate::server::api::my_events()
        .await
        .map_err(ServerFnError::new)
}

/// Whether the visitor is a signed-in organizer.
#[server(prefix = "/rpc", endpoint = "is_organizer")]
pub async fn is_organizer() -> Result<bool, ServerFnError> {
    Ok(crate::server::api::is_organizer().await)
}

/// Creates an event; answers its id.
#[server(prefix = "/rpc", endpoint = "create_event")]
pub async fn create_event(event: NewEvent) -> Result<String, ServerFnError> {
    crate::server::api::create_event(event)
        .await
        .map_err(ServerFnError::new)
}

/// Opens or closes an event's sale.
#[server(prefix = "/rpc", endpoint = "set_sale")]
pub async fn set_sale(id: String, open: bool) -> Result<bool, ServerFnError> {
    crate::server::api::set_sale(&id, open)
        .await
        .map_err(ServerFnError::new)
}

/// The live figures of an event's sale (organizers only).
#[server(prefix = "/rpc", endpoint = "live_sale")]
pub async fn live_sale(id: String) -> Result<SaleStats, ServerFnError> {
    crate::server::api::sale_stats(&id)
        .await
        .map_err(ServerFnError::new)
}

/// Queue depth and per-pod figures (organizers only).
#[server(prefix = "/rpc", endpoint = "operations")]
pub async fn operations() -> Result<OpsSnapshot, ServerFnError> {
    crate::server::ops::snapshot()
        .await
        .map_err(ServerFnError::new)
}
