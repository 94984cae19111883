//! My account: who I am, my second factor (enrolment, disabling it) and my password.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{service_info, CodeRequest, ServiceInfo};
use crate::app::App;
use crate::core::otpauth::grouped_secret;
use crate::core::policy::{AccountKind, Role, ServiceId};
use crate::services::{Answer, EnrolmentSetup, Error};
use crate::web::error::ErrorBody;
use crate::web::session::{Enrolling, SignedIn};
use crate::web::{qr, ApiJson};

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
