//! My account: who I am, my second factor (enrolment, disabling it) and my password.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{service_info, utc_text, AnswerRequest, ChallengeInfo, ServiceInfo};
use crate::app::App;
use crate::core::otpauth::grouped_secret;
use crate::core::policy::{AccountKind, Role, ServiceId};
use crate::services::enrolment::Enrolled;
use crate::services::{EnrolmentSetup, Error};
use crate::web::error::ErrorBody;
use crate::web::session::{session_cookie, Enrolling, SignedIn};
use crate::web::{qr, ApiJson, ApiJsonOrEmpty};

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
    let overview = app.two_factor_overview(&caller.account).await?;
    let first = overview.credentials.first();
    Ok(Json(Me {
        username: caller.account.username,
        kind: caller.account.kind,
        role: caller.account.role,
        two_factor: TwoFactorStatus {
            enabled: first.is_some(),
            service: first.map(|c| c.service.as_str().to_string()),
        },
    }))
}

#[derive(Serialize, ToSchema)]
pub struct TwoFactorResponse {
    enabled: bool,
    credentials: Vec<CredentialResponse>,
    /// When the current backup code was issued; null without 2FA.
    backup_code: Option<BackupCodeInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct CredentialResponse {
    id: i64,
    service: ServiceId,
    label: String,
    /// RFC 3339, UTC.
    enrolled_at: String,
    /// RFC 3339, UTC; null if never used to log in.
    last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodeInfo {
    issued_at: String,
}

/// My second factor: every credential, and when my backup code was issued.
#[utoipa::path(get, path = "/api/v1/me/two-factor",
    responses((status = 200, body = TwoFactorResponse), (status = 401, body = ErrorBody)))]
