//! My Account (admin area) and Security Settings (client area): enrolment in a second
//! factor, its backup code, and turning it off.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::login::{ended, signed_in, BackupCodePage};
use super::{
    answer_of, error_page, message_page, render, see_other, Area, ChallengeView, Layout, MaybeCaller, Moment,
    SIGNED_IN, SIGNED_IN_OR_ENROLLING,
};
use crate::app::App;
use crate::core::otpauth::grouped_secret;
use crate::core::policy::{AccountKind, ServiceId};
use crate::services::enrolment::{Enrolled, MAX_CREDENTIALS};
use crate::services::{EnrolmentSetup, Error};
use crate::store::Stage;
use crate::web::qr;
use crate::web::session::Caller;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    credentials: Vec<CredentialRow>,
    services: Vec<(&'static str, &'static str)>,
    can_add: bool,
    /// Made to enrol before anything else (after a password, or by an enrolment link).
    forced: bool,
    /// Here by an application's enrolment link (only to enrol): the account's name.
    by_link: Option<String>,
}

/// One of the account's second factors, as its owner sees it.
struct CredentialRow {
    id: i64,
    label: String,
    service: &'static str,
    enrolled_at: Moment,
    last_used_at: Option<Moment>,
}

fn title(area: Area) -> &'static str {
    match area.kind {
        AccountKind::Admin => "My Account",
        AccountKind::Client => "Security Settings",
    }
}

async fn account_form(
    app: &App,
    area: Area,
    caller: &Caller,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let credentials: Vec<CredentialRow> = match app.two_factor_overview(&caller.account).await {
        Ok(overview) => overview
            .credentials
            .into_iter()
            .map(|c| CredentialRow {
                id: c.id,
                label: c.label,
                service: c.service.display_name(),
                enrolled_at: Moment::at(c.enrolled_at),
                last_used_at: c.last_used_at.map(Moment::at),
            })
            .collect(),
        Err(error) => return error_page(app, area, Some(caller), error),
    };
    let services = match app.services_for(&caller.account).await {
        Ok(services) => services.into_iter().map(|s| (s.as_str(), s.display_name())).collect(),
        Err(error) => return error_page(app, area, Some(caller), error),
    };
    let page = AccountPage {
        layout: Layout::new(app, area, title(area), Some(caller)),
        error,
        notice,
        can_add: credentials.len() < MAX_CREDENTIALS,
        credentials,
        services,
        forced: matches!(caller.session.stage, Stage::Enrolment | Stage::LinkEnrolment),
        by_link: (caller.session.stage == Stage::LinkEnrolment).then(|| caller.account.username.clone()),
    };
    render(status, page)
}

fn failure(error: &Error) -> (StatusCode, Option<String>) {
    (error.status(), Some(error.public_message()))
}

/// The account page again, after a form: with its notice, or with the error.
async fn account_form_after(app: &App, area: Area, caller: &Caller, outcome: Result<&str, Error>) -> Response {
    match outcome {
        Ok(notice) => account_form(app, area, caller, StatusCode::OK, None, Some(notice.to_string())).await,
        Err(error) => {
            let (status, message) = failure(&error);
            account_form(app, area, caller, status, message, None).await
        }
    }
}

pub async fn account_page<const ADMIN: bool>(State(app): State<App>, caller: MaybeCaller) -> Response {
    let area = Area::of::<ADMIN>();
    match caller.require(area, SIGNED_IN_OR_ENROLLING) {
        Ok(caller) => account_form(&app, area, &caller, StatusCode::OK, None, None).await,
        Err(redirect) => redirect.into_response(),
    }
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf: String,
    enable: Option<String>,
    service: Option<String>,
    label: Option<String>,
    /// Required when 2FA is already on (adding another second factor).
    password: Option<String>,
}

