//! Events: listing and seat maps for buyers; creation and the sale switch for
//! organizers.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Json, Path, Query};
use boxoffice_domain::{CommandKind, EventId, EventSpec, PriceCategory, VenueLayout, WaitingRoom};
use boxoffice_platform::cache::{is_sold, section_states};
use boxoffice_platform::kafka::EventPart;
use boxoffice_platform::now_ms;
use boxoffice_platform::views::{BookingTally, EventView};
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Answer, Read, command, command_partitions, event, interactive_query};
use crate::auth::Organizer;
use crate::error::ApiError;
use crate::openapi::{
    ErrorBody, EventList, EventStats, EventSummary, Pending, SeatMapView, SectionAvailability,
    WaitingRoomFigures,
};
use crate::state::{AppState, Data};

/// Every event, newest first.
#[utoipa::path(get, path = "/api/events", tag = "events",
    responses((status = 200, body = EventList),
        (status = 429, description = "`rate_limited`: too many reads from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: cache and storage unreachable", body = ErrorBody)))]
pub async fn list(_: Read, state: Data) -> Result<HttpResponse, ApiError> {
    let mut views = cached_events(&state).await?;
    if views.is_none() {
        super::interactive_query::<serde_json::Value>(
            &state,
            reqwest::Method::POST,
            "/internal/cache/events",
        )
        .await?;
        views = cached_events(&state).await?;
    }
    let views = views.unwrap_or_default();
    let taken = taken_per_event(&state, &views).await?;
    let now = now_ms();
    let events = views
        .into_iter()
        .zip(taken)
        .map(|(v, taken)| {
            let v = v.refreshed(now);
            EventSummary {
                seats_left: v.capacity.saturating_sub(taken),
                id: v.id.0,
                name: v.name,
                starts_at: v.starts_at,
                venue: v.spec.venue.name,
                sale_state: v.sale_state,
                on_sale: v.on_sale,
                capacity: v.capacity,
                sale_opens_at: v.sale_opens_at,
                sale_closes_at: v.sale_closes_at,
                organizer_id: v
                    .spec
                    .organizer_id
                    .unwrap_or_else(crate::auth::house_organizer),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventList { events }))
}

/// Seats held or sold per event, from the cache: one pipelined `HLEN` per
/// section of every event listed.
async fn taken_per_event(state: &Data, views: &[EventView]) -> Result<Vec<usize>, ApiError> {
    if views.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = state.redis.conn();
    let mut pipe = redis::pipe();
    for v in views {
        for s in &v.spec.venue.sections {
            pipe.hlen(state.keys.section_seats(v.id, s.code.as_str()));
        }
    }
    let lens: Vec<usize> = pipe
        .query_async(&mut conn)
        .await
        .map_err(|e| ApiError::unavailable("the cache is unavailable", e))?;
    let mut lens = lens.into_iter();
    Ok(views
        .iter()
        .map(|v| lens.by_ref().take(v.spec.venue.sections.len()).sum())
        .collect())
}

/// The cached events, or `None` when the index is missing from Redis.
async fn cached_events(state: &Data) -> Result<Option<Vec<EventView>>, ApiError> {
    let mut conn = state.redis.conn();
    let ids: Vec<String> = conn
        .zrevrange(state.keys.events(), 0, 199)
        .await
        .map_err(|e| ApiError::unavailable("the cache is unavailable", e))?;
    if ids.is_empty() {
        let exists: bool = conn
            .exists(state.keys.events())
            .await
            .map_err(|e| ApiError::unavailable("the cache is unavailable", e))?;
        return Ok(exists.then(Vec::new));
    }
    let keys: Vec<String> = ids.iter().map(|id| state.keys.event(id)).collect();
    let jsons: Vec<Option<String>> = conn
        .mget(&keys)
        .await
        .map_err(|e| ApiError::unavailable("the cache is unavailable", e))?;
    Ok(Some(
        jsons
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str(&j).ok())
            .collect(),
    ))
}

