//! An on-sale's virtual waiting room: buyers join, ask where they stand,
//! and book with the token of their place once their turn has come
//! (docs/waiting-room.md).

use actix_web::http::StatusCode;
use actix_web::web::Path;
use actix_web::{HttpRequest, HttpResponse};
use boxoffice_domain::{Turn, WaitingRoom};
use boxoffice_platform::views::EventView;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event;
use crate::accounts::SessionState;
use crate::auth::Buyer;
use crate::error::ApiError;
use crate::limits::{Check, OnError, Scope};
use crate::openapi::{ErrorBody, WaitingRoomPlace};
use crate::state::{AppState, Data};
use crate::waiting_room::{Ask, Mode, Place, Refusal, Standing};

/// The header that carries a waiting-room token.
pub const TOKEN_HEADER: &str = "Waiting-Room-Token";

/// The token a request carries, if any.
pub fn token_of(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn room_of(view: &EventView) -> Result<WaitingRoom, ApiError> {
    view.spec.waiting_room.ok_or_else(|| {
        ApiError::not_found(
            "no_waiting_room",
            "this sale has no waiting room: book directly",
        )
    })
}

fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Joins the waiting room, or answers the place already taken. Before the
/// sale opens, every buyer who joins is drawn in a random order when it
/// opens; afterwards, buyers queue in arrival order. One place per buyer,
/// held by one sign-in at a time; joining again after the shopping window
/// ended queues at the back.
#[utoipa::path(post, path = "/api/events/{id}/waiting-room", tag = "waiting room",
    params(("id" = Uuid, Path, description = "event id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the buyer's place", body = WaitingRoomPlace),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`buyers_only`", body = ErrorBody),
        (status = 404, description = "`unknown_event`; `no_waiting_room`: book directly; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 409, description = "`waiting_room_not_open`: joining opens later (see `Retry-After`); `sale_closed`; `place_held_elsewhere`: another sign-in of this account holds the place", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many waiting-room calls from this buyer; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn join(state: Data, buyer: Buyer, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    limit(&state, &buyer).await?;
    let view = event(&state, *id).await?;
    let room = room_of(&view)?;
    let standing = stand(&state, &view, room, &buyer, Mode::Join, None).await?;
    Ok(answer(&state, &view, room, standing))
}

/// Where the buyer stands now: the place of the token sent as
/// `Waiting-Room-Token` (which puts it back if the waiting room lost it),
/// or else this buyer's place. Ask again after `Retry-After` seconds.
#[utoipa::path(get, path = "/api/events/{id}/waiting-room", tag = "waiting room",
    params(("id" = Uuid, Path, description = "event id"),
        ("Waiting-Room-Token" = Option<String>, Header, description = "the token of the buyer's place")),
    security(("bearer" = [])),
    responses((status = 200, description = "the buyer's place", body = WaitingRoomPlace),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`buyers_only`; `invalid_waiting_room_token`: not this buyer's, sign-in's or event's", body = ErrorBody),
        (status = 404, description = "`unknown_event`; `no_waiting_room`; `no_place`: join first; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 409, description = "`place_held_elsewhere`: another sign-in of this account holds the place", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many waiting-room calls from this buyer; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn status(
    state: Data,
    req: HttpRequest,
    buyer: Buyer,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    limit(&state, &buyer).await?;
    let view = event(&state, *id).await?;
    let room = room_of(&view)?;
    let restore = token_of(&req)
        .map(|token| Place::read_bound(&state.signer, token, *id, buyer.0.0, buyer.1))
        .transpose()?
        .map(|p| p.spot);
    let standing = stand(&state, &view, room, &buyer, Mode::Status, restore).await?;
    Ok(answer(&state, &view, room, standing))
}

/// A buyer's waiting-room calls are rate-limited over every instance: one
/// that ignores `Retry-After` and polls in a loop is answered 429.
async fn limit(state: &AppState, buyer: &Buyer) -> Result<(), ApiError> {
    let check = Check {
        scope: Scope::WaitingRoom,
        subject: buyer.0.0.to_string(),
        rate: state.limits.waiting_room,
    };
    state
        .limits
        .limiter
        .take(&state.redis, &[check], OnError::Allow)
        .await
}

/// Asks the waiting room; a place held by a session since signed out is
/// taken over (its token no longer works anyway), and only if that session
/// still holds it when the script runs.
async fn stand(
    state: &AppState,
    view: &EventView,
    room: WaitingRoom,
    buyer: &Buyer,
    mode: Mode,
    restore: Option<crate::waiting_room::Spot>,
) -> Result<Standing, ApiError> {
    let mut take_over_from = None;
    loop {
        let ask = Ask {
            event: view,
            room,
            holder: buyer.0.0,
            session: buyer.1,
            mode,
            take_over_from,
            restore,
        };
        let refusal = match state
            .waiting_rooms
            .place(&state.redis, &state.keys, ask)
            .await?
        {
            Ok(standing) => return Ok(standing),
            Err(r) => r,
        };
        match refusal {
            // Another sign-in holds the place: take it over if that one
            // has signed out, once (a third sign-in that took it meanwhile
            // keeps it).
            Refusal::Elsewhere(other) if take_over_from.is_none() => {
                let expires = state.accounts.expires_at().timestamp();
                let signed_out = state
                    .accounts
                    .session_state(&state.redis, other, expires)
                    .await?
                    == SessionState::Revoked;
                if !signed_out {
                    return Err(held_elsewhere());
                }
                take_over_from = Some(other);
            }
            Refusal::Elsewhere(_) => return Err(held_elsewhere()),
            Refusal::NotOpen(at) => {
                let wait_s = ((at - boxoffice_platform::now_ms()).max(0) as u64).div_ceil(1000);
                return Err(ApiError::Later {
                    status: StatusCode::CONFLICT,
                    code: "waiting_room_not_open",
                    message: format!(
                        "the waiting room opens at {} (in {wait_s} s)",
                        instant(at).to_rfc3339()
                    ),
                    retry_after_s: wait_s.max(1),
                });
            }
            Refusal::Closed => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "sale_closed",
                    "the sale has closed",
                ));
            }
            Refusal::NoPlace => {
                return Err(ApiError::not_found(
                    "no_place",
                    format!(
                        "no place in this waiting room: join it (POST /api/events/{}/waiting-room)",
                        view.id
                    ),
                ));
            }
        }
    }
}

