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
    /// The account, guest buyer or house organizer.
    pub id: Uuid,
    /// Whether the token comes from an account's sign-in (and so can be
    /// signed out), not a guest's or the house organizer's.
    pub signed_in: bool,
    /// When the token stops counting.
    pub expires_at: DateTime<Utc>,
}

/// A signed-in account and its session's token.
#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub account_id: Uuid,
    pub email: String,
    /// `buyer` or `organizer`.
    pub role: String,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends; sign in again after.
    pub expires_at: DateTime<Utc>,
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
    /// The waiting room, when the sale has one.
    pub waiting_room: Option<WaitingRoomFigures>,
    /// When these figures were read, milliseconds since the epoch.
    pub at_ms: i64,
}

/// An event's waiting room as its organizer watches it.
#[derive(Serialize, ToSchema)]
pub struct WaitingRoomFigures {
    pub admissions_per_minute: u32,
    pub opens_minutes_before: u32,
    pub shopping_minutes: u32,
    /// Buyers in the waiting room whose turn has not come.
    pub waiting: u64,
    /// Buyers whose turn has come (shopping now, or done).
    pub admitted: u64,
    /// Buyers who joined before the sale opened, drawn in a random order.
    pub drawn: u64,
}

/// A buyer's place in an event's waiting room (docs/waiting-room.md).
#[derive(Serialize, ToSchema)]
pub struct WaitingRoomPlace {
    pub event_id: Uuid,
    /// `waiting`: the turn has not come; `admitted`: seats may be
    /// requested until `window_ends_at`; `expired`: the shopping window
    /// has ended (join again to queue at the back).
    #[schema(example = "waiting")]
    pub state: String,
    /// Send as `Waiting-Room-Token` with every booking request, and to
    /// ask for this place again. It names this buyer, this sign-in and this
    /// event, and changes when the turn becomes known: keep the newest.
    pub token: String,
    /// Buyers ahead whose turn has not come; none until the sale opens
    /// for those who joined before (their order is drawn then).
    pub ahead: Option<u64>,
    /// Everyone whose turn has not come.
    pub waiting: u64,
    /// When the turn comes (or came); none until the draw.
    pub turn_at: Option<DateTime<Utc>>,
    /// Seconds until the turn, when it is known and not yet reached.
    pub estimated_wait_seconds: Option<u64>,
    /// Until when seats may be requested, once the turn is known.
    pub window_ends_at: Option<DateTime<Utc>>,
    /// When the sale opens and the order of early arrivals is drawn.
    pub sale_opens_at: DateTime<Utc>,
    pub admissions_per_minute: u32,
}

/// A new guest buyer identity.
#[derive(Serialize, ToSchema)]
pub struct BuyerToken {
    pub buyer_id: Uuid,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token stops counting.
    pub expires_at: DateTime<Utc>,
}

/// The house organizer's token.
#[derive(Serialize, ToSchema)]
pub struct OrganizerToken {
    pub organizer_id: Uuid,
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token stops counting.
    pub expires_at: DateTime<Utc>,
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
    /// Seats neither held nor sold now, from the cache (the seat map's
    /// `free`, summed over the sections).
    pub seats_left: usize,
    pub sale_opens_at: DateTime<Utc>,
    pub sale_closes_at: DateTime<Utc>,
    /// The organizer who runs the sale (the house organizer's id for events
    /// from before accounts).
    pub organizer_id: Uuid,
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
    /// With `encoding=compact`: one character per seat in layout order (its
    /// rows as listed, seats 1..n in each): `.` free, `h` held, `s` sold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub states: Option<String>,
}

/// The seat map of an event, from the cache.
#[derive(Serialize, ToSchema)]
pub struct SeatMapView {
    pub event_id: Uuid,
    pub on_sale: bool,
    pub sections: Vec<SectionAvailability>,
    /// Status (`held` or `sold`) of every taken seat by seat id (`A-1-5`);
    /// seats not listed are free. Empty with `encoding=compact`.
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
        routes::accounts::sign_up,
        routes::accounts::sign_in,
        routes::accounts::sign_out,
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
        routes::waiting_room::join,
        routes::waiting_room::status,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts, sessions and tokens for buyers and organizers"),
        (name = "events", description = "Events, seat maps and the sale switch"),
        (name = "bookings", description = "Holding, confirming and cancelling seats"),
        (name = "waiting room", description = "Places in an on-sale's virtual waiting room"),
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
    actix_web::HttpResponse::Ok().json(document_json())
}

/// The document as served: every error response's schema admits exactly
/// the codes its description lists.
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    with_error_codes(&mut doc);
    doc
}

/// The stable codes a response description names: the `snake_case` words
/// in backquotes.
fn listed_codes(description: &str) -> Vec<String> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// Narrows each error response's `ErrorBody` to the codes its description
/// lists, so that a contract test (schemathesis, in the test command)
/// fails on any code the API sends without documenting it.
fn with_error_codes(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|p| p.as_object_mut())
        .flat_map(|p| p.values_mut());
    for operation in operations {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(|r| r.as_object_mut())
        else {
            continue;
        };
        for (status, response) in responses {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let codes = listed_codes(
                response
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default(),
            );
            let Some(schema) = response
                .pointer_mut("/content/application~1json/schema")
                .filter(|_| !codes.is_empty())
            else {
                continue;
            };
            *schema = serde_json::json!({
                "allOf": [
                    { "$ref": "#/components/schemas/ErrorBody" },
                    { "type": "object", "properties": { "code": { "type": "string", "enum": codes } } },
                ]
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_route_with_its_errors() {
        let doc = document_json();
        let expected = [
            ("post", "/api/auth/buyer"),
            ("post", "/api/auth/organizer"),
            ("get", "/api/auth/session"),
            ("post", "/api/accounts"),
            ("post", "/api/sessions"),
            ("delete", "/api/sessions/current"),
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
            ("post", "/api/events/{id}/waiting-room"),
            ("get", "/api/events/{id}/waiting-room"),
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

    /// Every error response names its codes, and its schema admits those
    /// and no other.
    #[test]
    fn every_error_response_admits_exactly_the_codes_it_lists() {
        let doc = document_json();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let description = response["description"].as_str().unwrap();
                    let codes = listed_codes(description);
                    assert!(
                        !codes.is_empty(),
                        "{method} {path} {status} lists no code: {description:?}"
                    );
                    let schema = &response["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["allOf"][1]["properties"]["code"]["enum"],
                        serde_json::json!(codes),
                        "{method} {path} {status}"
                    );
                }
            }
        }
        let create = &doc["paths"]["/api/events/{id}/bookings"]["post"]["responses"];
        let enum_of = |status: &str| {
            create[status]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"].clone()
        };
        assert!(
            enum_of("422")
                .as_array()
                .unwrap()
                .contains(&"invalid_seat".into())
        );
        assert!(
            enum_of("400")
                .as_array()
                .unwrap()
                .contains(&"invalid_idempotency_key".into())
        );
        assert!(
            !enum_of("409")
                .as_array()
                .unwrap()
                .contains(&"Retry-After".into())
        );
    }

    #[test]
    fn codes_are_the_snake_case_words_in_backquotes() {
        assert_eq!(
            listed_codes(
                "`unavailable`: the queue is down; `overloaded`: at once with `Retry-After`"
            ),
            vec!["unavailable", "overloaded"]
        );
        assert_eq!(
            listed_codes("cache and storage unreachable"),
            Vec::<String>::new()
        );
    }
}
