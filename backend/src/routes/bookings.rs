//! Bookings: request seats (a deferred response), long-poll a booking,
//! confirm (the payment step) and cancel.

use std::time::{Duration, Instant};

use actix_web::web::{Json, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use boxoffice_domain::{BookingId, CommandKind, EventId, SeatId, SectionCode, Selection};
use boxoffice_platform::kafka::EventPart;
use boxoffice_platform::views::{BookingView, EventView};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    Answer, admit_booking, booking, cached_booking, command, event, limit_booking_call, public,
};
use crate::auth::Buyer;
use crate::error::ApiError;
use crate::openapi::{ErrorBody, Pending};
use crate::state::{AppState, Data};
use utoipa::ToSchema;

/// What a buyer asks for: explicit `seats`, or the best `quantity` adjacent
/// seats in a `section`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    #[schema(example = json!(["A-1-5", "A-1-6"]))]
    seats: Option<Vec<String>>,
    #[schema(example = "A")]
    section: Option<String>,
    #[schema(example = 2)]
    quantity: Option<u16>,
}

/// Parses and checks a request against the event's layout, so that bad input
/// is refused here with a precise reason and never reaches the queue.
/// The part of the event that decides these seats
/// (docs/event-partitioning.md). A pick spanning parts is refused: each
/// part decides only its own seats, all or nothing.
fn part_of_selection(event: &EventView, selection: &Selection) -> Result<EventPart, ApiError> {
    let spec = &event.spec;
    let mut parts = match selection {
        Selection::Seats(seats) => seats
            .iter()
            .map(|s| spec.part_of_section(&s.section))
            .collect::<Vec<_>>(),
        Selection::BestAvailable { section, .. } => vec![spec.part_of_section(section)],
    }
    .into_iter()
    .flatten();
    let first = parts.next().unwrap_or(0);
    if parts.any(|p| p != first) {
        let r = boxoffice_domain::RejectReason::SeatsInSeveralParts;
        return Err(ApiError::unprocessable(r.code(), r.message()));
    }
    Ok(EventPart {
        part: first,
        parts: spec.parts,
    })
}

/// The part that decided a booking: the part of its seats (a refused
/// booking has none; its part no longer matters, and part 0 answers).
async fn part_of_booking(state: &AppState, view: &BookingView) -> Result<EventPart, ApiError> {
    let Some(seat) = view.seats.first().and_then(|s| s.parse::<SeatId>().ok()) else {
        return Ok(EventPart::WHOLE);
    };
    let event = event(state, view.event_id).await?;
    Ok(EventPart {
        part: event.spec.part_of_section(&seat.section).unwrap_or(0),
        parts: event.spec.parts,
    })
}

pub fn selection(body: BookingRequest, event: &EventView) -> Result<Selection, ApiError> {
    let max = event.max_seats_per_buyer;
    match (body.seats, body.section, body.quantity) {
        (Some(seats), None, None) => {
            if seats.is_empty() || seats.len() > usize::from(max) {
                return Err(ApiError::unprocessable(
                    "invalid_quantity",
                    format!("ask for 1 to {max} seats"),
                ));
            }
            let mut parsed: Vec<SeatId> = Vec::with_capacity(seats.len());
            for s in &seats {
                let seat: SeatId = s.parse().map_err(|e: boxoffice_domain::IdError| {
                    ApiError::unprocessable("invalid_seat", e.to_string())
                })?;
                if !event.spec.venue.contains(&seat) {
                    return Err(ApiError::unprocessable(
                        "unknown_seat",
                        format!("seat {seat} does not exist"),
                    ));
                }
                if parsed.contains(&seat) {
                    return Err(ApiError::unprocessable(
                        "duplicate_seat",
                        format!("seat {seat} is listed twice"),
                    ));
                }
                parsed.push(seat);
            }
            Ok(Selection::Seats(parsed))
        }
        (None, Some(section), Some(quantity)) => {
            let code: SectionCode = section.parse().map_err(|e: boxoffice_domain::IdError| {
                ApiError::unprocessable("unknown_section", e.to_string())
            })?;
            if event.spec.venue.section(&code).is_none() {
                return Err(ApiError::unprocessable(
                    "unknown_section",
                    format!("section {code} does not exist"),
                ));
            }
            if quantity == 0 || quantity > max {
                return Err(ApiError::unprocessable(
                    "invalid_quantity",
                    format!("quantity must be 1 to {max}"),
                ));
            }
            Ok(Selection::BestAvailable {
                section: code,
                quantity,
            })
        }
        _ => Err(ApiError::unprocessable(
            "invalid_selection",
            r#"send either {"seats": ["A-1-1", ...]} or {"section": "A", "quantity": 2}"#,
        )),
    }
}

