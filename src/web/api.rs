//! The JSON API under `/api/v1`, described by the OpenAPI document at `/api/openapi.json`.
//! Handlers only translate: JSON in, one service call, JSON out.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::error::ErrorBody;
use super::session::{session_cookie, AnySession, AwaitingSecondFactor, Enrolling, SignedIn};
use super::{qr, ApiJson, Remote};
use crate::app::App;
use crate::core::otpauth::grouped_secret;
use crate::core::policy::{AccountKind, NextStep, Role, ServiceId, TwoFactorSettings};
use crate::services::admin::AccountRequest;
use crate::services::{Answer, Challenge, EnrolmentSetup, Error, Verdict};
use crate::store::AccountSummary;

#[derive(OpenApi)]
#[openapi(
    info(title = "Twofold", description = "Two-factor authentication server: the JSON API."),
    paths(
        setup,
        login,
        second_factor,
        backup_code,
        logout,
        me,
        my_services,
        totp_enrollment,
        totp_enrollment_confirm,
        disable_two_factor,
        change_password,
        get_settings,
        put_settings,
        list_accounts,
        create_account,
        admin_disable_two_factor,
        unlock
    )
)]
pub struct ApiDoc;

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(Deserialize, ToSchema)]
pub struct SetupRequest {
    /// The contents of `<data_dir>/setup-token`.
    setup_token: String,
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    id: i64,
}

/// First start: create the first full administrator with the one-time setup token.
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
#[serde(rename_all = "snake_case")]
pub enum LoginStatus {
    Authenticated,
    SecondFactorRequired,
    EnrollmentRequired,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    status: LoginStatus,
    /// The enrolled service to answer (second factor), or the services to choose from
    /// (enrolment).
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<Vec<ServiceInfo>>,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    id: ServiceId,
    name: &'static str,
    /// What the service asks for at login (`code` with its length), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<ChallengeInfo>,
}

#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChallengeInfo {
    Code { length: u32 },
    Approval { transaction: String },
    Redirect { url: String },
    Browser { options: String },
}

impl From<Challenge> for ChallengeInfo {
    fn from(challenge: Challenge) -> Self {
        match challenge {
            Challenge::TypedCode { length } => ChallengeInfo::Code { length },
            Challenge::Approval { transaction } => ChallengeInfo::Approval { transaction },
            Challenge::Redirect { url } => ChallengeInfo::Redirect { url },
            Challenge::Browser { options } => ChallengeInfo::Browser { options },
        }
    }
}

