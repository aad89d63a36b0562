//! The API's OpenAPI document, served at `/api/openapi.json`, and the
//! response bodies that handlers would otherwise build ad hoc: handlers
//! return these types, so the document cannot drift from what is sent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::routes;

/// Every error: a stable machine-readable `code` and a sentence for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "seats_taken")]
    pub code: String,
    #[schema(example = "Some of these seats were taken meanwhile.")]
    pub message: String,
}

/// Who a token belongs to.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// `buyer` or `organizer`.
    pub role: String,
    pub id: Uuid,
}

/// An event's sale as organizers watch it: seats by state from the cache,
/// bookings by status and rejection reason from PostgreSQL.
#[derive(Serialize, ToSchema)]
pub struct EventStats {
    pub event_id: Uuid,
    pub name: String,
    pub on_sale: bool,
    pub capacity: usize,
    pub free: usize,
    pub held: usize,
    pub sold: usize,
    /// Currency of the event's prices (ISO 4217).
    pub currency: String,
    pub bookings: boxoffice_platform::views::BookingTally,
    /// When these figures were read, milliseconds since the epoch.
    pub at_ms: i64,
}

/// A new buyer identity.
#[derive(Serialize, ToSchema)]
pub struct BuyerToken {
    pub buyer_id: Uuid,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
}

/// An organizer's token.
#[derive(Serialize, ToSchema)]
pub struct OrganizerToken {
    pub organizer_id: Uuid,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
}

/// An event in the list.
#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    pub id: Uuid,
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub venue: String,
    /// `scheduled`, `open` or `closed`.
    pub sale_state: String,
    pub on_sale: bool,
    pub capacity: usize,
    pub sale_opens_at: DateTime<Utc>,
    pub sale_closes_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventSummary>,
}

/// Availability of one section.
#[derive(Serialize, ToSchema)]
pub struct SectionAvailability {
    pub code: String,
    pub name: String,
    pub price_category: String,
    pub price_cents: i64,
    pub capacity: usize,
    pub free: usize,
    pub held: usize,
    pub sold: usize,
}

/// The seat map of an event, from the cache.
#[derive(Serialize, ToSchema)]
pub struct SeatMapView {
    pub event_id: Uuid,
    pub on_sale: bool,
    pub sections: Vec<SectionAvailability>,
    /// Status (`held` or `sold`) of every taken seat by seat id (`A-1-5`);
    /// seats not listed are free.
    pub seats: BTreeMap<String, String>,
}

/// A command accepted whose outcome is not known yet: poll `poll`.
#[derive(Serialize, ToSchema)]
pub struct Pending {
    pub id: Uuid,
    #[schema(example = "pending")]
    pub status: String,
    #[schema(example = "/api/bookings/6f1c.../?wait_ms=10000")]
    pub poll: String,
}

impl Pending {
    pub fn new(id: Uuid, poll: String) -> Self {
        Self {
            id,
            status: "pending".to_owned(),
            poll,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "boxoffice API",
        description = "Seat booking for on-sales. Bookings are deferred responses: \
            the answer comes when the seat-processor has decided (201/409/422) or, \
            past the deadline, as 202 with a URL to long-poll. Every error is JSON \
            `{code, message}` with a stable code."
    ),
    paths(
        routes::auth::buyer,
        routes::auth::organizer,
        routes::auth::session,
        routes::events::list,
        routes::events::create,
        routes::events::get,
        routes::events::set_sale,
        routes::events::seats,
        routes::events::stats,
        routes::stream::seats,
        routes::bookings::create,
        routes::bookings::get,
        routes::bookings::confirm,
        routes::bookings::cancel,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Tokens for buyers and organizers"),
        (name = "events", description = "Events, seat maps and the sale switch"),
        (name = "bookings", description = "Holding, confirming and cancelling seats"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_route_with_its_errors() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let expected = [
            ("post", "/api/auth/buyer"),
            ("post", "/api/auth/organizer"),
            ("get", "/api/auth/session"),
            ("get", "/api/events"),
            ("post", "/api/events"),
            ("get", "/api/events/{id}"),
            ("post", "/api/events/{id}/sale"),
            ("get", "/api/events/{id}/seats"),
            ("get", "/api/events/{id}/stats"),
            ("get", "/api/events/{id}/seats/stream"),
            ("post", "/api/events/{id}/bookings"),
            ("get", "/api/bookings/{id}"),
            ("post", "/api/bookings/{id}/confirm"),
            ("delete", "/api/bookings/{id}"),
        ];
        let paths = doc["paths"].as_object().unwrap();
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            expected.len(),
            "undocumented or extra operations"
        );
        for (method, path) in expected {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success response"
            );
            if path != "/api/auth/buyer" {
                assert!(
                    responses
                        .keys()
                        .any(|s| s.starts_with('4') || s.starts_with('5')),
                    "{method} {path} documents no error"
                );
            }
        }
        let booking = &doc["paths"]["/api/events/{id}/bookings"]["post"];
        assert!(
            booking["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        );
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "BookingView",
            "EventView",
            "EventSpec",
            "VenueLayout",
            "ErrorBody",
            "Pending",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
        assert!(
            doc["components"]["schemas"]["BookingView"]["properties"]
                .get("fingerprint")
                .is_none(),
            "internal fields stay out of the public schema"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
