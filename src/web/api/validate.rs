//! The validate API (`/validate/...`) that applications call with one of their keys.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::core::policy::AccountKind;
use crate::services::applications::AppCaller;
use crate::services::transactions::{ChallengeResult, TransactionResult};
use crate::services::validate::{CheckResult, Method, NewAppAccount, PreauthResult, Subject};
use crate::services::Error;
use crate::web::error::{error_response, ErrorBody};
use crate::web::session::remote_addr;
use crate::web::ApiJson;

/// An application authenticated by the key in its `Authorization` header.
pub struct Application(pub AppCaller);

impl FromRequestParts<App> for Application {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, app: &App) -> Result<Self, Self::Rejection> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let remote = remote_addr(app, parts);
        let caller = app.authenticate_application(authorization, remote.as_deref()).await?;
        Ok(Application(caller))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The account's username (or e-mail address); or give `external_id`.
    user: Option<String>,
    /// The application's own identifier for an account it made; or give `user`.
    external_id: Option<String>,
    kind: AccountKind,
    /// A code from an authenticator app, a YubiKey's OTP, or a backup code.
    code: String,
    /// The user's address as the application saw it (for the lockout and the audit).
    client_ip: Option<String>,
}

/// Is this the user's second factor? A code from an authenticator app, a YubiKey's OTP or a
/// backup code, single use and counted with the login page's attempts: `accept` (used up; a
/// backup code's successor comes in `backup_code`, shown once), `reject` (wrong, used, or no
/// such user: the same answer), or `locked` (`429`, with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/validate/check", request_body = CheckRequest,
    responses((status = 200, body = CheckResult, description = "`accept` or `reject`"),
              (status = 429, body = CheckResult, description = "`locked`"),
              (status = 401, body = ErrorBody, description = "No valid API key"),
              (status = 403, body = ErrorBody, description = "Outside the application's networks, scopes or kinds"),
              (status = 503, body = ErrorBody)))]
pub async fn check(
    State(app): State<App>,
    Application(caller): Application,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Response, Error> {
    let result = app
        .validate_check(
            &caller,
            body.kind,
            subject(&body.user, &body.external_id)?,
            &body.code,
            body.client_ip.as_deref(),
        )
        .await?;
    Ok(match result {
        CheckResult::Locked { retry_after } => locked(retry_after, Json(result)),
        _ => Json(result).into_response(),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct RadiusRequest {
    /// The RADIUS `User-Name`: `name@client` or `name@admin`; a bare name is of the
    /// application's kind when it has only one.
    user: String,
    /// The RADIUS `User-Password`: the code.
    pass: String,
    /// The user's address, if the RADIUS server passes one (for the lockout and the audit).
    client_ip: Option<String>,
}

/// For FreeRADIUS's `rlm_rest` (a form body): `204` the code is right (Access-Accept),
/// `401` it is not, or there is no such user (Access-Reject), `403` the account is locked
/// out or the application may not check it (Access-Reject).
#[utoipa::path(post, path = "/api/v1/validate/radius",
    request_body(content = RadiusRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 204, description = "Accept"),
              (status = 401, body = ErrorBody, description = "Reject: a wrong or used code, no such user, or no valid API key"),
              (status = 403, body = ErrorBody, description = "Locked out, or outside the application's networks, scopes or kinds"),
              (status = 422, body = ErrorBody, description = "Not the form: `user` and `pass` are required"),
              (status = 503, body = ErrorBody)))]
pub async fn radius(
    State(app): State<App>,
    Application(caller): Application,
    form: Result<Form<RadiusRequest>, FormRejection>,
) -> Result<Response, Error> {
    let Form(body) = form.map_err(|rejection| Error::Validation(rejection.body_text()))?;
    let result = app
        .validate_radius(&caller, &body.user, &body.pass, body.client_ip.as_deref())
        .await?;
    Ok(match result {
        CheckResult::Accept { .. } => StatusCode::NO_CONTENT.into_response(),
        CheckResult::Reject => Error::InvalidCode.into_response(),
        // rlm_rest reads 403 as "userlock"; 429 would be only "invalid".
        CheckResult::Locked { .. } => error_response(
            StatusCode::FORBIDDEN,
            "locked_out",
            "Too many wrong answers: the account is locked out.".into(),
        ),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreauthRequest {
    /// The account's username (or e-mail address); or give `external_id`.
    user: Option<String>,
    /// The application's own identifier for an account it made; or give `user`.
    external_id: Option<String>,
    kind: AccountKind,
    /// The user's address as the application saw it (for the audit).
    client_ip: Option<String>,
}

/// After its own password check, what the application should do with this user: `auth` (ask
/// for one of `methods`, then `check`), `enroll` (with the `accounts` scope, a one-time
/// `enroll_url` to send the user to), `allow` (no second factor, and the application lets
/// such users pass), or `deny` (with the reason).
#[utoipa::path(post, path = "/api/v1/validate/preauth", request_body = PreauthRequest,
    responses((status = 200, body = PreauthResult),
              (status = 401, body = ErrorBody, description = "No valid API key"),
              (status = 403, body = ErrorBody, description = "Outside the application's networks, scopes or kinds"),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn preauth(
    State(app): State<App>,
    Application(caller): Application,
    ApiJson(body): ApiJson<PreauthRequest>,
) -> Result<Json<PreauthResult>, Error> {
    let result = app
        .validate_preauth(
            &caller,
            body.kind,
            subject(&body.user, &body.external_id)?,
            body.client_ip.as_deref(),
        )
        .await?;
    Ok(Json(result))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The account's username (or e-mail address); or give `external_id`.
    user: Option<String>,
    /// The application's own identifier for an account it made; or give `user`.
    external_id: Option<String>,
    kind: AccountKind,
    /// What to challenge the user with: `duo` (a push, or a call when the user's device
    /// takes no push; needs Duo's Auth API mode).
    method: Method,
    /// The user's address as the application saw it (for the lockout and the audit).
    client_ip: Option<String>,
}

/// Starts a challenge the user answers elsewhere (scope `challenge`): `pending` with a
/// `transaction_id` to poll, `accept` (the service let the user in without asking), `reject`
/// (no such user or second factor, or the service refused the user), or `locked` (`429`,
/// with `Retry-After`). Counted as one attempt against the login page's lockout.
#[utoipa::path(post, path = "/api/v1/validate/challenge", request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResult, description = "`pending`, `accept` or `reject`"),
              (status = 429, body = ChallengeResult, description = "`locked`"),
              (status = 401, body = ErrorBody, description = "No valid API key"),
              (status = 403, body = ErrorBody, description = "Outside the application's networks, scopes or kinds"),
              (status = 422, body = ErrorBody, description = "Not a method that needs a challenge, or Duo is set up with the Universal Prompt"),
              (status = 502, body = ErrorBody, description = "The service (Duo) refuses this server's settings"),
              (status = 503, body = ErrorBody, description = "The service (Duo) cannot be reached")))]
pub async fn challenge(
    State(app): State<App>,
    Application(caller): Application,
    ApiJson(body): ApiJson<ChallengeRequest>,
) -> Result<Response, Error> {
    let result = app
        .validate_challenge(
            &caller,
            body.kind,
            subject(&body.user, &body.external_id)?,
            body.method,
            body.client_ip.as_deref(),
        )
        .await?;
    Ok(match result {
        ChallengeResult::Locked { retry_after } => locked(retry_after, Json(result)),
        _ => Json(result).into_response(),
    })
}

/// Polls a transaction `challenge` started (only the application that started it can):
/// `pending` (poll again in two seconds or so), `accept`, `reject` or `expired`. Each of the
/// last three is said once: the transaction has then ended, and is `404` afterwards.
#[utoipa::path(get, path = "/api/v1/validate/transactions/{id}",
    params(("id" = String, Path, description = "The `transaction_id` `challenge` answered")),
    responses((status = 200, body = TransactionResult),
              (status = 401, body = ErrorBody, description = "No valid API key"),
              (status = 404, body = ErrorBody, description = "No such transaction, ended, or another application's"),
              (status = 502, body = ErrorBody, description = "The service (Duo) refuses this server's settings: poll again later"),
              (status = 503, body = ErrorBody, description = "The service (Duo) cannot be reached: poll again")))]