fn service_info(id: ServiceId, challenge: Option<Challenge>) -> ServiceInfo {
    ServiceInfo {
        id,
        name: id.display_name(),
        challenge: challenge.map(Into::into),
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    status: LoginStatus,
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
        },
        NextStep::SecondFactor(service) => LoginResponse {
            status: LoginStatus::SecondFactorRequired,
            services: Some(vec![service_info(service, outcome.challenge)]),
        },
        NextStep::Enrolment(services) => LoginResponse {
            status: LoginStatus::EnrollmentRequired,
            services: Some(services.into_iter().map(|s| service_info(s, None)).collect()),
        },
    };
    Ok((session_cookie(&app, Some(&outcome.session_token)), Json(response)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    code: String,
}

/// Step two: the code from the authenticator app.
#[utoipa::path(post, path = "/api/v1/login/second-factor", request_body = CodeRequest,
    responses((status = 200, body = StatusResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn second_factor(
    State(app): State<App>,
    AwaitingSecondFactor(caller): AwaitingSecondFactor,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Response, Error> {
    let verdict = app
        .verify_second_factor(
            &caller.session,
            &caller.account,
            &Answer::Code(body.code),
            caller.remote(),
        )
        .await?;
    let status = match verdict {
        Verdict::Accepted => LoginStatus::Authenticated,
        Verdict::Pending => LoginStatus::SecondFactorRequired,
    };
    Ok(Json(StatusResponse { status }).into_response())
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

/// Step two with the backup code; answers with the next backup code.
#[utoipa::path(post, path = "/api/v1/login/backup-code", request_body = BackupCodeRequest,
    responses((status = 200, body = BackupCodeLoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn backup_code(
    State(app): State<App>,
    AwaitingSecondFactor(caller): AwaitingSecondFactor,
    ApiJson(body): ApiJson<BackupCodeRequest>,
) -> Result<Json<BackupCodeLoginResponse>, Error> {
    let next = app
        .login_with_backup_code(&caller.session, &caller.account, &body.backup_code, caller.remote())
        .await?;
    Ok(Json(BackupCodeLoginResponse {
        status: LoginStatus::Authenticated,
        new_backup_code: next.display(),
    }))
}

/// Ends the session, whatever its stage.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(app): State<App>, AnySession(caller): AnySession) -> Result<Response, Error> {
    app.logout(&caller.session, caller.remote()).await?;
    Ok((StatusCode::NO_CONTENT, session_cookie(&app, None)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    username: String,
    kind: AccountKind,
    role: Option<Role>,
    two_factor: TwoFactorStatus,
}

#[derive(Serialize, ToSchema)]
pub struct TwoFactorStatus {
    enabled: bool,
    service: Option<String>,
}

/// The signed-in account.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(app): State<App>, SignedIn(caller): SignedIn) -> Result<Json<Me>, Error> {
    let enrolled = app.store.two_factor(caller.account.id).await?;
    Ok(Json(Me {
        username: caller.account.username,
        kind: caller.account.kind,
        role: caller.account.role,
        two_factor: TwoFactorStatus {
            enabled: enrolled.is_some(),
            service: enrolled.map(|e| e.service),
        },
    }))
}

/// The services enabled for my kind of account.
#[utoipa::path(get, path = "/api/v1/me/two-factor/services", responses((status = 200, body = [ServiceInfo])))]
pub async fn my_services(
    State(app): State<App>,
    Enrolling(caller): Enrolling,
) -> Result<Json<Vec<ServiceInfo>>, Error> {
    let services = app.services_for(&caller.account).await?;
    Ok(Json(services.into_iter().map(|s| service_info(s, None)).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct TotpEnrollment {
    otpauth_uri: String,
    /// Base32, for typing into an app by hand.
    secret: String,
    /// The same, in groups of four.
    secret_grouped: String,
    qr_svg: String,
    qr_png_base64: String,
}

/// "Get Started" with Time-Based Tokens: a new secret, not active until confirmed.
#[utoipa::path(post, path = "/api/v1/me/two-factor/totp/enrollment",
    responses((status = 200, body = TotpEnrollment), (status = 409, body = ErrorBody)))]
pub async fn totp_enrollment(
    State(app): State<App>,
    Enrolling(caller): Enrolling,
) -> Result<Json<TotpEnrollment>, Error> {
    let EnrolmentSetup::Totp {
        otpauth_uri, secret, ..
    } = app
        .begin_enrolment(&caller.session, &caller.account, ServiceId::Totp, caller.remote())
        .await?;
    Ok(Json(TotpEnrollment {
        qr_svg: qr::svg(&otpauth_uri)?,
        qr_png_base64: data_encoding::BASE64.encode(&qr::png(&otpauth_uri)?),
        secret_grouped: grouped_secret(&secret),
        otpauth_uri,
        secret,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodeResponse {
    /// Shown once: record it in a safe place.
    backup_code: String,
}

/// "Submit": the first code activates Time-Based Tokens; answers with the backup code.
#[utoipa::path(post, path = "/api/v1/me/two-factor/totp/enrollment/confirm", request_body = CodeRequest,
    responses((status = 200, body = BackupCodeResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn totp_enrollment_confirm(
    State(app): State<App>,
    Enrolling(caller): Enrolling,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Json<BackupCodeResponse>, Error> {
    let code = app
        .confirm_enrolment(
            &caller.session,
            &caller.account,
            ServiceId::Totp,
            &Answer::Code(body.code),
            caller.remote(),
        )
        .await?;
    Ok(Json(BackupCodeResponse {
        backup_code: code.display(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordRequest {
    password: String,
}

/// Turns off my 2FA; my password is required.
#[utoipa::path(post, path = "/api/v1/me/two-factor/disable", request_body = PasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_two_factor(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<StatusCode, Error> {
    app.disable_own_two_factor(&caller.session, &caller.account, &body.password, caller.remote())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes my password; my other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_password(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, Error> {
    app.change_password(
        &caller.session,
        &caller.account,
        &body.current_password,
        &body.new_password,
        caller.remote(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SettingsResponse {
    #[serde(flatten)]
    settings: TwoFactorSettings,
    /// The server's clock, in UTC: codes are checked against it.
    server_time_utc: String,
}

/// System settings > Two-Factor Authentication (full administrators).
#[utoipa::path(get, path = "/api/v1/admin/two-factor/settings",
    responses((status = 200, body = SettingsResponse), (status = 403, body = ErrorBody)))]
pub async fn get_settings(State(app): State<App>, SignedIn(caller): SignedIn) -> Result<Json<SettingsResponse>, Error> {
    crate::services::admin::require_full_admin(&caller.account)?;
    Ok(Json(SettingsResponse {
        settings: app.two_factor_settings().await?,
        server_time_utc: utc_text(app.now()),
    }))
}

/// Saves System settings > Two-Factor Authentication (full administrators).
#[utoipa::path(put, path = "/api/v1/admin/two-factor/settings", request_body = TwoFactorSettings,
    responses((status = 200, body = SettingsResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<TwoFactorSettings>,
) -> Result<Json<SettingsResponse>, Error> {
    app.save_two_factor_settings(&caller.account, &body, caller.remote())
        .await?;
    Ok(Json(SettingsResponse {
        settings: body,
        server_time_utc: utc_text(app.now()),
    }))
}

pub fn utc_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct KindQuery {
    kind: AccountKind,
}

/// The Administrators or Clients list, with each account's 2FA status.
#[utoipa::path(get, path = "/api/v1/admin/accounts", params(KindQuery),
    responses((status = 200, body = [AccountSummary]), (status = 403, body = ErrorBody)))]
pub async fn list_accounts(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Query(query): Query<KindQuery>,
) -> Result<Json<Vec<AccountSummary>>, Error> {
    Ok(Json(app.list_accounts(&caller.account, query.kind).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewAccountRequest {
    kind: AccountKind,
    username: String,
    email: Option<String>,
    password: String,
    /// Administrators only: `full` or `staff` (the default).
    role: Option<Role>,
}

/// Creates an administrator or a client (full administrators).
#[utoipa::path(post, path = "/api/v1/admin/accounts", request_body = NewAccountRequest,
    responses((status = 201, body = Created), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_account(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<NewAccountRequest>,
) -> Result<Response, Error> {
    crate::services::admin::require_full_admin(&caller.account)?;
    let request = AccountRequest {
        kind: body.kind,
        role: body.role,
        username: &body.username,
        email: body.email.as_deref(),
        password: &body.password,
    };
    let id = app.create_account(&request).await?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

/// Turns off an account's 2FA (full administrators; 2FA cannot be turned on for someone).
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/two-factor/disable", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn admin_disable_two_factor(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
) -> Result<StatusCode, Error> {
    app.admin_disable_two_factor(&caller.account, id, caller.remote())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts an account's lockout (full administrators).
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/unlock", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlock(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
) -> Result<StatusCode, Error> {
    app.unlock(&caller.account, id, caller.remote()).await?;
    Ok(StatusCode::NO_CONTENT)
}
