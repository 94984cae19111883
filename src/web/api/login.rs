//! Logging in: the first-start setup, the password, the second factor, the backup code, logging out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{service_info, AnswerRequest, ChallengeInfo, Created, LoginStatus, ServiceInfo};
use crate::app::App;
use crate::core::policy::{AccountKind, NextStep, ServiceId};
use crate::services::login::Method;
use crate::services::{Error, Verdict};
use crate::web::error::ErrorBody;
use crate::web::session::{session_cookie, AnySession, AwaitingSecondFactor};
use crate::web::{ApiJson, Remote};

#[derive(Deserialize, ToSchema)]
pub struct SetupRequest {
    /// The contents of `<data_dir>/setup-token`.
    setup_token: String,
    username: String,
    password: String,
}

#[utoipa::path(post, path = "/api/v1/setup", request_body = SetupRequest,
    responses((status = 201, body = Created), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn setup(
    State(app): State<App>,
    Remote(remote): Remote,
    ApiJson(body): ApiJson<SetupRequest>,
) -> Result<Response, Error> {
    let id = app
        .setup_first_admin(&body.setup_token, &body.username, &body.password, remote.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or e-mail address, in any case.
    username: String,
    password: String,
    area: AccountKind,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    status: LoginStatus,
    /// The enrolled service to answer (second factor), or the services to choose from
    /// (enrolment).
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<Vec<ServiceInfo>>,
    /// With `second_factor_required`: every credential the account can answer with.
    #[serde(skip_serializing_if = "Option::is_none")]
    methods: Option<Vec<MethodInfo>>,
}

#[derive(Serialize, ToSchema)]
pub struct MethodInfo {
    service: ServiceId,
    credential_id: i64,
    label: String,
}

impl From<Method> for MethodInfo {
    fn from(method: Method) -> Self {
        MethodInfo {
            service: method.service,
            credential_id: method.credential_id,
            label: method.label,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    status: LoginStatus,
    /// An approval is still waiting: poll again in a few seconds.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
    /// What to answer next (the answer started a push, or sent passcodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<ChallengeInfo>,
}

/// Step one of a login: the password. Sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(app): State<App>,
    Remote(remote): Remote,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, Error> {
    let outcome = app
        .login(body.area, &body.username, &body.password, remote.as_deref())
        .await?;
    let response = match outcome.next {
        NextStep::Authenticated => LoginResponse {
            status: LoginStatus::Authenticated,
            services: None,
            methods: None,
        },
        NextStep::SecondFactor(service) => LoginResponse {
            status: LoginStatus::SecondFactorRequired,
            services: Some(vec![service_info(service, outcome.challenge)]),
            methods: Some(outcome.methods.into_iter().map(Into::into).collect()),
        },
        NextStep::Enrolment(services) => LoginResponse {
            status: LoginStatus::EnrollmentRequired,
            services: Some(services.into_iter().map(|s| service_info(s, None)).collect()),
            methods: None,
        },
    };
    Ok((session_cookie(&app, Some(&outcome.session_token)), Json(response)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct SecondFactorRequest {
    /// Which of the account's services answers; the first one enrolled by default.
    service: Option<ServiceId>,
    #[serde(flatten)]
    answer: AnswerRequest,
}

/// Step two of a login: the answer to one of the account's second factors.
#[utoipa::path(post, path = "/api/v1/login/second-factor", request_body = SecondFactorRequest,
    responses((status = 200, body = StatusResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody, description = "Already logged in"),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody, description = "The second factor's outside service refuses this server's configuration"),
              (status = 503, body = ErrorBody, description = "The second factor's outside service cannot be reached")))]
pub async fn second_factor(
    State(app): State<App>,
    AwaitingSecondFactor(mut caller): AwaitingSecondFactor,
    ApiJson(body): ApiJson<SecondFactorRequest>,
) -> Result<Response, Error> {
    let verdict = app
        .verify_second_factor(
            &caller.session,
            &caller.account,
            caller.second_step.take(),
            body.service,
            &body.answer.into(),
            caller.remote(),
        )
        .await?;
    Ok(match verdict {
        // The session continues under a new token: the half-logged-in one no longer works.
        Verdict::Accepted { session_token } => (
            session_cookie(&app, Some(&session_token)),
            Json(StatusResponse {
                status: LoginStatus::Authenticated,
                pending: false,
                challenge: None,
            }),
        )
            .into_response(),
        Verdict::Pending => Json(StatusResponse {
            status: LoginStatus::SecondFactorRequired,
            pending: true,
            challenge: None,
        })
        .into_response(),
        Verdict::Next(challenge) => Json(StatusResponse {
            status: LoginStatus::SecondFactorRequired,
            pending: false,
            challenge: Some(challenge.into()),
        })
        .into_response(),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct BackupCodeRequest {
    backup_code: String,
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodeLoginResponse {
    status: LoginStatus,
    /// The next backup code, shown this once: the one just used no longer works.
    new_backup_code: String,
}

/// Step two with the backup code; answers with the next backup code, and sets the new
/// session cookie.
#[utoipa::path(post, path = "/api/v1/login/backup-code", request_body = BackupCodeRequest,
    responses((status = 200, body = BackupCodeLoginResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody, description = "Already logged in"),
              (status = 429, body = ErrorBody)))]
pub async fn backup_code(
    State(app): State<App>,
    AwaitingSecondFactor(caller): AwaitingSecondFactor,
    ApiJson(body): ApiJson<BackupCodeRequest>,
) -> Result<Response, Error> {
    let (next, session_token) = app
        .login_with_backup_code(&caller.session, &caller.account, &body.backup_code, caller.remote())
        .await?;
    let answer = Json(BackupCodeLoginResponse {
        status: LoginStatus::Authenticated,
        new_backup_code: next.display(),
    });
    Ok((session_cookie(&app, Some(&session_token)), answer).into_response())
}

/// Ends the session, whatever its stage.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(app): State<App>, AnySession(caller): AnySession) -> Result<Response, Error> {
    app.logout(&caller.session, caller.remote()).await?;
    Ok((StatusCode::NO_CONTENT, session_cookie(&app, None)).into_response())
}
