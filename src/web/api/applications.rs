//! Applications: the administrators' registry (`/admin/applications`), and the validate
//! API (`/validate/...`) that applications call with one of their keys.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::core::applications::{Kinds, Scope};
use crate::core::policy::AccountKind;
use crate::services::admin::Operator;
use crate::services::applications::{AppCaller, ApplicationSummary, CheckResult, IssuedKey, NewApplication};
use crate::services::Error;
use crate::web::error::{error_response, ErrorBody};
use crate::web::session::{remote_addr, SignedIn};
use crate::web::{ApiJson, ApiJsonOrEmpty};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    /// 1 to 64 characters, unique.
    name: String,
    /// The kinds of account it may act for.
    kinds: Kinds,
    /// What it may do: `check` (codes), `challenge` (a Duo push), `accounts`.
    scopes: Vec<Scope>,
    /// The networks it may call from (CIDR, or addresses); none: anywhere.
    #[serde(default)]
    networks: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApplication {
    id: i64,
    /// Its first key, shown this once.
    key: IssuedKey,
}

/// Registers an application and issues its first key, shown once (full administrators).
#[utoipa::path(post, path = "/api/v1/admin/applications", request_body = ApplicationRequest,
    responses((status = 201, body = CreatedApplication), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The name is taken"), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<ApplicationRequest>,
) -> Result<Response, Error> {
    let new = NewApplication {
        name: body.name,
        kinds: body.kinds,
        scopes: body.scopes,
        networks: body.networks,
    };
    let (id, key) = app
        .create_application(&new, Operator::Administrator(&caller.account), caller.remote())
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedApplication { id, key })).into_response())
}

/// Every application with its keys (never their secrets) (full administrators).
#[utoipa::path(get, path = "/api/v1/admin/applications",
    responses((status = 200, body = [ApplicationSummary]), (status = 403, body = ErrorBody)))]
pub async fn list(State(app): State<App>, SignedIn(caller): SignedIn) -> Result<Json<Vec<ApplicationSummary>>, Error> {
    Ok(Json(app.applications(Operator::Administrator(&caller.account)).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// The key stops working after this many days; without it, when revoked.
    expires_in_days: Option<u32>,
}

/// Issues another key (rotation: the others keep working until revoked), shown once.
#[utoipa::path(post, path = "/api/v1/admin/applications/{id}/keys", params(("id" = i64, Path)),
    request_body = KeyRequest,
    responses((status = 201, body = IssuedKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn issue_key(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<KeyRequest>,
) -> Result<Response, Error> {
    let by = Operator::Administrator(&caller.account);
    let key = app
        .issue_application_key(id, body.expires_in_days, by, caller.remote())
        .await?;
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

/// Revokes a key: it stops working at once, on every node.
#[utoipa::path(post, path = "/api/v1/admin/applications/{id}/keys/{key_id}/revoke",
    params(("id" = i64, Path), ("key_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path((id, key_id)): Path<(i64, String)>,
) -> Result<StatusCode, Error> {
    let by = Operator::Administrator(&caller.account);
    app.revoke_application_key(id, &key_id, by, caller.remote()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationChange {
    /// `false` suspends it: its keys stop working until it is active again.
    active: bool,
}

/// Suspends an application, or makes it active again.
#[utoipa::path(patch, path = "/api/v1/admin/applications/{id}", params(("id" = i64, Path)),
    request_body = ApplicationChange,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<ApplicationChange>,
) -> Result<StatusCode, Error> {
    let by = Operator::Administrator(&caller.account);
    app.set_application_active(id, body.active, by, caller.remote()).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
    /// The account's username (or e-mail address).
    user: String,
    kind: AccountKind,
    /// A code from an authenticator app, or a YubiKey's OTP.
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
        .validate_check(&caller, body.kind, &body.user, &body.code, body.client_ip.as_deref())
        .await?;
    Ok(match result {
        CheckResult::Locked { retry_after } => {
            let wait = retry_after.map(|secs| [(header::RETRY_AFTER, secs.to_string())]);
            (StatusCode::TOO_MANY_REQUESTS, wait, Json(result)).into_response()
        }
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