/// "Get Started" (or "Add"): the chosen service's enrolment begins, then its page shows it.
pub async fn start<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Form(form): Form<StartForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.posting(&app, area, SIGNED_IN_OR_ENROLLING, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let result = async {
        if form.enable.is_none() {
            return Err(Error::Validation(
                "Toggle Two-Factor Authentication on, then choose a service.".into(),
            ));
        }
        let service = form
            .service
            .as_deref()
            .and_then(ServiceId::parse)
            .ok_or_else(|| Error::Validation("Choose a service.".into()))?;
        app.begin_enrolment(
            &caller.session,
            &caller.account,
            service,
            form.label.as_deref(),
            form.password.as_deref(),
            caller.remote(),
        )
        .await
        .map(|setup| (service, setup))
    }
    .await;
    match result {
        // Each service's enrolment page is named after it (`/account/two-factor/totp`).
        Ok((service, _)) => see_other(&area.path(&format!("/account/two-factor/{}", service.as_str()))),
        Err(error) => account_form_after(&app, area, &caller, Err(error)).await,
    }
}

#[derive(Template)]
#[template(path = "enrol_totp.html")]
struct TotpPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    qr_png_base64: String,
    secret_grouped: String,
    digits: u32,
    touch_key: bool,
}

#[derive(Template)]
#[template(path = "enrol_yubikey.html")]
struct YubikeyPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    digits: u32,
    touch_key: bool,
}

#[derive(Template)]
#[template(path = "enrol_duo.html")]
struct ChallengePage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    view: ChallengeView,
}

/// The page of the enrolment this session has in progress, whichever its service.
async fn enrolment_form(app: &App, area: Area, caller: &Caller, status: StatusCode, error: Option<String>) -> Response {
    let (service, setup) = match app.pending_enrolment_setup(&caller.session, &caller.account).await {
        Ok(Some(found)) => found,
        Ok(None) => return see_other(&area.path("/account")),
        Err(error) => return error_page(app, area, Some(caller), error),
    };
    let (otpauth_uri, secret, digits) = match setup {
        EnrolmentSetup::Totp {
            otpauth_uri,
            secret,
            digits,
        } => (otpauth_uri, secret, digits),
        EnrolmentSetup::Yubikey => {
            let page = YubikeyPage {
                layout: Layout::new(app, area, "YubiKey", Some(caller)),
                error,
                notice: None,
                digits: 0,
                touch_key: true,
            };
            return render(status, page);
        }
        EnrolmentSetup::Challenge(challenge) => {
            let view = match ChallengeView::of(challenge, service, area.path("/account/two-factor/confirm")) {
                Ok(Some(view)) => view,
                Ok(None) => {
                    return error_page(
                        app,
                        area,
                        Some(caller),
                        Error::Internal("no view of a challenge".into()),
                    )
                }
                Err(error) => return error_page(app, area, Some(caller), error),
            };
            let page = ChallengePage {
                layout: Layout::new(app, area, service.display_name(), Some(caller)),
                error,
                notice: None,
                view,
            };
            return render(status, page);
        }
    };
    let png = match qr::png(&otpauth_uri) {
        Ok(png) => png,
        Err(error) => return error_page(app, area, Some(caller), error),
    };
    let page = TotpPage {
        layout: Layout::new(app, area, "Time-Based Tokens", Some(caller)),
        error,
        notice: None,
        qr_png_base64: data_encoding::BASE64.encode(&png),
        secret_grouped: grouped_secret(&secret),
        digits,
        touch_key: false,
    };
    render(status, page)
}

