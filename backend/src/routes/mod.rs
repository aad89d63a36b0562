//! The API's routes, one module per resource, and the helpers they share:
//! publishing a command and awaiting its outcome, and cached reads that fall
//! back to the reservation-processor's interactive queries.

pub mod accounts;
pub mod auth;
pub mod bookings;
pub mod events;
pub mod stream;
pub mod waiting_room;

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, web};
use boxoffice_domain::{BuyerId, Command, CommandKind, EventId};
use boxoffice_platform::messages::{CommandEnvelope, encode_command};
use boxoffice_platform::now_ms;
use boxoffice_platform::views::{BookingView, EventView, Reply};
use boxoffice_platform::{client, kafka, trace};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;
use redis::AsyncCommands;
use tracing::Instrument;
use uuid::Uuid;

use crate::admission::Ticket;
use crate::error::ApiError;
use crate::limits::{Check, OnError, Rate, Scope};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(crate::openapi::document))
        .route("/api/auth/buyer", web::post().to(auth::buyer))
        .route("/api/auth/organizer", web::post().to(auth::organizer))
        .route("/api/auth/session", web::get().to(auth::session))
        .route("/api/accounts", web::post().to(accounts::sign_up))
        .route("/api/sessions", web::post().to(accounts::sign_in))
        .route(
            "/api/sessions/current",
            web::delete().to(accounts::sign_out),
        )
        .route("/api/events", web::get().to(events::list))
        .route("/api/events", web::post().to(events::create))
        .route("/api/events/{id}", web::get().to(events::get))
        .route("/api/events/{id}/sale", web::post().to(events::set_sale))
        .route("/api/events/{id}/seats", web::get().to(events::seats))
        .route("/api/events/{id}/stats", web::get().to(events::stats))
        .route(
            "/api/events/{id}/seats/stream",
            web::get().to(stream::seats),
        )
        .route(
            "/api/events/{id}/bookings",
            web::post().to(bookings::create),
        )
        .route(
            "/api/events/{id}/waiting-room",
            web::post().to(waiting_room::join),
        )
        .route(
            "/api/events/{id}/waiting-room",
            web::get().to(waiting_room::status),
        )
        .route("/api/bookings/{id}", web::get().to(bookings::get))
        .route("/api/bookings/{id}", web::delete().to(bookings::cancel))
        .route(
            "/api/bookings/{id}/confirm",
            web::post().to(bookings::confirm),
        );
}

/// How long the producer tries to deliver a command; after that it has
/// failed for good and is never sent later (see `kafka::command_producer`).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_millis(4_500);
/// Longest wait for the broker to acknowledge a command: past the delivery
/// timeout (and librdkafka's once-a-second scan for timed-out messages), so
/// a 503 is only answered once the command can no longer leave.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(6_500);

/// How a deferred response ended.
pub enum Answer {
    Replied(Box<Reply>),
    /// The deadline passed; the command is still on its way.
    Pending,
}

/// Under overload new bookings are refused at once (docs/admission.md):
/// before the request costs anything else (its cache lookups included), so
/// what is shed is answered at once and what is admitted finds the cache's
/// connections free. Hold the ticket until the request is answered.
pub fn admit_booking(state: &AppState) -> Result<Ticket<'_>, ApiError> {
    state.admission.try_admit().ok_or_else(|| {
        state
            .metrics
            .commands
            .with_label_values(&["request_booking", "overloaded"])
            .inc();
        ApiError::Overloaded
    })
}

/// Who is asking, as the rate limits count clients: the address behind the
/// trusted proxies, an IPv6 client as its /64 (docs/front-door.md).
pub fn client_of(state: &AppState, req: &HttpRequest) -> String {
    let forwarded = client::forwarded_for(req.headers());
    client::key(client::address(
        req.peer_addr().map(|a| a.ip()),
        forwarded.as_deref(),
        &state.limits.trusted_proxies,
    ))
}

/// A read, counted against its client's bucket on this instance
/// (`BOXOFFICE_LIMIT_READS`, docs/front-door.md) before anything else of the
/// request is looked at: the first argument of every read handler.
pub struct Read;

impl actix_web::FromRequest for Read {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(match req.app_data::<crate::state::Data>() {
            Some(state) => state
                .limits
                .reads
                .take(&client_of(state, req))
                .map(|()| Self),
            None => Ok(Self),
        })
    }
}

/// The bucket `scope` of the client behind `req`.
fn client_check(state: &AppState, req: &HttpRequest, scope: Scope, rate: Rate) -> Check {
    Check {
        scope,
        subject: client_of(state, req),
        rate,
    }
}

