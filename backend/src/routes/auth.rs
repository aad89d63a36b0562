//! Tokens without accounts: guest buyers (where guests may book) and the
//! house organizer's shared password. Accounts are in `accounts.rs`.

use actix_web::http::StatusCode;
use actix_web::web::Json;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::limit_client;
use crate::auth::{Bearer, Claims, Role, house_organizer};
use crate::error::ApiError;
use crate::limits::{OnError, Scope};
use crate::openapi::{BuyerToken, ErrorBody, OrganizerToken, Session};
use crate::state::Data;

/// A new guest buyer identity and its token, where guests may book
/// (`BOXOFFICE_GUEST_BUYERS`); it expires like a session.
#[utoipa::path(post, path = "/api/auth/buyer", tag = "auth",
    responses((status = 201, body = BuyerToken),
        (status = 403, description = "`guests_disabled`: sign up instead (`POST /api/accounts`)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many new buyers from this network; see `Retry-After`", body = ErrorBody)))]
pub async fn buyer(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !state.guests {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "guests_disabled",
            "guest buyers are turned off here: sign up (POST /api/accounts) or sign in",
        ));
    }
    let rate = state.limits.new_buyers;
    limit_client(&state, &req, Scope::NewBuyer, rate, OnError::Allow).await?;
    let id = Uuid::new_v4();
    let expires_at = state.accounts.expires_at();
    Ok(HttpResponse::Created().json(BuyerToken {
        buyer_id: id,
        token: state.signer.issue(&Claims {
            role: Role::Buyer,
            id,
            session: None,
            expires_at_s: expires_at.timestamp(),
        }),
        expires_at,
    }))
}

fn instant(unix_s: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(unix_s, 0).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

#[derive(Deserialize, ToSchema)]
pub struct OrganizerSignIn {
    password: String,
}

/// The house organizer's token, for the shared password
/// (`BOXOFFICE_ORGANIZER_PASSWORD`). Organizer accounts sign in at
/// `POST /api/sessions` instead and own only their own events.
#[utoipa::path(post, path = "/api/auth/organizer", tag = "auth", request_body = OrganizerSignIn,
    responses((status = 200, body = OrganizerToken),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, description = "`wrong_password`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: attempts cannot be counted now", body = ErrorBody)))]
pub async fn organizer(
    state: Data,
    req: HttpRequest,
    body: Json<OrganizerSignIn>,
) -> Result<HttpResponse, ApiError> {
    use hmac::Mac;
    // Every attempt costs a token, counted before the password is looked
    // at; guessing must not go on while Redis cannot count.
    let rate = state.limits.sign_in;
    limit_client(&state, &req, Scope::SignIn, rate, OnError::Refuse).await?;
    // Compare in constant time, through an HMAC of both sides.
    let mac = |s: &str| {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"password-compare")
            .expect("any key length");
        m.update(s.as_bytes());
        m.finalize().into_bytes()
    };
    if mac(&body.password) != mac(&state.organizer_password) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_password",
            "wrong organizer password",
        ));
    }
    let id = house_organizer();
    let expires_at = state.accounts.expires_at();
    Ok(HttpResponse::Ok().json(OrganizerToken {
        organizer_id: id,
        token: state.signer.issue(&Claims {
            role: Role::Organizer,
            id,
            session: None,
            expires_at_s: expires_at.timestamp(),
        }),
        expires_at,
    }))
}

/// Who the bearer token belongs to; web apps use it to decide which pages
/// a visitor may open.
#[utoipa::path(get, path = "/api/auth/session", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Session),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many reads from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the session cannot be checked now", body = ErrorBody)))]
pub async fn session(_: super::Read, bearer: Bearer) -> Result<HttpResponse, ApiError> {
    let c = bearer.0;
    Ok(HttpResponse::Ok().json(Session {
        role: c.role.name().to_owned(),
        id: c.id,
        signed_in: c.session.is_some(),
        expires_at: instant(c.expires_at_s),
    }))
}
