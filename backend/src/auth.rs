//! Tokens: `v2.<role>.<id>.<session>.<expires>.<signature>`, signed with
//! HMAC-SHA256 (docs/accounts.md). Any API instance verifies any token. A
//! token says who holds it (role and account or guest id) and until when
//! (Unix seconds); a token from a sign-in also names its session, which
//! sign-out revokes. Guest buyers and the house organizer have no session
//! (`-`): their tokens only expire.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use boxoffice_domain::BuyerId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::accounts::SessionState;
use crate::error::ApiError;
use crate::state::AppState;

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

/// Who a token or an account is; a new account is a buyer's unless it
/// asks otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Books seats.
    #[default]
    Buyer,
    /// Creates events and runs their sales.
    Organizer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Organizer => "organizer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "buyer" => Some(Self::Buyer),
            "organizer" => Some(Self::Organizer),
            _ => None,
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub role: Role,
    /// The account (or the guest buyer, or the house organizer).
    pub id: Uuid,
    /// The sign-in session, for accounts.
    pub session: Option<Uuid>,
    /// Unix seconds after which the token no longer counts.
    pub expires_at_s: i64,
}

/// The id of the organizer that signs in with the shared password
/// (`BOXOFFICE_ORGANIZER_PASSWORD`). It owns the events it creates and
/// those from before accounts, which name no organizer.
pub fn house_organizer() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, b"boxoffice-organizer")
}

const VERSION: &str = "v2";

impl Signer {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    /// `payload` and its signature, as one token.
    pub fn sign(&self, payload: &str) -> String {
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The payload of a token this secret signed.
    pub fn open<'t>(&self, token: &'t str) -> Option<&'t str> {
        let (payload, signature) = token.rsplit_once('.')?;
        let sig = hex::decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).ok()?;
        Some(payload)
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let session = session_field(claims.session);
        self.sign(&format!(
            "{VERSION}.{}.{}.{session}.{}",
            claims.role.name(),
            claims.id,
            claims.expires_at_s
        ))
    }

    /// What a token says, if this secret signed it. Expiry is not checked
    /// here: see [`authenticate`].
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let payload = self.open(token)?;
        let mut parts = payload.split('.');
        let (Some(VERSION), Some(role), Some(id), Some(session), Some(exp), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Claims {
            role: Role::parse(role)?,
            id: id.parse().ok()?,
            session: parse_session_field(session)?,
            expires_at_s: exp.parse().ok()?,
        })
    }
}

/// A sign-in session as a token field: its id, or `-` for none (guests,
/// the house organizer).
pub fn session_field(session: Option<Uuid>) -> String {
    session.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// The session a token field names; `None` when the field is malformed.
pub fn parse_session_field(field: &str) -> Option<Option<Uuid>> {
    match field {
        "-" => Some(None),
        s => s.parse().ok().map(Some),
    }
}

fn unauthorized(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// The claims of the request's bearer token, once they still count: signed
/// by this deployment, not expired, its session not signed out, and a
/// guest's only while guests may book.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Claims, ApiError> {
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                "unauthenticated",
                "send Authorization: Bearer <token> (POST /api/sessions gives one)",
            )
        })?;
    let claims = state
        .signer
        .verify(header.trim())
        .ok_or_else(|| unauthorized("invalid_token", "the token is not valid"))?;
    if claims.expires_at_s <= chrono::Utc::now().timestamp() {
        return Err(unauthorized(
            "token_expired",
            "the token has expired: sign in again",
        ));
    }
    match claims.session {
        Some(session) => {
            let live = state
                .accounts
                .session_state(&state.redis, session, claims.expires_at_s)
                .await?;
            if live == SessionState::Revoked {
                return Err(unauthorized(
                    "signed_out",
                    "this session was signed out: sign in again",
                ));
            }
        }
        None if claims.role == Role::Buyer && !state.guests => {
            return Err(unauthorized(
                "guests_disabled",
                "guest buyers are turned off here: sign in with an account",
            ));
        }
        None => {}
    }
    Ok(claims)
}

fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("app state is registered")
        .clone()
}

