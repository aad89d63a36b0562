//! Accounts: sign up, sign in, sign out (docs/accounts.md).

use actix_web::http::StatusCode;
use actix_web::web::Json;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use sha2::Digest;
use utoipa::ToSchema;

use super::client_of;
use crate::accounts::{Account, MAX_PASSWORD, check_password, normalize_email, wrong_credentials};
use crate::auth::{Bearer, Claims, Role};
use crate::error::ApiError;
use crate::limits::{Check, OnError, Scope};
use crate::openapi::{ErrorBody, SignedIn};
use crate::state::Data;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    #[schema(example = "ana@example.com")]
    email: String,
    /// 10 to 128 characters, not the email address.
    #[schema(example = "correct horse battery")]
    password: String,
    #[serde(default)]
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    #[schema(example = "ana@example.com")]
    email: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

/// Opens an account and signs it in.
#[utoipa::path(post, path = "/api/accounts", tag = "auth", request_body = SignUp,
    responses((status = 201, body = SignedIn),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `weak_password`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many new accounts from this network; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn sign_up(
    state: Data,
    req: HttpRequest,
    body: Json<SignUp>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = normalize_email(&body.email)
        .map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?;
    check_password(&body.password, &email)
        .map_err(|e| ApiError::unprocessable("weak_password", e.to_string()))?;
    // An account is a new buyer identity: the same bucket as guests'.
    let rate = state.limits.new_buyers;
    super::limit_client(&state, &req, Scope::NewBuyer, rate, OnError::Allow).await?;
    let account = state
        .accounts
        .sign_up(email, body.password, body.role)
        .await?;
    signed_in(&state, &account, StatusCode::CREATED).await
}

/// Signs in: a token for this session.
#[utoipa::path(post, path = "/api/sessions", tag = "auth", request_body = SignIn,
    responses((status = 200, body = SignedIn),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, description = "`wrong_credentials`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this network or for this account; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`unavailable`: attempts cannot be counted now", body = ErrorBody)))]
pub async fn sign_in(
    state: Data,
    req: HttpRequest,
    body: Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // Whatever was typed, count it: a malformed address costs an attempt
    // like a wrong password, and says nothing more.
    let email = normalize_email(&body.email).unwrap_or_else(|_| body.email.trim().to_lowercase());
    // Every attempt costs a token from the client's bucket and from the
    // account's, before the password is looked at: guessing one account
    // from many addresses is slowed as much as guessing from one.
    let l = &state.limits;
    let checks = [
        Check {
            scope: Scope::SignIn,
            subject: client_of(&state, &req),
            rate: l.sign_in,
        },
        Check {
            scope: Scope::AccountSignIn,
            subject: hex::encode(&sha2::Sha256::digest(email.as_bytes())[..16]),
            rate: l.account_sign_in,
        },
    ];
    l.limiter
        .take(&state.redis, &checks, OnError::Refuse)
        .await?;
    if body.password.chars().count() > MAX_PASSWORD {
        return Err(wrong_credentials());
    }
    let account = state.accounts.sign_in(&email, body.password).await?;
    signed_in(&state, &account, StatusCode::OK).await
}

async fn signed_in(
    state: &Data,
    account: &Account,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let session = state.accounts.open_session(account).await?;
    let token = state.signer.issue(&Claims {
        role: account.role,
        id: account.id,
        session: Some(session.id),
        expires_at_s: session.expires_at.timestamp(),
    });
    Ok(HttpResponse::build(status).json(SignedIn {
        account_id: account.id,
        email: account.email.clone(),
        role: account.role.name().to_owned(),
        token,
        expires_at: session.expires_at,
    }))
}

/// Signs out: this session's tokens are refused from now on, by every
/// API instance.
#[utoipa::path(delete, path = "/api/sessions/current", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "signed out"),
        (status = 400, description = "`not_a_session`: a guest or house-organizer token, which only expires", body = ErrorBody),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired`, `signed_out`, `guests_disabled`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody)))]
pub async fn sign_out(state: Data, bearer: Bearer) -> Result<HttpResponse, ApiError> {
    let claims = bearer.0;
    let Some(session) = claims.session else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "this token has no session to sign out of: it stops counting when it expires",
        ));
    };
    state
        .accounts
        .revoke(&state.redis, session, claims.expires_at_s)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
