//! Applications: the administrators' registry (`/admin/applications`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::core::applications::{Kinds, Scope};
use crate::services::admin::Operator;
use crate::services::applications::{ApplicationSummary, IssuedKey, NewApplication};
use crate::services::Error;
use crate::web::error::ErrorBody;
use crate::web::session::SignedIn;
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
    /// Whether its users without a second factor may pass (`preauth` answers `allow`);
    /// `false` by default: they must enrol.
    #[serde(default)]
    allow_unenrolled: bool,
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
        allow_unenrolled: body.allow_unenrolled,
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
    active: Option<bool>,
    /// Whether its users without a second factor may pass (`preauth` answers `allow`).
    allow_unenrolled: Option<bool>,
}

/// Suspends an application or makes it active again; changes whether its users without a
/// second factor may pass.
#[utoipa::path(patch, path = "/api/v1/admin/applications/{id}", params(("id" = i64, Path)),
    request_body = ApplicationChange,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change(
    State(app): State<App>,
    SignedIn(caller): SignedIn,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<ApplicationChange>,
) -> Result<StatusCode, Error> {
    if body.active.is_none() && body.allow_unenrolled.is_none() {
        return Err(Error::Validation("Give active, allow_unenrolled, or both.".into()));
    }
    let by = || Operator::Administrator(&caller.account);
    if let Some(active) = body.active {
        app.set_application_active(id, active, by(), caller.remote()).await?;
    }
    if let Some(allow) = body.allow_unenrolled {
        app.set_application_allow_unenrolled(id, allow, by(), caller.remote())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