pub async fn two_factor(State(app): State<App>, SignedIn(caller): SignedIn) -> Result<Json<TwoFactorResponse>, Error> {
    let overview = app.two_factor_overview(&caller.account).await?;
    Ok(Json(TwoFactorResponse {
        enabled: !overview.credentials.is_empty(),
        credentials: overview
            .credentials
            .into_iter()
            .map(|c| CredentialResponse {
                id: c.id,
                service: c.service,
                label: c.label,
                enrolled_at: utc_text(c.enrolled_at),
                last_used_at: c.last_used_at.map(utc_text),
            })
            .collect(),
        backup_code: overview.backup_code_issued_at.map(|at| BackupCodeInfo {
            issued_at: utc_text(at),
        }),
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

/// A service named in a path: an unknown one is a 404, as for any unknown endpoint.
fn service_in_path(name: &str) -> Result<ServiceId, Error> {
    ServiceId::parse(name).ok_or_else(|| Error::NotFound(format!("There is no second-factor service {name}.")))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct EnrollmentRequest {
    /// The name to show for this credential ("Phone"); the service's name by default.
    label: Option<String>,
    /// Required when two-factor authentication is already on (adding another credential).
    password: Option<String>,
}

/// What an enrolment shows, by service.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EnrollmentResponse {
    /// Scan the QR code with an authenticator app, or type the secret.
    Totp {
        otpauth_uri: String,
        /// Base32, for typing into an app by hand.
        secret: String,
        /// The same, in groups of four.
        secret_grouped: String,
        qr_svg: String,
        qr_png_base64: String,
    },
    /// Touch the YubiKey, and send the code it types to the confirmation.
    Yubikey {
        /// The most characters a YubiKey's code has.
        max_length: u32,
    },
    /// Answer this challenge as at a login (Duo Security: activate Duo Mobile, then
    /// approve a push or type a passcode once).
    Challenge { challenge: ChallengeInfo },
}

/// "Get Started" (or add another credential): starts enrolling in `service`, for this
/// session; nothing is active until confirmed. The body may be left out for a first enrolment.
#[utoipa::path(post, path = "/api/v1/me/two-factor/{service}/enrollment", params(("service" = String, Path)),
    request_body = EnrollmentRequest,
    responses((status = 200, body = EnrollmentResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn enrollment(
    State(app): State<App>,
    Enrolling(caller): Enrolling,
    Path(service): Path<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<EnrollmentRequest>,
) -> Result<Json<EnrollmentResponse>, Error> {
    let service = service_in_path(&service)?;
    let setup = app
        .begin_enrolment(
            &caller.session,
            &caller.account,
            service,
            body.label.as_deref(),
            body.password.as_deref(),
            caller.remote(),
        )
        .await?;
    Ok(Json(match setup {
        EnrolmentSetup::Totp {
            otpauth_uri, secret, ..
        } => EnrollmentResponse::Totp {
            qr_svg: qr::svg(&otpauth_uri)?,
            qr_png_base64: data_encoding::BASE64.encode(&qr::png(&otpauth_uri)?),
            secret_grouped: grouped_secret(&secret),
            otpauth_uri,
            secret,
        },
        EnrolmentSetup::Yubikey => EnrollmentResponse::Yubikey {
            max_length: crate::core::yubico_otp::MAX_LENGTH as u32,
        },
        EnrolmentSetup::Challenge(challenge) => EnrollmentResponse::Challenge {
            challenge: challenge.into(),
        },
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    Enabled,
    /// Not proved yet (an approval still waiting): send the answer again later.
    Pending,
}

#[derive(Serialize, ToSchema)]
pub struct EnrollmentConfirmResponse {
    status: EnrollmentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<i64>,
    /// The first credential's backup code, shown once: record it in a safe place. Adding
    /// another credential issues none.
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_code: Option<String>,
    /// With `pending`: what to answer next, if it changed (the activation is done, a push
    /// was sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<ChallengeInfo>,
}

/// "Submit": the answer proves the credential works and activates it.
#[utoipa::path(post, path = "/api/v1/me/two-factor/{service}/enrollment/confirm", params(("service" = String, Path)),
    request_body = AnswerRequest,
    responses((status = 200, body = EnrollmentConfirmResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody, description = "The second factor's outside service refuses this server's configuration"),
              (status = 503, body = ErrorBody, description = "The second factor's outside service cannot be reached")))]
pub async fn enrollment_confirm(
    State(app): State<App>,
    Enrolling(caller): Enrolling,
    Path(service): Path<String>,
    ApiJson(body): ApiJson<AnswerRequest>,
) -> Result<Response, Error> {
    let service = service_in_path(&service)?;
    let enrolled = app
        .confirm_enrolment(&caller.session, &caller.account, service, &body.into(), caller.remote())
        .await?;
    Ok(match enrolled {
        Enrolled::Done {
            credential_id,
            backup_code,
            session_token,
        } => {
            let answer = Json(EnrollmentConfirmResponse {
                status: EnrollmentStatus::Enabled,
                credential_id: Some(credential_id),
                backup_code: backup_code.map(|code| code.display()),
                challenge: None,
            });
            // A forced user's enrolment completed the login, under a new session token.
            match session_token {
                Some(token) => (session_cookie(&app, Some(&token)), answer).into_response(),
                None => answer.into_response(),
            }
        }
        Enrolled::Pending => Json(EnrollmentConfirmResponse {
            status: EnrollmentStatus::Pending,
            credential_id: None,
            backup_code: None,
            challenge: None,
        })
        .into_response(),
        Enrolled::Next(challenge) => Json(EnrollmentConfirmResponse {
            status: EnrollmentStatus::Pending,
            credential_id: None,
            backup_code: None,
            challenge: Some(challenge.into()),
        })
        .into_response(),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct RenameRequest {
    label: String,
}

/// Renames one of my credentials.
#[utoipa::path(patch, path = "/api/v1/me/two-factor/credentials/{id}", params(("id" = i64, Path)),
    request_body = RenameRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rename_credential(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<RenameRequest>,
) -> Result<StatusCode, Error> {
    app.rename_credential(&caller.session, &caller.account, id, &body.label, caller.remote())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one of my credentials (my password is required); my other sessions end.
/// Removing the last one turns two-factor authentication off, unless it is required for my
/// kind of account (409).
#[utoipa::path(post, path = "/api/v1/me/two-factor/credentials/{id}/remove", params(("id" = i64, Path)),
    request_body = PasswordRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_credential(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<StatusCode, Error> {
    app.remove_credential(&caller.session, &caller.account, id, &body.password, caller.remote())
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