type Authenticated<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// Whoever holds a valid token.
pub struct Bearer(pub Claims);

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Authenticated<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(Bearer(authenticate(&app_state(&req), &req).await?)) })
    }
}

/// The buyer making the request, and their sign-in session (none for a
/// guest).
pub struct Buyer(pub BuyerId, pub Option<Uuid>);

impl FromRequest for Buyer {
    type Error = ApiError;
    type Future = Authenticated<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let claims = authenticate(&app_state(&req), &req).await?;
            match claims.role {
                Role::Buyer => Ok(Buyer(BuyerId(claims.id), claims.session)),
                Role::Organizer => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "buyers_only",
                    "sign in as a buyer to book seats",
                )),
            }
        })
    }
}

/// An organizer making the request.
pub struct Organizer(pub Uuid);

impl Organizer {
    /// Refuses unless this organizer owns the event (`owner` as the event
    /// names it; events from before accounts belong to the house organizer).
    pub fn check_owns(&self, owner: Option<Uuid>) -> Result<(), ApiError> {
        if owner.unwrap_or_else(house_organizer) == self.0 {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_your_event",
                "this event belongs to another organizer",
            ))
        }
    }
}

impl FromRequest for Organizer {
    type Error = ApiError;
    type Future = Authenticated<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let claims = authenticate(&app_state(&req), &req).await?;
            match claims.role {
                Role::Organizer => Ok(Organizer(claims.id)),
                Role::Buyer => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "organizers_only",
                    "this needs an organizer sign-in",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn claims(session: Option<Uuid>) -> Claims {
        Claims {
            role: Role::Buyer,
            id: Uuid::from_u128(5),
            session,
            expires_at_s: 1_900_000_000,
        }
    }

    #[test]
    fn tokens_verify_and_forgeries_do_not() {
        let s = Signer::new("k1");
        for c in [claims(None), claims(Some(Uuid::from_u128(9)))] {
            let t = s.issue(&c);
            assert_eq!(s.verify(&t), Some(c));
            assert_eq!(Signer::new("k2").verify(&t), None);
            let forged = t.replacen("buyer", "organizer", 1);
            assert_eq!(s.verify(&forged), None);
            let later = t.replacen("1900000000", "1900000001", 1);
            assert_eq!(s.verify(&later), None, "the expiry is signed");
        }
        assert_eq!(s.verify("garbage"), None);
        assert_eq!(s.verify("buyer.x.zz"), None);
        // A token of the first format (`role.id.signature`) no longer counts.
        let mut mac = s.mac();
        let old = format!("buyer.{}", Uuid::from_u128(5));
        mac.update(old.as_bytes());
        let old = format!("{old}.{}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(s.verify(&old), None);
    }

    #[test]
    fn the_house_organizer_owns_what_names_no_organizer() {
        let house = Organizer(house_organizer());
        assert!(house.check_owns(None).is_ok());
        assert!(house.check_owns(Some(house_organizer())).is_ok());
        assert!(house.check_owns(Some(Uuid::from_u128(1))).is_err());
        let other = Organizer(Uuid::from_u128(1));
        assert!(other.check_owns(Some(Uuid::from_u128(1))).is_ok());
        assert!(other.check_owns(None).is_err());
    }

    proptest! {
        /// Changing any one character of a token makes it refused, or
        /// (when the change is one the format itself ignores) read as the
        /// same claims; never as someone else's.
        #[test]
        fn any_change_to_a_token_is_refused(pos in 0usize..200, c in proptest::char::range('!', '~'), session in any::<bool>()) {
            let s = Signer::new("k1");
            let original = claims(session.then(|| Uuid::from_u128(9)));
            let t = s.issue(&original);
            let pos = pos % t.len();
            let mut changed: Vec<char> = t.chars().collect();
            prop_assume!(changed[pos] != c);
            changed[pos] = c;
            let changed: String = changed.into_iter().collect();
            match s.verify(&changed) {
                None => {}
                // Hex digits decode case-insensitively.
                Some(got) => prop_assert_eq!(got, original),
            }
        }
    }
}
