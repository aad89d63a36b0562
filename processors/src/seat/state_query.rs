//! The seat-processor's state as it stands in its local copy, for operators
//! and for the tests that compare it seat by seat with PostgreSQL and Redis:
//! `GET /internal/state/events/{id}` on the health port.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use boxoffice_domain::{BookingStatus, EventId, SeatStatus};
use serde_json::json;
use uuid::Uuid;

use super::store::Store;

pub(super) fn routes(cfg: &mut web::ServiceConfig, store: Arc<Store>) {
    cfg.app_data(web::Data::from(store))
        .route("/internal/state/events/{id}", web::get().to(event_state));
}

/// Every partition of the local copy that holds the event: its positions
/// and the seats taken (seat id -> {status, booking}). A partition this
/// instance no longer owns may linger here; its positions tell.
async fn event_state(store: web::Data<Store>, id: web::Path<Uuid>) -> HttpResponse {
    let event = EventId(*id);
    let found = web::block(move || -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for partition in store.partitions()? {
            let events = store.load(partition)?;
            let Some(map) = events.get(&event) else {
                continue;
            };
            let positions = store.positions(partition)?;
            let seats: serde_json::Map<String, serde_json::Value> = map
                .seats()
                .filter_map(|(seat, status)| match status {
                    SeatStatus::Free => None,
                    SeatStatus::Held(b) => {
                        Some((seat.to_string(), json!({"status": "held", "booking": b.0})))
                    }
                    SeatStatus::Sold(b) => {
                        Some((seat.to_string(), json!({"status": "sold", "booking": b.0})))
                    }
                })
                .collect();
            let refusals = map
                .bookings()
                .filter(|b| matches!(b.status, BookingStatus::Rejected(_)))
                .count();
            out.push(json!({
                "partition": partition,
                "applied": positions.applied,
                "epoch": positions.epoch,
                "seats": seats,
                "bookings": map.bookings().count(),
                "refusals": refusals,
                "retired": map.is_retired(),
            }));
        }
        Ok(out)
    })
    .await;
    match found {
        Ok(Ok(list)) if list.is_empty() => HttpResponse::NotFound()
            .json(json!({"code": "not_found", "message": "no partition here holds that event"})),
        Ok(Ok(list)) => HttpResponse::Ok().json(json!({ "partitions": list })),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading the local state failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"code": "unavailable", "message": "the local state is unreadable"}))
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({"code": "unavailable", "message": e.to_string()})),
    }
}