/// An event: layout, prices and on-sale window.
#[utoipa::path(get, path = "/api/events/{id}", tag = "events",
    params(("id" = Uuid, Path, description = "event id")),
    responses((status = 200, body = EventView),
        (status = 404, description = "`unknown_event`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many reads from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn get(_: Read, state: Data, id: Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(event(&state, *id).await?))
}

/// How a seat map carries its seats.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeatEncoding {
    /// `seats`: every taken seat by id.
    #[default]
    Map,
    /// `states` in each section: one character per seat in layout order,
    /// small at stadium size.
    Compact,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SeatMapQuery {
    /// `map` (default): every taken seat by id in `seats`; `compact`: each
    /// section's `states`, one character per seat in layout order (its rows
    /// as listed, seats 1..n in each): `.` free, `h` held, `s` sold.
    #[serde(default)]
    #[param(inline)]
    encoding: SeatEncoding,
}

/// The seat map from the cache (Redis): counts per section and the status
/// of every taken seat (absent seats are free).
#[utoipa::path(get, path = "/api/events/{id}/seats", tag = "events",
    params(("id" = Uuid, Path, description = "event id"), SeatMapQuery),
    responses((status = 200, body = SeatMapView),
        (status = 400, description = "`invalid_query`: encoding is neither `map` nor `compact`", body = ErrorBody),
        (status = 404, description = "`unknown_event`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many reads from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn seats(
    _: Read,
    state: Data,
    id: Path<Uuid>,
    query: Query<SeatMapQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = event(&state, *id).await?;
    Ok(HttpResponse::Ok().json(seat_map(&state, &view, query.encoding).await?))
}

/// An event's seat map as the cache has it.
async fn seat_map(
    state: &AppState,
    view: &EventView,
    encoding: SeatEncoding,
) -> Result<SeatMapView, ApiError> {
    let mut conn = state.redis.conn();
    let mut pipe = redis::pipe();
    for s in &view.spec.venue.sections {
        pipe.hgetall(state.keys.section_seats(view.id, s.code.as_str()));
    }
    let taken: Vec<HashMap<String, String>> = pipe
        .query_async(&mut conn)
        .await
        .map_err(|e| ApiError::unavailable("the cache is unavailable", e))?;
    let mut seats = BTreeMap::new();
    let mut sections = Vec::new();
    for (section, taken) in view.spec.venue.sections.iter().zip(taken) {
        let sold = taken.values().filter(|v| is_sold(v)).count();
        let held = taken.len() - sold;
        let capacity = section.capacity();
        let states = (encoding == SeatEncoding::Compact)
            .then(|| section_states(section, taken.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        if encoding == SeatEncoding::Map {
            for (seat, value) in taken {
                let status = if is_sold(&value) { "sold" } else { "held" };
                seats.insert(seat, status.to_owned());
            }
        }
        sections.push(SectionAvailability {
            code: section.code.to_string(),
            name: section.name.clone(),
            price_category: section.price_category.clone(),
            price_cents: view.spec.seat_price_cents(&section.code),
            capacity,
            free: capacity.saturating_sub(held + sold),
            held,
            sold,
            states,
        });
    }
    Ok(SeatMapView {
        event_id: view.id.0,
        on_sale: view.on_sale,
        sections,
        seats,
    })
}

/// Organizers: the live figures of an event's sale.
#[utoipa::path(get, path = "/api/events/{id}/stats", tag = "events",
    params(("id" = Uuid, Path, description = "event id")),
    security(("bearer" = [])),
    responses((status = 200, body = EventStats),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 403, description = "`organizers_only`; `not_your_event`: another organizer's", body = ErrorBody),
        (status = 404, description = "`unknown_event`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many reads from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn stats(
    _: Read,
    state: Data,
    organizer: Organizer,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let view = event(&state, *id).await?;
    organizer.check_owns(view.spec.organizer_id)?;
    let map = seat_map(&state, &view, SeatEncoding::Map).await?;
    let bookings = interactive_query::<BookingTally>(
        &state,
        reqwest::Method::GET,
        &format!("/internal/events/{}/tally", view.id),
    )
    .await?
    .unwrap_or_default();
    let waiting_room = match view.spec.waiting_room {
        None => None,
        Some(room) => {
            let f = state
                .waiting_rooms
                .figures(&state.redis, &state.keys, &view, room)
                .await?;
            Some(WaitingRoomFigures {
                admissions_per_minute: room.admissions_per_minute,
                opens_minutes_before: room.opens_minutes_before,
                shopping_minutes: room.shopping_minutes,
                waiting: f.waiting,
                admitted: f.admitted,
                drawn: f.drawn,
            })
        }
    };
    let sum = |f: fn(&SectionAvailability) -> usize| map.sections.iter().map(f).sum::<usize>();
    Ok(HttpResponse::Ok().json(EventStats {
        event_id: view.id.0,
        name: view.name.clone(),
        on_sale: view.on_sale,
        capacity: sum(|s| s.capacity),
        free: sum(|s| s.free),
        held: sum(|s| s.held),
        sold: sum(|s| s.sold),
        currency: view
            .spec
            .price_categories
            .first()
            .map(|c| c.currency.clone())
            .unwrap_or_default(),
        bookings,
        waiting_room,
        at_ms: now_ms(),
    }))
}

/// What an organizer sends to create an event.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    name: String,
    starts_at: DateTime<Utc>,
    sale_opens_at: DateTime<Utc>,
    sale_closes_at: DateTime<Utc>,
    venue: VenueLayout,
    price_categories: Vec<PriceCategory>,
    #[serde(default = "default_max_seats")]
    max_seats_per_buyer: u16,
    #[serde(default = "default_hold_seconds")]
    hold_duration_seconds: i64,
    /// How many parts the venue is decided in, each on its own partition
    /// and so by its own seat-processor (section `i` in part `i % parts`);
    /// at most the number of sections and of partitions. A buyer's pick
    /// must lie within one part.
    #[serde(default = "default_parts")]
    #[schema(default = 1, minimum = 1, maximum = 64)]
    parts: u16,
    /// A virtual waiting room in front of the sale (docs/waiting-room.md):
    /// buyers then book only once admitted, at this rate.
    #[serde(default)]
    waiting_room: Option<WaitingRoom>,
}

impl CreateEvent {
    /// The event this body describes, created by `organizer`, once it
    /// passes every check (`422 invalid_event` otherwise).
    pub fn into_spec(self, organizer: Uuid) -> Result<EventSpec, ApiError> {
        let spec = EventSpec {
            name: self.name,
            starts_at_ms: self.starts_at.timestamp_millis(),
            sale_opens_at_ms: self.sale_opens_at.timestamp_millis(),
            sale_closes_at_ms: self.sale_closes_at.timestamp_millis(),
            venue: self.venue,
            price_categories: self.price_categories,
            max_seats_per_buyer: self.max_seats_per_buyer,
            hold_duration_ms: self.hold_duration_seconds.saturating_mul(1000),
            parts: self.parts,
            organizer_id: Some(organizer),
            waiting_room: self.waiting_room,
        };
        spec.validate()
            .map_err(|e| ApiError::unprocessable("invalid_event", e.to_string()))?;
        Ok(spec)
    }
}

fn default_parts() -> u16 {
    1
}

fn default_max_seats() -> u16 {
    8
}

fn default_hold_seconds() -> i64 {
    600
}

/// Organizers: validates the layout and creates the event through the
/// seat-processor.
#[utoipa::path(post, path = "/api/events", tag = "events", request_body = CreateEvent,
    security(("bearer" = [])),
    responses((status = 201, description = "created", body = EventView),
        (status = 202, description = "accepted; not applied yet", body = Pending),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 403, description = "`organizers_only`", body = ErrorBody),
        (status = 409, description = "`event_exists`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_event`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn create(
    state: Data,
    organizer: Organizer,
    body: Json<CreateEvent>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.into_inner().into_spec(organizer.0)?;
    let partitions = command_partitions(&state).await?;
    if i32::from(spec.parts) > partitions {
        return Err(ApiError::unprocessable(
            "invalid_event",
            format!("parts must be at most the {partitions} partitions of the booking queue"),
        ));
    }
    let id = EventId(Uuid::now_v7());
    let parts = spec.parts;
    respond_event(
        &state,
        id,
        parts,
        move |part| CommandKind::CreateEvent {
            spec: spec.clone(),
            part,
        },
        "create_event",
        StatusCode::CREATED,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct SetSale {
    open: bool,
}

/// Organizers: opens or closes the sale by hand.
#[utoipa::path(post, path = "/api/events/{id}/sale", tag = "events", request_body = SetSale,
    params(("id" = Uuid, Path, description = "event id")),
    security(("bearer" = [])),
    responses((status = 200, body = EventView),
        (status = 202, description = "accepted; not applied yet", body = Pending),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 403, description = "`organizers_only`; `not_your_event`: another organizer's", body = ErrorBody),
        (status = 404, description = "`unknown_event`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn set_sale(
    state: Data,
    organizer: Organizer,
    id: Path<Uuid>,
    body: Json<SetSale>,
) -> Result<HttpResponse, ApiError> {
    let view = event(&state, *id).await?;
    organizer.check_owns(view.spec.organizer_id)?;
    // Dropped before the command and after: a booking read in between
    // would keep the old state for a moment (crate::event_cache).
    state.events.forget(*id);
    let answer = respond_event(
        &state,
        EventId(*id),
        view.spec.parts,
        {
            let open = body.open;
            move |_| CommandKind::SetSale { open }
        },
        "set_sale",
        StatusCode::OK,
    )
    .await;
    state.events.forget(*id);
    answer
}

/// Sends an event command to every part of the event, part 0 last, and
/// answers with part 0's outcome (which stands for the event). Parts open a
/// scheduled sale by the command's own time, so they agree; an organizer's
/// command reaches every part, and a part that has not answered in time
/// makes the answer `202`: its command is on its way, like any deferred one.
/// The sends run on their own task: a client that goes away halfway does
/// not leave some parts without the command.
async fn respond_event(
    state: &Data,
    id: EventId,
    parts: u16,
    kind: impl Fn(u16) -> CommandKind + 'static,
    label: &'static str,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let state = state.clone();
    let fan_out = actix_web::rt::spawn(async move {
        let (mut pending, mut refused) = (false, None);
        for part in (1..parts).rev() {
            let at = EventPart { part, parts };
            match command(&state, id, at, id.0, kind(part), label).await? {
                Answer::Replied(reply) => refused = refused.or(reply.rejection),
                Answer::Pending => pending = true,
            }
        }
        let at = EventPart { part: 0, parts };
        let answer = command(&state, id, at, id.0, kind(0), label).await?;
        Ok::<_, ApiError>((answer, pending, refused))
    });
    let (answer, pending, refused) = fan_out
        .await
        .map_err(|e| ApiError::unavailable("the event command was interrupted", e))??;
    if let Some(r) = refused {
        return Err(ApiError::rejected(&r));
    }
    let answer = if pending { Answer::Pending } else { answer };
    match answer {
        Answer::Replied(reply) => match (reply.rejection, reply.event) {
            (Some(r), _) => Err(ApiError::rejected(&r)),
            (None, Some(view)) => Ok(HttpResponse::build(status)
                .insert_header(("Location", format!("/api/events/{}", view.id)))
                .json(view)),
            (None, None) => Ok(HttpResponse::Accepted()
                .insert_header(("Location", format!("/api/events/{id}")))
                .json(Pending::new(id.0, format!("/api/events/{id}")))),
        },
        Answer::Pending => Ok(HttpResponse::Accepted()
            .insert_header(("Location", format!("/api/events/{id}")))
            .json(Pending::new(id.0, format!("/api/events/{id}")))),
    }
}
