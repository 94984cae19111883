//! Administration: the Two-Factor Authentication settings and the accounts.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{utc_text, Created};
use crate::app::App;
use crate::core::policy::{AccountKind, Role, TwoFactorSettings};
use crate::services::admin::{AccountRequest, Operator};
use crate::services::Error;
use crate::store::{AccountSummary, ImportedKeySummary};
use crate::web::error::ErrorBody;
use crate::web::session::SignedIn;
use crate::web::ApiJson;

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

/// What `PUT` takes: the document `GET` answers, unchanged or edited. Its read-only part
/// (`server_time_utc`) is accepted and ignored; any other unknown field is refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    services: crate::core::policy::Services,
    force_clients: bool,
    force_admins: bool,
    /// Read-only: ignored.
    #[serde(default)]
    #[allow(dead_code)]
    server_time_utc: Option<String>,
}

/// Saves System settings > Two-Factor Authentication (full administrators).
#[utoipa::path(put, path = "/api/v1/admin/two-factor/settings", request_body = SettingsRequest,
    responses((status = 200, body = SettingsResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<SettingsRequest>,
) -> Result<Json<SettingsResponse>, Error> {
    let settings = TwoFactorSettings {
        services: body.services,
        force_clients: body.force_clients,
        force_admins: body.force_admins,
    };
    app.save_two_factor_settings(&caller.account, &settings, caller.remote())
        .await?;
    Ok(Json(SettingsResponse {
        settings,
        server_time_utc: utc_text(app.now()),
    }))
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
    let request = AccountRequest {
        kind: body.kind,
        role: body.role,
        username: &body.username,
        email: body.email.as_deref(),
        password: &body.password,
    };
    let id = app
        .admin_create_account(&caller.account, &caller.session, &request, caller.remote())
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

/// Turns off an account's 2FA (full administrators; 2FA cannot be turned on for someone).
#[utoipa::path(post, path = "/api/v1/admin/accounts/{id}/two-factor/disable", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn admin_disable_two_factor(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
) -> Result<StatusCode, Error> {
    app.admin_disable_two_factor(&caller.account, &caller.session, id, caller.remote())
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
    app.unlock(&caller.account, &caller.session, id, caller.remote())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The YubiKeys imported for the local mode, with whom each is assigned to and who enrolled
/// it (full administrators).
#[utoipa::path(get, path = "/api/v1/admin/yubikeys",
    responses((status = 200, body = [ImportedKeySummary]), (status = 403, body = ErrorBody)))]
pub async fn list_yubikeys(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
) -> Result<Json<Vec<ImportedKeySummary>>, Error> {
    Ok(Json(
        app.list_imported_yubikeys(Operator::Administrator(&caller.account))
            .await?,
    ))
}

/// The account imported keys are assigned to.
#[derive(Deserialize, ToSchema)]
pub struct AssignTo {
    kind: AccountKind,
    /// Username or e-mail address.
    name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ImportYubikeysRequest {
    /// Key lines as YubiKey Manager writes them (`--config-output`): `serial,public ID,
    /// private ID,AES key,...`, one per key.
    keys: String,
    /// Without it, the first account that touches a key may enrol it.
    assign_to: Option<AssignTo>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportYubikeysResponse {
    imported: usize,
}

/// Imports YubiKeys with their AES secrets for the local mode (full administrators). All or
/// nothing: a bad line, or a key already imported, imports none.
#[utoipa::path(post, path = "/api/v1/admin/yubikeys", request_body = ImportYubikeysRequest,
    responses((status = 200, body = ImportYubikeysResponse), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such account to assign to"),
              (status = 409, body = ErrorBody, description = "A key is already imported"), (status = 422, body = ErrorBody)))]
pub async fn import_yubikeys(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    ApiJson(body): ApiJson<ImportYubikeysRequest>,
) -> Result<Json<ImportYubikeysResponse>, Error> {
    let assign_to = body.assign_to.as_ref().map(|a| (a.kind, a.name.as_str()));
    let imported = app
        .import_yubikeys(
            &body.keys,
            assign_to,
            Operator::Administrator(&caller.account),
            caller.remote(),
        )
        .await?;
    Ok(Json(ImportYubikeysResponse { imported }))
}
