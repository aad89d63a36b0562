//! The API's errors, mapped to HTTP in one place. Clients always get a JSON
//! body `{"code": ..., "message": ...}` with a stable code; internal details
//! are logged, never returned.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use boxoffice_platform::views::Rejection;

use crate::openapi::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be served as sent.
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// A dependency (broker, Redis, processors) is down; try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// More booking requests are on their way than the pipeline decides in
    /// time: this one is refused at once, to be retried (same key) shortly.
    #[error("overloaded")]
    Overloaded,
    /// A rate limit (or a bound on open streams) refused the request: `429`
    /// with `Retry-After` (docs/front-door.md).
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_s: u64,
    },
    /// Refused for now, to be asked again after `Retry-After` (a
    /// waiting-room turn not reached yet, docs/waiting-room.md).
    #[error("{message}")]
    Later {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after_s: u64,
    },
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A dependency failed; the detail is logged here and not returned.
    pub fn unavailable(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{context}");
        Self::Unavailable(context.to_owned())
    }

    /// The seat-processor refused a command.
    pub fn rejected(r: &Rejection) -> Self {
        let status = match r.code.as_str() {
            "unknown_event" | "unknown_booking" => StatusCode::NOT_FOUND,
            "not_your_booking" => StatusCode::FORBIDDEN,
            "unknown_seat"
            | "unknown_section"
            | "duplicate_seat"
            | "invalid_quantity"
            | "idempotency_key_reused"
            | "seats_in_several_parts" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        };
        Self::Client {
            status,
            code: r.code.clone(),
            message: r.message.clone(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Client { status, .. } => *status,
            Self::Unavailable(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Later { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Client {
                status,
                code,
                message,
            } => HttpResponse::build(*status).json(ErrorBody {
                code: code.clone(),
                message: message.clone(),
            }),
            Self::Unavailable(what) => HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "2"))
                .json(ErrorBody {
                    code: "unavailable".to_owned(),
                    message: format!("{what}; please retry shortly"),
                }),
            Self::Overloaded => HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "1"))
                .json(ErrorBody {
                    code: "overloaded".to_owned(),
                    message: "Too many buyers at this moment; retry in a second with the same \
                              Idempotency-Key."
                        .to_owned(),
                }),
            Self::RateLimited {
                code,
                message,
                retry_after_s,
            } => HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry_after_s.to_string()))
                .json(ErrorBody {
                    code: (*code).to_owned(),
                    message: message.clone(),
                }),
            Self::Later {
                status,
                code,
                message,
                retry_after_s,
            } => HttpResponse::build(*status)
                .insert_header(("Retry-After", retry_after_s.to_string()))
                .json(ErrorBody {
                    code: (*code).to_owned(),
                    message: message.clone(),
                }),
        }
    }
}