pub async fn transaction(
    State(app): State<App>,
    Application(caller): Application,
    Path(id): Path<String>,
) -> Result<Json<TransactionResult>, Error> {
    Ok(Json(app.validate_transaction(&caller, &id).await?))
}

/// A `locked` answer: `429`, with `Retry-After` when the wait is known.
fn locked(retry_after: Option<i64>, body: impl IntoResponse) -> Response {
    let wait = retry_after.map(|secs| [(header::RETRY_AFTER, secs.to_string())]);
    (StatusCode::TOO_MANY_REQUESTS, wait, body).into_response()
}

/// The account a request names: by `user` or by `external_id`, exactly one.
fn subject<'a>(user: &'a Option<String>, external_id: &'a Option<String>) -> Result<Subject<'a>, Error> {
    match (user, external_id) {
        (Some(user), None) => Ok(Subject::Name(user)),
        (None, Some(id)) => Ok(Subject::ExternalId(id)),
        _ => Err(Error::Validation(
            "Name the account by user or by external_id (one of them).".into(),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRequest {
    kind: AccountKind,
    /// 1 to 64 letters, digits or `. _ @ + -`.
    username: String,
    email: Option<String>,
    /// The application's own identifier for the account (1 to 128 characters), unique for
    /// the application: it may name the account by it in the other calls.
    external_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedAccount {
    id: i64,
    kind: AccountKind,
    username: String,
    external_id: String,
}

/// Makes an account for the application (scope `accounts`). It has no Twofold password and
/// cannot sign in to Twofold's own areas; the application sends its user to enrol with the
/// link `preauth` gives.
#[utoipa::path(post, path = "/api/v1/validate/accounts", request_body = AccountRequest,
    responses((status = 201, body = CreatedAccount),
              (status = 401, body = ErrorBody, description = "No valid API key"),
              (status = 403, body = ErrorBody, description = "Outside the application's networks, scopes or kinds"),
              (status = 409, body = ErrorBody, description = "The username, e-mail address or external_id is taken"),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_account(
    State(app): State<App>,
    Application(caller): Application,
    ApiJson(body): ApiJson<AccountRequest>,
) -> Result<Response, Error> {
    let new = NewAppAccount {
        kind: body.kind,
        username: &body.username,
        email: body.email.as_deref(),
        external_id: &body.external_id,
    };
    let id = app.validate_create_account(&caller, &new).await?;
    let created = CreatedAccount {
        id,
        kind: body.kind,
        username: body.username,
        external_id: body.external_id,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}