/// Takes a token from the bucket `scope` of the client behind `req`.
pub async fn limit_client(
    state: &AppState,
    req: &HttpRequest,
    scope: Scope,
    rate: Rate,
    on_error: OnError,
) -> Result<(), ApiError> {
    let check = client_check(state, req, scope, rate);
    state
        .limits
        .limiter
        .take(&state.redis, &[check], on_error)
        .await
}

/// Takes a token from the buckets of a booking call: its client's, its
/// buyer's and, for a new booking, its event's.
pub async fn limit_booking_call(
    state: &AppState,
    req: &HttpRequest,
    buyer: BuyerId,
    event: Option<Uuid>,
) -> Result<(), ApiError> {
    let l = &state.limits;
    let mut checks = vec![
        client_check(state, req, Scope::Address, l.address),
        Check {
            scope: Scope::Buyer,
            subject: buyer.0.to_string(),
            rate: l.buyer,
        },
    ];
    if let Some(event) = event {
        checks.push(Check {
            scope: Scope::Event,
            subject: event.to_string(),
            rate: l.event,
        });
    }
    l.limiter.take(&state.redis, &checks, OnError::Allow).await
}

/// The partition count of `booking-commands`, read once from the broker.
pub async fn command_partitions(state: &AppState) -> Result<i32, ApiError> {
    state
        .command_partitions
        .get_or_try_init(|| {
            let producer = state.producer.get();
            let topic = state.topics.commands.clone();
            async move { kafka::partition_count(&producer, &topic).await }
        })
        .await
        .copied()
        .map_err(|e| ApiError::unavailable("the booking queue is unavailable", format!("{e:#}")))
}

/// Publishes a command for part `part` of `event` and waits up to the
/// booking deadline for its outcome about `subject`.
pub async fn command(
    state: &AppState,
    event: EventId,
    part: kafka::EventPart,
    subject: Uuid,
    kind: CommandKind,
    label: &'static str,
) -> Result<Answer, ApiError> {
    let envelope = CommandEnvelope {
        event_id: event,
        reply_to: Some(state.instance.clone()),
        command: Command {
            at_ms: now_ms(),
            kind,
        },
    };
    // A new booking was admitted by its handler before any other work
    // ([`admit_booking`]); a buyer's confirmation or cancellation, and the
    // organizer's commands, are never refused for load, but count.
    let ticket = (!matches!(envelope.command.kind, CommandKind::RequestBooking { .. }))
        .then(|| state.admission.always());
    let payload = encode_command(&envelope);
    let key = event.to_string();
    let partition = part.partition(event, command_partitions(state).await?);
    let waiter = state.waiters.register(subject);
    let started = Instant::now();
    // Bounded: with the broker down, answer 503 rather than hang. By then the
    // producer has given the command up; only one the broker received without
    // acknowledging can still be applied, so a retry with the same
    // Idempotency-Key (never a new one) is what keeps it to one booking.
    let span = tracing::info_span!(
        "publish command",
        otel.kind = "producer",
        messaging.destination.name = %state.topics.commands,
        command = label,
        event.id = %event,
        subject = %subject,
    );
    let headers = trace::with_headers(OwnedHeaders::new(), &trace::carrier_of(&span));
    let producer = state.producer.get();
    let publish = producer.send(
        FutureRecord::to(&state.topics.commands)
            .partition(partition)
            .key(&key)
            .payload(&payload)
            .headers(headers),
        // A full queue is overload: refuse at once rather than queue longer.
        Duration::ZERO,
    );
    let published = match tokio::time::timeout(PUBLISH_TIMEOUT, publish)
        .instrument(span)
        .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no broker acknowledgement within {PUBLISH_TIMEOUT:?}"
        )),
    };
    if let Err(e) = published {
        state.producer.renew_if_fatal();
        state
            .metrics
            .commands
            .with_label_values(&[label, "unavailable"])
            .inc();
        return Err(ApiError::unavailable(
            "the booking queue did not acknowledge this request in time. It may still be \
             applied: retry with the same Idempotency-Key (a new key could book twice)",
            e,
        ));
    }
    state.metrics.deferred_in_flight.inc();
    let reply = waiter.wait(state.booking_deadline).await;
    state.metrics.deferred_in_flight.dec();
    drop(ticket);
    let result = match &reply {
        Some(r) => r.rejection.as_ref().map_or("ok", |_| "rejected"),
        None => "deferred",
    };
    state
        .metrics
        .deferred_seconds
        .with_label_values(&[result])
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .commands
        .with_label_values(&[label, result])
        .inc();
    Ok(reply.map_or(Answer::Pending, |r| Answer::Replied(Box::new(r))))
}

