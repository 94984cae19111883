//! The JSON API under `/api/v1`, described by the OpenAPI document at `/api/openapi.json`.
//! Handlers only translate: JSON in, one service call, JSON out.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::error::{error_response, ErrorDetail};
use crate::app::App;

use crate::core::policy::ServiceId;
use crate::services::{Answer, Challenge, Error};

pub mod account;
pub mod admin;
pub mod applications;
pub mod login;
pub mod validate;

/// The API's routes, under `/api/v1`.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/setup", post(login::setup))
        .route("/login", post(login::login))
        .route("/login/second-factor", post(login::second_factor))
        .route("/login/backup-code", post(login::backup_code))
        .route("/logout", post(login::logout))
        .route("/me", get(account::me))
        .route("/me/two-factor", get(account::two_factor))
        .route("/me/two-factor/services", get(account::my_services))
        .route("/me/two-factor/disable", post(account::disable_two_factor))
        .route("/me/two-factor/credentials/{id}", patch(account::rename_credential))
        .route(
            "/me/two-factor/credentials/{id}/remove",
            post(account::remove_credential),
        )
        .route("/me/two-factor/{service}/enrollment", post(account::enrollment))
        .route(
            "/me/two-factor/{service}/enrollment/confirm",
            post(account::enrollment_confirm),
        )
        .route("/me/password", post(account::change_password))
        .route(
            "/admin/two-factor/settings",
            get(admin::get_settings).put(admin::put_settings),
        )
        .route("/admin/accounts", get(admin::list_accounts).post(admin::create_account))
        .route(
            "/admin/accounts/{id}/two-factor/disable",
            post(admin::admin_disable_two_factor),
        )
        .route("/admin/accounts/{id}/unlock", post(admin::unlock))
        .route(
            "/admin/yubikeys",
            get(admin::list_yubikeys).post(admin::import_yubikeys),
        )
        .route(
            "/admin/applications",
            get(applications::list).post(applications::create),
        )
        .route("/admin/applications/{id}", patch(applications::change))
        .route("/admin/applications/{id}/keys", post(applications::issue_key))
        .route(
            "/admin/applications/{id}/keys/{key_id}/revoke",
            post(applications::revoke_key),
        )
        .route("/validate/accounts", post(validate::create_account))
        .route("/validate/preauth", post(validate::preauth))
        .route("/validate/check", post(validate::check))
        .route("/validate/radius", post(validate::radius))
        .route("/validate/challenge", post(validate::challenge))
        .route("/validate/transactions/{id}", get(validate::transaction))
        .fallback(not_found)
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such API endpoint.".into(),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Twofold", description = "Two-factor authentication server: the JSON API."),
    paths(
        login::setup,
        login::login,
        login::second_factor,
        login::backup_code,
        login::logout,
        account::me,
        account::two_factor,
        account::my_services,
        account::enrollment,
        account::enrollment_confirm,
        account::rename_credential,
        account::remove_credential,
        account::disable_two_factor,
        account::change_password,
        admin::get_settings,
        admin::put_settings,
        admin::list_accounts,
        admin::create_account,
        admin::admin_disable_two_factor,
        admin::unlock,
        admin::list_yubikeys,
        admin::import_yubikeys,
        applications::create,
        applications::list,
        applications::issue_key,
        applications::revoke_key,
        applications::change,
        validate::create_account,
        validate::preauth,
        validate::check,
        validate::radius,
        validate::challenge,
        validate::transaction
    ),
    modifiers(&CommonErrors)
)]
pub struct ApiDoc;