pub async fn enrolment_page<const ADMIN: bool>(State(app): State<App>, caller: MaybeCaller) -> Response {
    let area = Area::of::<ADMIN>();
    match caller.require(area, SIGNED_IN_OR_ENROLLING) {
        Ok(caller) => enrolment_form(&app, area, &caller, StatusCode::OK, None).await,
        Err(redirect) => redirect.into_response(),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    /// A typed code or passcode.
    code: Option<String>,
    /// One of a challenge's choices (a Duo push, a call, passcodes by text message).
    option: Option<String>,
    /// "Check now": an approval or activation that is waiting.
    poll: Option<String>,
    /// The service being enrolled (Time-Based Tokens if absent).
    service: Option<String>,
}

/// "Submit": the code activates the service; the backup code is shown once.
pub async fn confirm<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Form(form): Form<CodeForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.posting(&app, area, SIGNED_IN_OR_ENROLLING, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let service = form.service.as_deref().map_or(Some(ServiceId::Totp), ServiceId::parse);
    let result = match service {
        Some(service) => {
            app.confirm_enrolment(
                &caller.session,
                &caller.account,
                service,
                &answer_of(form.poll.as_deref(), form.option, form.code),
                caller.remote(),
            )
            .await
        }
        None => Err(Error::Validation("There is no such second factor.".into())),
    };
    enrolment_answered(&app, area, &caller, service, result).await
}

/// The page after an answer to an enrolment (a form's, or Duo's through the browser).
pub(super) async fn enrolment_answered(
    app: &App,
    area: Area,
    caller: &Caller,
    service: Option<ServiceId>,
    result: Result<Enrolled, Error>,
) -> Response {
    let by_link = caller.session.stage == Stage::LinkEnrolment;
    match result {
        Ok(Enrolled::Done {
            backup_code: Some(backup_code),
            session_token,
            ..
        }) => {
            let page = render(
                StatusCode::OK,
                BackupCodePage {
                    layout: Layout::new(app, area, "Two-Factor Authentication is on", None),
                    heading: "Two-Factor Authentication is on",
                    explanation: match service {
                        Some(ServiceId::Yubikey) => "From now on, you will touch your YubiKey every time you log in.",
                        Some(ServiceId::Duo) => "From now on, Duo Security will ask you every time you log in.",
                        _ => "From now on, you will enter a code from your authenticator app every time you log in.",
                    },
                    backup_code: backup_code.display(),
                    continue_url: (!by_link).then(|| area.home()),
                },
            );
            // A forced user's enrolment completed the login, under a new session token; an
            // enrolment link's session has ended.
            match (session_token, by_link) {
                (Some(token), _) => signed_in(app, page, &token),
                (None, true) => ended(app, page),
                (None, false) => page,
            }
        }
        Ok(Enrolled::Done { backup_code: None, .. }) if by_link => message_page(
            app,
            area,
            None,
            StatusCode::OK,
            "Two-Factor Authentication is on",
            None,
            Some("Your new second factor is ready. You can close this page and go back to the application that sent you here.".into()),
        ),
        Ok(Enrolled::Done { backup_code: None, .. }) => {
            account_form_after(app, area, caller, Ok("Your new authenticator is ready to use.")).await
        }
        // 202: still waiting (what poll.js asks again on); the page shows the kept state.
        Ok(Enrolled::Pending) => enrolment_form(app, area, caller, StatusCode::ACCEPTED, None).await,
        Ok(Enrolled::Next(_)) => enrolment_form(app, area, caller, StatusCode::OK, None).await,
        Err(error @ Error::Conflict(_)) => account_form_after(app, area, caller, Err(error)).await,
        Err(error) => {
            let (status, message) = failure(&error);
            enrolment_form(app, area, caller, status, message).await
        }
    }
}

#[derive(Deserialize)]
pub struct DisableForm {
    csrf: String,
    password: String,
}

pub async fn disable<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Form(form): Form<DisableForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.posting(&app, area, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let result = app
        .disable_own_two_factor(&caller.session, &caller.account, &form.password, caller.remote())
        .await;
    let outcome = result.map(|()| "Two-Factor Authentication is now off.");
    account_form_after(&app, area, &caller, outcome).await
}

#[derive(Deserialize)]
pub struct RenameForm {
    csrf: String,
    label: String,
}

pub async fn rename<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<RenameForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.posting(&app, area, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let result = app
        .rename_credential(&caller.session, &caller.account, id, &form.label, caller.remote())
        .await;
    let outcome = result.map(|()| "The second factor was renamed.");
    account_form_after(&app, area, &caller, outcome).await
}

pub async fn remove<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<DisableForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.posting(&app, area, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let result = app
        .remove_credential(&caller.session, &caller.account, id, &form.password, caller.remote())
        .await;
    let outcome = result.map(|last| match last {
        true => "That was your last second factor: Two-Factor Authentication is now off.",
        false => "The second factor was removed.",
    });
    account_form_after(&app, area, &caller, outcome).await
}
