//! System Settings > Applications: register applications, issue and revoke their keys,
//! suspend them (full administrators). A new key is shown on the page that made it, once.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::{error_page, render, Layout, MaybeCaller, SIGNED_IN};
use crate::app::App;
use crate::core::applications::{Kinds, Scope};
use crate::services::admin::Operator;
use crate::services::applications::{ApplicationSummary, KeySummary, NewApplication};
use crate::services::Error;
use crate::web::session::Caller;

const ADMIN: super::Area = super::Area::of::<true>();

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    /// A key just issued, shown this once.
    new_key: Option<String>,
    applications: Vec<ApplicationSummary>,
}

impl ApplicationsPage {
    fn when(&self, at: &i64) -> String {
        crate::web::api::utc_text(*at)
    }

    fn scopes(&self, application: &ApplicationSummary) -> String {
        let scopes: Vec<&str> = application.scopes.iter().map(|s| s.as_str()).collect();
        scopes.join(", ")
    }

    fn networks(&self, application: &ApplicationSummary) -> String {
        match application.networks.is_empty() {
            true => "anywhere".into(),
            false => application.networks.join(", "),
        }
    }

    fn key_state(&self, key: &KeySummary) -> String {
        match (key.revoked_at, key.expires_at) {
            (Some(at), _) => format!("revoked {}", self.when(&at)),
            (None, Some(at)) => format!("live until {}", self.when(&at)),
            (None, None) => "live".into(),
        }
    }
}

/// The page after `result`: the new key (if any) shown once, or the error.
async fn page_after(app: &App, caller: &Caller, result: Result<Option<String>, Error>, notice: &str) -> Response {
    let (status, error, notice, new_key) = match result {
        Ok(key) => (StatusCode::OK, None, Some(notice.to_string()), key),
        Err(error) => (error.status(), Some(error.public_message()), None, None),
    };
    match app.applications(Operator::Administrator(&caller.account)).await {
        Ok(applications) => render(
            status,
            ApplicationsPage {
                layout: Layout::new(app, ADMIN, "Applications", Some(caller)),
                error,
                notice,
                new_key,
                applications,
            },
        ),
        Err(error) => error_page(app, ADMIN, Some(caller), error),
    }
}

pub async fn applications_page(State(app): State<App>, caller: MaybeCaller) -> Response {
    match caller.require(ADMIN, SIGNED_IN) {
        Ok(caller) => page_after(&app, &caller, Ok(None), "").await.into_response(),
        Err(redirect) => redirect.into_response(),
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
    kinds: String,
    scope_check: Option<String>,
    scope_challenge: Option<String>,
    scope_accounts: Option<String>,
    networks: String,
    allow_unenrolled: Option<String>,
}

pub async fn create(State(app): State<App>, caller: MaybeCaller, Form(form): Form<CreateForm>) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let ticked = [
        (form.scope_check.is_some(), Scope::Check),
        (form.scope_challenge.is_some(), Scope::Challenge),
        (form.scope_accounts.is_some(), Scope::Accounts),
    ];
    let new = NewApplication {
        name: form.name,
        kinds: Kinds::parse(&form.kinds).unwrap_or(Kinds::Client),
        scopes: ticked
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, scope)| scope)
            .collect(),
        networks: form
            .networks
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        allow_unenrolled: form.allow_unenrolled.is_some(),
    };
    let by = Operator::Administrator(&caller.account);
    let result = app
        .create_application(&new, by, caller.remote())
        .await
        .map(|(_, key)| Some(key.key));
    page_after(&app, &caller, result, "Application registered.").await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn issue_key(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let by = Operator::Administrator(&caller.account);
    let result = app
        .issue_application_key(id, None, by, caller.remote())
        .await
        .map(|key| Some(key.key));
    page_after(&app, &caller, result, "Key issued.").await
}

pub async fn revoke_key(
    State(app): State<App>,
    caller: MaybeCaller,
    Path((id, key_id)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let by = Operator::Administrator(&caller.account);
    let result = app
        .revoke_application_key(id, &key_id, by, caller.remote())
        .await
        .map(|()| None);
    page_after(&app, &caller, result, "Key revoked: it no longer works.").await
}

#[derive(Deserialize)]
pub struct ActiveForm {
    csrf: String,
    active: bool,
}

pub async fn set_active(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<ActiveForm>,
) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let by = Operator::Administrator(&caller.account);
    let result = app
        .set_application_active(id, form.active, by, caller.remote())
        .await
        .map(|()| None);
    let notice = if form.active {
        "Application active again."
    } else {
        "Application suspended: its keys no longer work."
    };
    page_after(&app, &caller, result, notice).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    allow_unenrolled: bool,
}

pub async fn set_policy(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<PolicyForm>,
) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let by = Operator::Administrator(&caller.account);
    let result = app
        .set_application_allow_unenrolled(id, form.allow_unenrolled, by, caller.remote())
        .await
        .map(|()| None);
    let notice = if form.allow_unenrolled {
        "Its users without a second factor now pass."
    } else {
        "Its users without a second factor must now enrol."
    };
    page_after(&app, &caller, result, notice).await
}
