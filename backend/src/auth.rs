//! Buyer and organizer tokens: `role.id.signature`, signed with HMAC-SHA256.
//! Stateless, so any API instance verifies any token.

use std::future::{Ready, ready};

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use boxoffice_domain::BuyerId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Buyer,
    Organizer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Organizer => "organizer",
        }
    }
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn signature(&self, payload: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn issue(&self, role: Role, id: Uuid) -> String {
        let payload = format!("{}.{id}", role.name());
        format!("{payload}.{}", self.signature(&payload))
    }

    /// The role and id of a valid token.
    pub fn verify(&self, token: &str) -> Option<(Role, Uuid)> {
        let (payload, signature) = token.rsplit_once('.')?;
        let expected = self.signature(payload);
        let sig = hex::decode(signature).ok()?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).ok()?;
        debug_assert_eq!(expected.len(), 64);
        let (role, id) = payload.split_once('.')?;
        let role = match role {
            "buyer" => Role::Buyer,
            "organizer" => Role::Organizer,
            _ => return None,
        };
        Some((role, id.parse().ok()?))
    }
}

/// The role and id behind the request's bearer token.
pub fn bearer(req: &HttpRequest) -> Result<(Role, Uuid), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("app state is registered");
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer <token> (POST /api/auth/buyer gives one)",
            )
        })?;
    state.signer.verify(header.trim()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the token is not valid",
        )
    })
}

/// The buyer making the request.
pub struct Buyer(pub BuyerId);

impl FromRequest for Buyer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match bearer(req) {
            Ok((Role::Buyer, id)) => Ok(Buyer(BuyerId(id))),
            Ok((Role::Organizer, _)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "buyers_only",
                "sign in as a buyer to book seats",
            )),
            Err(e) => Err(e),
        })
    }
}

/// An organizer making the request.
pub struct Organizer(pub Uuid);

impl FromRequest for Organizer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match bearer(req) {
            Ok((Role::Organizer, id)) => Ok(Organizer(id)),
            Ok((Role::Buyer, _)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "organizers_only",
                "this needs an organizer sign-in",
            )),
            Err(e) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_forgeries_do_not() {
        let s = Signer::new("k1");
        let id = Uuid::from_u128(5);
        let t = s.issue(Role::Buyer, id);
        assert_eq!(s.verify(&t), Some((Role::Buyer, id)));
        assert_eq!(Signer::new("k2").verify(&t), None);
        let forged = t.replacen("buyer", "organizer", 1);
        assert_eq!(s.verify(&forged), None);
        assert_eq!(s.verify("garbage"), None);
        assert_eq!(s.verify("buyer.x.zz"), None);
    }
}
