//! Interactive queries: the API asks here (never PostgreSQL directly) when
//! Redis lacks something, and this instance answers from PostgreSQL and
//! refills the cache.

use actix_web::{HttpResponse, web};
use boxoffice_platform::now_ms;
use serde_json::json;
use uuid::Uuid;

use super::{Shared, cache, store};

pub(super) fn routes(cfg: &mut web::ServiceConfig, shared: Shared) {
    cfg.app_data(web::Data::new(shared))
        .route("/internal/bookings/{id}", web::get().to(booking))
        .route("/internal/events/{id}/tally", web::get().to(tally))
        .route("/internal/cache/events/{id}", web::post().to(rebuild_event))
        .route("/internal/cache/events", web::post().to(rebuild_events));
}

fn failed(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "interactive query failed");
    HttpResponse::ServiceUnavailable()
        .json(json!({ "code": "unavailable", "message": "storage is unavailable" }))
}

fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({ "code": "not_found", "message": format!("no such {what}") }))
}

/// A booking from PostgreSQL; also refills its cache entry.
async fn booking(shared: web::Data<Shared>, id: web::Path<Uuid>) -> HttpResponse {
    let mut conn = match shared.pool.get().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match store::load_booking(&mut conn, *id).await {
        Ok(Some(view)) => {
            if let Err(e) = cache::put_booking_only(&shared.redis, &shared.keys, &view).await {
                tracing::warn!(error = %e, "could not refill booking cache");
            }
            HttpResponse::Ok().json(view)
        }
        Ok(None) => not_found("booking"),
        Err(e) => failed(e),
    }
}

/// An event's bookings counted from PostgreSQL (the organizers' live view).
async fn tally(shared: web::Data<Shared>, id: web::Path<Uuid>) -> HttpResponse {
    let mut conn = match shared.pool.get().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match store::booking_tally(&mut conn, *id).await {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(e) => failed(e),
    }
}

/// Rebuilds one event's cache (event and seats) from PostgreSQL.
async fn rebuild_event(shared: web::Data<Shared>, id: web::Path<Uuid>) -> HttpResponse {
    let mut conn = match shared.pool.get().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let (view, created) = match store::load_event(&mut conn, *id, now_ms()).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found("event"),
        Err(e) => return failed(e),
    };
    let seats = match store::active_seats(&mut conn, *id).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    match cache::rebuild_event(&shared.redis, &shared.keys, &view, created, &seats).await {
        Ok(()) => {
            tracing::info!(event = %view.id, taken = seats.len(), "rebuilt event cache from PostgreSQL");
            HttpResponse::Ok().json(view)
        }
        Err(e) => failed(e),
    }
}

/// Rebuilds the cache of every event.
async fn rebuild_events(shared: web::Data<Shared>) -> HttpResponse {
    let mut conn = match shared.pool.get().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let events = match store::load_events(&mut conn, now_ms()).await {
        Ok(e) => e,
        Err(e) => return failed(e),
    };
    for (view, created) in &events {
        let seats = match store::active_seats(&mut conn, view.id.0).await {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        if let Err(e) =
            cache::rebuild_event(&shared.redis, &shared.keys, view, *created, &seats).await
        {
            return failed(e);
        }
    }
    tracing::info!(events = events.len(), "rebuilt cache of every event");
    HttpResponse::Ok().json(json!({ "events": events.len() }))
}
