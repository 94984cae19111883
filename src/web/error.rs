//! The one place where a service error becomes an HTTP answer:
//! `{"error": {"code": "...", "message": "..."}}` with a stable code and the right status.
//! Internal errors are logged with their detail and answered without it; a database outage
//! is a 503, never a wrong code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::services::Error;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_credentials`, `invalid_code`, `code_already_used`,
    /// `code_out_of_sync`, `locked_out`, `second_factor_required`, `enrollment_required`, ...
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
}

impl Error {
    /// The HTTP status of each error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidCredentials
            | Error::WrongPassword
            | Error::InvalidCode
            | Error::SecondFactorIncorrect { .. }
            | Error::InvalidBackupCode
            | Error::CodeAlreadyUsed
            | Error::CodeOutOfSync
            | Error::Unauthenticated
            | Error::InvalidApiKey
            | Error::SecondFactorRequired => StatusCode::UNAUTHORIZED,
            Error::MalformedCode(_) | Error::Validation(_) | Error::NoAnswerInTime { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::AmbiguousSession => StatusCode::BAD_REQUEST,
            Error::LockedOut { .. } | Error::SecondFactorLocked => StatusCode::TOO_MANY_REQUESTS,
            Error::EnrollmentRequired | Error::Forbidden | Error::ReauthenticationRequired | Error::Denied(_) => {
                StatusCode::FORBIDDEN
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) | Error::ServiceUnreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::ServiceMisconfigured { .. } => StatusCode::BAD_GATEWAY,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a user may see: never the detail of an internal or database error.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(detail) => {
                tracing::error!(detail, "internal error");
                "Something went wrong on the server. It has been logged.".into()
            }
            Error::Unavailable(detail) => {
                tracing::error!(detail, "database unavailable");
                self.to_string()
            }
            Error::ServiceUnreachable { service, detail } => {
                tracing::warn!(service, detail, "second-factor service unreachable");
                self.to_string()
            }
            Error::ServiceMisconfigured { service, detail } => {
                tracing::error!(service, detail, "second-factor service misconfigured");
                self.to_string()
            }
            other => other.to_string(),
        }
    }
}

impl Error {
    /// The error as the API answers it (logged as `public_message` logs it).
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code(),
            message: self.public_message(),
        }
    }
}

pub fn error_response(status: StatusCode, code: &'static str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail { code, message },
        }),
    )
        .into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status(), self.code(), self.public_message());
        if let Error::LockedOut { retry_after_secs } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