fn held_elsewhere() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "place_held_elsewhere",
        "another sign-in of this account holds its place in the waiting room: continue there, or sign out there first",
    )
}

/// The buyer's place, with the newest token and when to ask again.
fn answer(state: &AppState, view: &EventView, room: WaitingRoom, s: Standing) -> HttpResponse {
    let turn = s
        .turn_at_ms
        .map(|t| Turn::at(t, room.window_ms(), s.now_ms));
    let (label, wait_ms) = match turn {
        None => ("waiting", None),
        Some(Turn::Waiting { wait_ms }) => ("waiting", Some(wait_ms)),
        Some(Turn::Admitted { .. }) => ("admitted", None),
        Some(Turn::Expired) => ("expired", None),
    };
    // Ask again often near the turn, rarely far from it: a long line
    // polls the waiting room far less than it would at a fixed rate.
    let retry_after_s = match (turn, wait_ms) {
        (None, _) => ((view.spec.sale_opens_at_ms - s.now_ms) / 1000).clamp(2, 30),
        (_, Some(w)) => (w / 10_000).clamp(2, 30),
        _ => 5,
    };
    HttpResponse::Ok()
        .insert_header(("Retry-After", retry_after_s.to_string()))
        .json(WaitingRoomPlace {
            event_id: view.id.0,
            state: label.to_owned(),
            token: s.place.token(&state.signer),
            ahead: s.ahead,
            waiting: s.waiting,
            turn_at: s.turn_at_ms.map(instant),
            estimated_wait_seconds: wait_ms.map(|w| (w as u64).div_ceil(1000)),
            window_ends_at: s.turn_at_ms.map(|t| instant(t + room.window_ms())),
            sale_opens_at: view.sale_opens_at,
            admissions_per_minute: room.admissions_per_minute,
        })
}