async fn redis_get(state: &AppState, key: &str) -> Result<Option<String>, ApiError> {
    state
        .redis
        .conn()
        .get(key)
        .await
        .map_err(|e| ApiError::unavailable("the cache is unavailable", e))
}

/// Asks the reservation-processor; `Ok(None)` when it says 404.
async fn interactive_query<T: serde::de::DeserializeOwned>(
    state: &AppState,
    method: reqwest::Method,
    path: &str,
) -> Result<Option<T>, ApiError> {
    let url = format!("{}{path}", state.reservation_url);
    let res = state
        .http
        .request(method, &url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| ApiError::unavailable("the reservation service is unavailable", e))?;
    match res.status() {
        s if s.is_success() => Ok(Some(res.json().await.map_err(|e| {
            ApiError::unavailable("the reservation service answered oddly", e)
        })?)),
        reqwest::StatusCode::NOT_FOUND => Ok(None),
        s => Err(ApiError::unavailable(
            "the reservation service is unavailable",
            s,
        )),
    }
}

/// An event from Redis, rebuilt from PostgreSQL through the
/// reservation-processor when the cache lacks it.
pub async fn event(state: &AppState, id: Uuid) -> Result<EventView, ApiError> {
    if let Some(json) = redis_get(state, &state.keys.event(id)).await? {
        let view: EventView = serde_json::from_str(&json)
            .map_err(|e| ApiError::unavailable("cached event unreadable", e))?;
        return Ok(view.refreshed(now_ms()));
    }
    interactive_query::<EventView>(
        state,
        reqwest::Method::POST,
        &format!("/internal/cache/events/{id}"),
    )
    .await?
    .map(|v| v.refreshed(now_ms()))
    .ok_or_else(|| ApiError::not_found("unknown_event", "This event does not exist."))
}

/// An event as a new booking reads it: kept parsed in this instance for a
/// moment while its sale is open, else read as [`event`] does (what that
/// may and may not get wrong: crate::event_cache).
pub async fn event_for_booking(
    state: &AppState,
    id: Uuid,
) -> Result<std::sync::Arc<EventView>, ApiError> {
    if let Some(view) = state.events.get(id, Instant::now(), now_ms()) {
        return Ok(view);
    }
    let read_at = Instant::now();
    let view = std::sync::Arc::new(event(state, id).await?);
    state.events.put(view.clone(), read_at);
    Ok(view)
}

/// A booking from Redis only: the hot path of a new booking request.
pub async fn cached_booking(state: &AppState, id: Uuid) -> Result<Option<BookingView>, ApiError> {
    match redis_get(state, &state.keys.booking(id)).await? {
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| ApiError::unavailable("cached booking unreadable", e)),
        None => Ok(None),
    }
}

/// A booking from Redis, else from PostgreSQL through the
/// reservation-processor.
pub async fn booking(state: &AppState, id: Uuid) -> Result<Option<BookingView>, ApiError> {
    if let Some(view) = cached_booking(state, id).await? {
        return Ok(Some(view));
    }
    interactive_query(
        state,
        reqwest::Method::GET,
        &format!("/internal/bookings/{id}"),
    )
    .await
}

/// A booking as its buyer may see it (no internal fields).
pub fn public(mut view: BookingView) -> BookingView {
    view.fingerprint.clear();
    view
}

/// The largest JSON body any call takes (an event with hundreds of
/// sections is a few tens of kilobytes); larger ones are answered 413
/// without being read further.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// JSON bodies, paths and queries that do not parse get a 400 with a
/// reason; bodies over [`MAX_BODY_BYTES`] a 413.
pub fn extractor_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(|e, _| match e {
                actix_web::error::JsonPayloadError::Overflow { limit }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    ApiError::new(
                        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("the request body is larger than {limit} bytes"),
                    )
                    .into()
                }
                e => ApiError::bad_request(
                    "malformed_json",
                    format!("the request body is not valid JSON for this call: {e}"),
                )
                .into(),
            }),
    )
    .app_data(web::PathConfig::default().error_handler(|e, _| {
        ApiError::not_found("not_found", format!("no such resource: {e}")).into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|e, _| {
        ApiError::bad_request("invalid_query", format!("invalid query string: {e}")).into()
    }));
}
