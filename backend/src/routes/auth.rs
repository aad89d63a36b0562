//! Signing in: buyers get an anonymous identity; organizers need the password.

use actix_web::http::StatusCode;
use actix_web::web::Json;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::limit_client;
use crate::auth::Role;
use crate::error::ApiError;
use crate::limits::{OnError, Scope};
use crate::openapi::{BuyerToken, ErrorBody, OrganizerToken, Session};
use crate::state::Data;

/// A new buyer identity and its token.
#[utoipa::path(post, path = "/api/auth/buyer", tag = "auth",
    responses((status = 201, body = BuyerToken),
        (status = 429, description = "`rate_limited`: too many new buyers from this network; see `Retry-After`", body = ErrorBody)))]
pub async fn buyer(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let rate = state.limits.new_buyers;
    limit_client(&state, &req, Scope::NewBuyer, rate, OnError::Allow).await?;
    let id = Uuid::new_v4();
    Ok(HttpResponse::Created().json(BuyerToken {
        buyer_id: id,
        token: state.signer.issue(Role::Buyer, id),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct OrganizerSignIn {
    password: String,
}

/// An organizer token for the right password.
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
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"boxoffice-organizer");
    Ok(HttpResponse::Ok().json(OrganizerToken {
        organizer_id: id,
        token: state.signer.issue(Role::Organizer, id),
    }))
}

/// Who the bearer token belongs to; web apps use it to decide which pages
/// a visitor may open.
#[utoipa::path(get, path = "/api/auth/session", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Session),
        (status = 401, description = "`unauthenticated`, `invalid_token`", body = ErrorBody)))]
pub async fn session(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (role, id) = crate::auth::bearer(&req)?;
    Ok(HttpResponse::Ok().json(Session {
        role: role.name().to_owned(),
        id,
    }))
}
