//! `GET /api/events/{id}/seats/stream`: server-sent events with every seat
//! change of an event, so open seat maps stay live.

use std::time::Duration;

use actix_web::web::Path;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{Read, client_of, event};
use crate::error::ApiError;
use crate::openapi::ErrorBody;
use crate::state::Data;
use boxoffice_platform::views::SeatFeedMessage;

/// Server-sent events: `hello` first, then one `seats` event per batch of
/// seat changes (a `SeatFeedMessage` as JSON); `reload` when this client fell
/// behind (fetch the seat map again); a comment every 15 s keeps it open.
#[utoipa::path(get, path = "/api/events/{id}/seats/stream", tag = "events",
    params(("id" = Uuid, Path, description = "event id")),
    responses((status = 200, content_type = "text/event-stream", body = SeatFeedMessage),
        (status = 404, description = "`unknown_event`; `not_found`: the id is not a UUID", body = ErrorBody),
        (status = 429, description = "`too_many_streams`: this network has as many open here as it may; `rate_limited`: too many reads from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the cache is unreachable, or this instance has as many streams open as it keeps", body = ErrorBody)))]
pub async fn seats(
    _: Read,
    state: Data,
    req: HttpRequest,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // Held for as long as the stream is open (dropped with it when the
    // client goes away).
    let place = state.limits.streams.open(&client_of(&state, &req))?;
    let view = event(&state, *id).await?;
    let rx = state.feeds.subscribe(view.id.0);
    let heartbeat = tokio::time::interval(Duration::from_secs(15));
    let hello = Bytes::from(format!(
        "event: hello\ndata: {{\"event_id\":\"{}\"}}\n\n",
        view.id
    ));
    let stream = futures::stream::once(async move { Ok::<_, actix_web::Error>(hello) }).chain(
        futures::stream::unfold((rx, heartbeat, place), |(mut rx, mut heartbeat, place)| async move {
            let chunk = tokio::select! {
                _ = heartbeat.tick() => Bytes::from_static(b": keep-alive\n\n"),
                msg = rx.recv() => match msg {
                    Ok(json) => Bytes::from(format!("event: seats\ndata: {json}\n\n")),
                    // Too slow a reader missed changes: tell it to reload the seat map.
                    Err(RecvError::Lagged(_)) => Bytes::from_static(b"event: reload\ndata: {}\n\n"),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(chunk), (rx, heartbeat, place)))
        }),
    );
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", "text/event-stream"))
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}