/// Digest of a request, to tell a replay from a reused key.
fn fingerprint(event: Uuid, selection: &Selection) -> String {
    let mut h = Sha256::new();
    h.update(event.as_bytes());
    h.update(format!("{selection:?}").as_bytes());
    hex::encode(h.finalize())
}

fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_idempotency_key",
                "send an Idempotency-Key header (any unique string per booking attempt)",
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "the Idempotency-Key must be visible ASCII",
            )
        })?;
    if key.is_empty() || key.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "the Idempotency-Key must be 1-200 characters",
        ));
    }
    Ok(key.to_owned())
}

fn accepted(id: Uuid) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/bookings/{id}")))
        .insert_header(("Retry-After", "1"))
        .json(Pending::new(
            id,
            format!("/api/bookings/{id}?wait_ms=10000"),
        ))
}

/// Holds seats: answered when the outcome is known (201 held, 409/422
/// refused) or, past the deadline, 202 with a URL to poll. Replaying an
/// `Idempotency-Key` answers the same booking (200).
#[utoipa::path(post, path = "/api/events/{id}/bookings", tag = "bookings",
    request_body = BookingRequest,
    params(("id" = Uuid, Path, description = "event id"),
        ("Idempotency-Key" = String, Header, description = "unique per booking attempt; a retry reuses it"),
        ("Waiting-Room-Token" = Option<String>, Header, description = "for a sale with a waiting room: the token of the buyer's place, once admitted")),
    security(("bearer" = [])),
    responses((status = 201, description = "seats held", body = BookingView),
        (status = 200, description = "a replay: the same booking", body = BookingView),
        (status = 202, description = "accepted; outcome not known yet", body = Pending),
        (status = 400, description = "`missing_idempotency_key`, `invalid_idempotency_key`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`buyers_only`; for a sale with a waiting room: `waiting_room_required` (no token), `invalid_waiting_room_token` (not this buyer's, sign-in's or event's), `not_admitted_yet` (see `Retry-After`), `admission_expired` (the shopping window ended)", body = ErrorBody),
        (status = 404, description = "`unknown_event`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 409, description = "`seats_taken`, `sale_not_open`, `no_adjacent_seats`, `buyer_limit_exceeded`", body = ErrorBody),
        (status = 422, description = "`invalid_quantity`, `invalid_seat`, `unknown_seat`, `unknown_section`, `duplicate_seat`, `invalid_selection`, `idempotency_key_reused`, `seats_in_several_parts`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many calls from this network or buyer, or for this event; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the queue is down; `overloaded`: more buyers than it decides in time, answered at once with `Retry-After`; retry with the same key", body = ErrorBody)))]
pub async fn create(
    state: Data,
    req: HttpRequest,
    buyer: Buyer,
    id: Path<Uuid>,
    body: Json<BookingRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let _admitted = admit_booking(&state)?;
    limit_booking_call(&state, &req, buyer.0, Some(*id)).await?;
    let event_view = super::event_for_booking(&state, *id).await?;
    let selection = selection(body.into_inner(), &event_view)?;
    let part = part_of_selection(&event_view, &selection)?;
    let booking_id = BookingId::for_request(buyer.0, &key, part.part);
    let fingerprint = fingerprint(*id, &selection);
    // A replay is usually answered from the cache; one the cache lacks goes
    // to the seat-processor, which knows every live booking and remembers a
    // refusal for `REFUSAL_TTL_MS` of command time (afterwards the key is a
    // new request).
    if let Some(existing) = cached_booking(&state, booking_id.0).await? {
        if existing.fingerprint != fingerprint {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request.",
            ));
        }
        return replayed(existing);
    }
    // A replay (above) is answered whatever the waiting room says: a retry
    // after the shopping window ended still learns its booking.
    crate::waiting_room::check_admitted(
        &state.signer,
        &event_view,
        buyer.0.0,
        buyer.1,
        super::waiting_room::token_of(&req),
    )?;
    if !event_view.on_sale {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "sale_not_open",
            "The sale for this event is not open.",
        ));
    }
    let kind = CommandKind::RequestBooking {
        booking_id,
        buyer: buyer.0,
        selection,
        fingerprint,
    };
    match command(
        &state,
        EventId(*id),
        part,
        booking_id.0,
        kind,
        "request_booking",
    )
    .await?
    {
        Answer::Replied(reply) => booking_answer(reply.rejection, reply.booking, true),
        Answer::Pending => Ok(accepted(booking_id.0)),
    }
}