/// Documents, on every operation, the errors that come from the layers every request goes
/// through rather than from the handler: the host and origin checks, the session, the JSON
/// body, a database outage, an internal error.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = matches!(path.as_str(), "/api/v1/setup" | "/api/v1/login");
            let operations = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.patch.as_mut()),
                (true, item.delete.as_mut()),
            ];
            for (changes_state, operation) in operations {
                let Some(operation) = operation else { continue };
                let mut statuses = vec![
                    ("421", "unknown_host: the request was addressed to another host name"),
                    ("500", "internal_error"),
                    ("503", "service_unavailable: the database cannot be reached or written"),
                ];
                if operation.request_body.is_some() {
                    statuses.extend([
                        ("400", "invalid_request: the body is not the JSON expected"),
                        ("408", "request_timeout: the body did not arrive in time"),
                        ("415", "unsupported_media_type: the body is not application/json"),
                        ("422", "validation_error"),
                    ]);
                }
                if path.contains('{') {
                    statuses.push(("400", "invalid_request: a path parameter is malformed"));
                }
                if changes_state {
                    statuses.push(("403", "cross_origin: sent by another site's page"));
                }
                if path.starts_with("/api/v1/validate/") {
                    statuses.push(("401", "invalid_api_key: no key, or not a live one"));
                } else if !public {
                    statuses.extend([
                        ("400", "ambiguous_session: two session cookies"),
                        ("401", "unauthenticated, or second_factor_required"),
                        ("403", "forbidden, or enrollment_required"),
                    ]);
                }
                for (status, description) in statuses {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    id: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginStatus {
    Authenticated,
    SecondFactorRequired,
    EnrollmentRequired,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    id: ServiceId,
    name: &'static str,
    /// What the service asks for at login (`code` with its length), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<ChallengeInfo>,
    /// Why the service cannot be used for this login now (Duo denies the user, or cannot
    /// be reached): another method, or the backup code, still can.
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<ErrorDetail>,
}

#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChallengeInfo {
    Code {
        length: u32,
    },
    /// Approve on another device (`prompt` says which), sending `{"type": "poll"}` every
    /// few seconds until it resolves.
    Approval {
        prompt: String,
    },
    /// Send `{"type": "choose", "option": id}` with one of the `options` (a push, a call,
    /// passcodes by text message), or, if `passcode`, `{"type": "code", "code": ...}`.
    Choose {
        options: Vec<ChoiceInfo>,
        passcode: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
    /// Open `link` on the phone (or show it as a QR code to scan with Duo Mobile), then
    /// send `{"type": "poll"}` every few seconds until it resolves.
    Activate {
        link: String,
    },
    Redirect {
        url: String,
    },
    Browser {
        options: String,
    },
}

#[derive(Serialize, ToSchema)]
pub struct ChoiceInfo {
    id: String,
    label: String,
    device: String,
}

impl From<Challenge> for ChallengeInfo {
    fn from(challenge: Challenge) -> Self {
        match challenge {
            Challenge::TypedCode { length } => ChallengeInfo::Code { length },
            Challenge::Approval { prompt } => ChallengeInfo::Approval { prompt },
            Challenge::Choose {
                options,
                passcode,
                notice,
            } => ChallengeInfo::Choose {
                options: options
                    .into_iter()
                    .map(|choice| ChoiceInfo {
                        id: choice.id,
                        label: choice.label,
                        device: choice.device,
                    })
                    .collect(),
                passcode,
                notice,
            },
            Challenge::Activate { link } => ChallengeInfo::Activate { link },
            Challenge::Redirect { url } => ChallengeInfo::Redirect { url },
            Challenge::Browser { options } => ChallengeInfo::Browser { options },
        }
    }
}

fn service_info(id: ServiceId, challenge: Option<Result<Challenge, Error>>) -> ServiceInfo {
    let (challenge, unavailable) = match challenge {
        None => (None, None),
        Some(Ok(challenge)) => (Some(challenge.into()), None),
        Some(Err(error)) => (None, Some(error.detail())),
    };
    ServiceInfo {
        id,
        name: id.display_name(),
        challenge,
        unavailable,
    }
}

/// An answer to a challenge: `{"type": "code", "code": "123456"}`, `{"type": "poll"}`,
/// `{"type": "callback", ...}`, `{"type": "browser", ...}`; or, as earlier clients send it,
/// just `{"code": "123456"}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AnswerRequest {
    Tagged(TaggedAnswer),
    Code { code: String },
}

#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaggedAnswer {
    Code { code: String },
    Choose { option: String },
    Poll,
    Callback { state: String, code: String },
    Browser { response: String },
}

impl From<AnswerRequest> for Answer {
    fn from(request: AnswerRequest) -> Answer {
        match request {
            AnswerRequest::Code { code } | AnswerRequest::Tagged(TaggedAnswer::Code { code }) => Answer::Code(code),
            AnswerRequest::Tagged(TaggedAnswer::Choose { option }) => Answer::Choose { option },
            AnswerRequest::Tagged(TaggedAnswer::Poll) => Answer::Poll,
            AnswerRequest::Tagged(TaggedAnswer::Callback { state, code }) => Answer::Callback { state, code },
            AnswerRequest::Tagged(TaggedAnswer::Browser { response }) => Answer::Browser { response },
        }
    }
}

pub fn utc_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