/// The answer to a replayed request: the same booking, or its refusal.
fn replayed(existing: BookingView) -> Result<HttpResponse, ApiError> {
    match existing.status.as_str() {
        "rejected" => {
            let code = existing.reject_reason.clone().unwrap_or_default();
            Err(ApiError::rejected(&boxoffice_platform::views::Rejection {
                message: message_for(&code),
                code,
            }))
        }
        _ => Ok(HttpResponse::Ok()
            .insert_header(("Location", format!("/api/bookings/{}", existing.id)))
            .json(public(existing))),
    }
}

fn message_for(code: &str) -> String {
    match code {
        "seats_taken" => "Some of these seats were taken meanwhile.",
        "sale_not_open" => "The sale for this event is not open.",
        "no_adjacent_seats" => "No row in this section has that many adjacent free seats.",
        "buyer_limit_exceeded" => "This would exceed the seat limit per buyer.",
        _ => "The booking was refused.",
    }
    .to_owned()
}

fn booking_answer(
    rejection: Option<boxoffice_platform::views::Rejection>,
    view: Option<BookingView>,
    created: bool,
) -> Result<HttpResponse, ApiError> {
    match (rejection, view) {
        (Some(r), _) => Err(ApiError::rejected(&r)),
        (None, Some(view)) => {
            let mut res = if created {
                HttpResponse::Created()
            } else {
                HttpResponse::Ok()
            };
            Ok(res
                .insert_header(("Location", format!("/api/bookings/{}", view.id)))
                .json(public(view)))
        }
        (None, None) => Err(ApiError::not_found(
            "unknown_booking",
            "This booking does not exist.",
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Wait {
    /// Wait up to this long (ms, capped by the server) for the booking to exist.
    #[serde(default)]
    wait_ms: u64,
}

/// A booking its buyer may see.
async fn owned_booking(
    state: &AppState,
    buyer: &Buyer,
    id: Uuid,
) -> Result<Option<BookingView>, ApiError> {
    owned(buyer, booking(state, id).await?)
}

/// A booking its buyer may see, from Redis only.
async fn owned_cached_booking(
    state: &AppState,
    buyer: &Buyer,
    id: Uuid,
) -> Result<Option<BookingView>, ApiError> {
    owned(buyer, cached_booking(state, id).await?)
}

fn owned(buyer: &Buyer, found: Option<BookingView>) -> Result<Option<BookingView>, ApiError> {
    match found {
        Some(b) if b.buyer_id != buyer.0.0 => Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "not_your_booking",
            "This booking belongs to another buyer.",
        )),
        other => Ok(other),
    }
}

/// The booking; with `wait_ms`, waits up to that long for it to exist (the
/// long poll after a 202).
#[utoipa::path(get, path = "/api/bookings/{id}", tag = "bookings",
    params(("id" = Uuid, Path, description = "booking id"), Wait),
    security(("bearer" = [])),
    responses((status = 200, body = BookingView),
        (status = 400, description = "`invalid_query`: wait_ms is not a number of milliseconds", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`buyers_only`, `not_your_booking`", body = ErrorBody),
        (status = 404, description = "`unknown_booking` (not yet, after a 202: poll again); `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many reads from this network; `too_many_waits`: this buyer has as many long polls waiting here as it may; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the cache or storage is unreachable, or this instance has as many long polls waiting as it keeps", body = ErrorBody)))]
pub async fn get(
    _: super::Read,
    state: Data,
    buyer: Buyer,
    id: Path<Uuid>,
    wait: Query<Wait>,
) -> Result<HttpResponse, ApiError> {
    let wait = Duration::from_millis(wait.wait_ms).min(state.long_poll_max);
    // A long poll holds a task and a waiter here until it is answered:
    // bounded per buyer and in all, freed when answered or abandoned.
    let _place = if wait.is_zero() {
        None
    } else {
        Some(state.limits.long_polls.open(&buyer.0.0.to_string())?)
    };
    let started = Instant::now();
    let mut first = true;
    loop {
        // The reservation-processor (and so PostgreSQL) is asked first and
        // last; in between only Redis, which it fills in the same step as
        // PostgreSQL, so buyers waiting after a 202 do not load the database.
        let last = started.elapsed() >= wait;
        let found = if first || last {
            owned_booking(&state, &buyer, *id).await?
        } else {
            owned_cached_booking(&state, &buyer, *id).await?
        };
        first = false;
        if let Some(view) = found {
            return Ok(HttpResponse::Ok().json(public(view)));
        }
        if last {
            return Err(ApiError::not_found(
                "unknown_booking",
                "No such booking (yet); if you just got a 202, poll again.",
            ));
        }
        // Woken early by a reply if this instance published the command; otherwise re-read shortly.
        let waiter = state.waiters.register(*id);
        let _ = waiter
            .wait(Duration::from_millis(200).min(wait.saturating_sub(started.elapsed())))
            .await;
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    payment_reference: String,
}

/// The payment step: sells the held seats.
#[utoipa::path(post, path = "/api/bookings/{id}/confirm", tag = "bookings", request_body = Confirm,
    params(("id" = Uuid, Path, description = "booking id")),
    security(("bearer" = [])),
    responses((status = 200, description = "confirmed", body = BookingView),
        (status = 202, description = "accepted; outcome not known yet", body = Pending),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`buyers_only`, `not_your_booking`", body = ErrorBody),
        (status = 404, description = "`unknown_booking`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 409, description = "`hold_expired`, `not_held`, `already_confirmed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_payment_reference`", body = ErrorBody),
        (status = 429, description = "`rate_limited`; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn confirm(
    state: Data,
    req: HttpRequest,
    buyer: Buyer,
    id: Path<Uuid>,
    body: Json<Confirm>,
) -> Result<HttpResponse, ApiError> {
    limit_booking_call(&state, &req, buyer.0, None).await?;
    let reference = body.into_inner().payment_reference;
    if reference.trim().is_empty() || reference.len() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_payment_reference",
            "payment_reference must be 1-100 characters",
        ));
    }
    let view = owned_booking(&state, &buyer, *id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_booking", "This booking does not exist."))?;
    let kind = CommandKind::ConfirmBooking {
        booking_id: BookingId(*id),
        buyer: buyer.0,
        payment_reference: reference,
    };
    booking_command(&state, &view, kind, "confirm_booking").await
}

/// Cancels a hold and frees its seats.
#[utoipa::path(delete, path = "/api/bookings/{id}", tag = "bookings",
    params(("id" = Uuid, Path, description = "booking id")),
    security(("bearer" = [])),
    responses((status = 200, description = "cancelled", body = BookingView),
        (status = 202, description = "accepted; outcome not known yet", body = Pending),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`buyers_only`, `not_your_booking`", body = ErrorBody),
        (status = 404, description = "`unknown_booking`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 409, description = "`not_held`", body = ErrorBody),
        (status = 429, description = "`rate_limited`; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn cancel(
    state: Data,
    req: HttpRequest,
    buyer: Buyer,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    limit_booking_call(&state, &req, buyer.0, None).await?;
    let view = owned_booking(&state, &buyer, *id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_booking", "This booking does not exist."))?;
    let kind = CommandKind::CancelBooking {
        booking_id: BookingId(*id),
        buyer: buyer.0,
    };
    booking_command(&state, &view, kind, "cancel_booking").await
}

/// Sends a command about an existing booking to the part that decided it,
/// and answers with its outcome.
async fn booking_command(
    state: &AppState,
    view: &BookingView,
    kind: CommandKind,
    label: &'static str,
) -> Result<HttpResponse, ApiError> {
    let part = part_of_booking(state, view).await?;
    match command(state, EventId(view.event_id), part, view.id, kind, label).await? {
        Answer::Replied(reply) => booking_answer(reply.rejection, reply.booking, false),
        Answer::Pending => Ok(accepted(view.id)),
    }
}
