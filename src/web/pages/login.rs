//! Login pages of both areas: password, then the code (or the backup code), then home.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::{
    anonymous_csrf, answer_of, check_anonymous_csrf, error_page, render, see_other, with_cookie, Area, ChallengeView,
    Layout, MaybeCaller, ANY_STAGE, SIGNED_IN,
};
use crate::app::App;
use crate::core::policy::{NextStep, ServiceId};
use crate::services::{Answer, Challenge, Error, Verdict};
use crate::store::Stage;
use crate::web::session::{session_cookie, Caller};
use crate::web::Remote;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    username: String,
    csrf: String,
}

fn login_form(
    app: &App,
    area: Area,
    headers: &HeaderMap,
    status: StatusCode,
    username: String,
    error: Option<String>,
) -> Response {
    let (csrf, cookie) = match anonymous_csrf(app, headers) {
        Ok(found) => found,
        Err(error) => return error_page(app, area, None, error),
    };
    let title = match area.kind {
        crate::core::policy::AccountKind::Admin => "Administrator Login",
        crate::core::policy::AccountKind::Client => "Login",
    };
    let page = LoginPage {
        layout: Layout::new(app, area, title, None),
        error,
        notice: None,
        username,
        csrf,
    };
    with_cookie(render(status, page), cookie)
}

pub async fn client_home(caller: MaybeCaller) -> Response {
    match caller.require(Area::of::<false>(), SIGNED_IN) {
        Ok(_) => see_other("/account"),
        Err(redirect) => redirect.into_response(),
    }
}

pub async fn login_page<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    headers: HeaderMap,
) -> Response {
    let area = Area::of::<ADMIN>();
    if ADMIN && matches!(app.store.has_admin().await, Ok(false)) {
        return see_other("/admin/setup");
    }
    if caller.0.as_ref().is_some_and(|c| c.account.kind == area.kind) {
        // Already (half-)logged in: go on from where the login stands.
        if let Err(next_page) = caller.require(area, &[]) {
            return next_page.into_response();
        }
    }
    login_form(&app, area, &headers, StatusCode::OK, String::new(), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

pub async fn login<const ADMIN: bool>(
    State(app): State<App>,
    Remote(remote): Remote,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    if let Err(error) = check_anonymous_csrf(&app, &headers, &form.csrf) {
        return login_form(
            &app,
            area,
            &headers,
            StatusCode::FORBIDDEN,
            form.username,
            Some(error.public_message()),
        );
    }
    match app
        .login(area.kind, &form.username, &form.password, remote.as_deref())
        .await
    {
        Ok(outcome) => {
            let next = match outcome.next {
                NextStep::Authenticated => area.home().to_string(),
                NextStep::SecondFactor(_) => area.path("/login/code"),
                NextStep::Enrolment(_) => area.path("/account"),
            };
            let mut response = see_other(&next);
            response
                .headers_mut()
                .extend(session_cookie(&app, Some(&outcome.session_token)));
            response
        }
        Err(error) => {
            let status = error.status();
            login_form(
                &app,
                area,
                &headers,
                status,
                form.username,
                Some(error.public_message()),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct CodePage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    digits: u32,
    /// A key that types its code (YubiKey), not an app's digits.
    touch_key: bool,
    service: &'static str,
    /// The labels of the credentials a code is checked against, when there are several.
    credentials: Option<String>,
    /// The account's other services ("Use another method").
    others: Vec<(&'static str, &'static str)>,
    /// A challenge that is not a typed code (Duo Security's choices, an approval waiting).
    view: Option<ChallengeView>,
    /// The service cannot be used for this login now (the error says why): no form for it.
    unavailable: bool,
}

/// The second step's page for `service` (the first method by default): the challenge
/// `shown` (what the last answer led to), or a new one from the service.
async fn code_form(
    app: &App,
    area: Area,
    caller: &Caller,
    service: Option<ServiceId>,
    status: StatusCode,
    error: Option<String>,
    shown: Option<Challenge>,
) -> Response {
    let found = match shown {
        Some(challenge) => app
            .login_methods(&caller.account)
            .await
            .map(|methods| (methods, Some(Ok(challenge)))),
        None => {
            app.second_factor_methods(&caller.session, &caller.account, service, caller.remote())
                .await
        }
    };
    let (methods, challenge) = match found {
        Ok(found) => found,
        Err(error) => return error_page(app, area, Some(caller), error),
    };
    let Some(current) = service.or(methods.first().map(|m| m.service)) else {
        return see_other(&area.path("/login"));
    };
    let (mut status, mut error, mut unavailable, mut digits, mut view) = (status, error, false, 6, None);
    match challenge {
        Some(Ok(Challenge::TypedCode { length })) => digits = length,
        Some(Ok(other)) => match ChallengeView::of(other, current, area.path("/login/code")) {
            Ok(shown) => view = shown,
            Err(error) => return error_page(app, area, Some(caller), error),
        },
        Some(Err(trouble)) => {
            if error.is_none() {
                (status, error) = (trouble.status(), Some(trouble.public_message()));
            }
            unavailable = true;
        }
        None => {}
    }
    let labels: Vec<&str> = methods
        .iter()
        .filter(|m| m.service == current)
        .map(|m| m.label.as_str())
        .collect();
    let mut others: Vec<(&'static str, &'static str)> = Vec::new();
    for method in methods.iter().filter(|m| m.service != current) {
        let other = (method.service.as_str(), method.service.display_name());
        if !others.contains(&other) {
            others.push(other);
        }
    }
    let page = CodePage {
        layout: Layout::new(app, area, "Two-Factor Authentication", Some(caller)),
        error,
        notice: None,
        digits,
        touch_key: current == ServiceId::Yubikey,
        service: current.as_str(),
        credentials: (labels.len() > 1).then(|| labels.join(", ")),
        others,
        view,
        unavailable,
    };
    render(status, page)
}

#[derive(Deserialize)]
pub struct MethodQuery {
    service: Option<String>,
}

/// The service the user chose, if any; a name this server does not know is refused.
fn chosen_service(name: Option<&str>) -> Result<Option<ServiceId>, Error> {
    match name.filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(name) => ServiceId::parse(name)
            .map(Some)
            .ok_or_else(|| Error::Validation("There is no such second factor.".into())),
    }
}

pub async fn code_page<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Query(query): Query<MethodQuery>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.require(area, &[Stage::SecondFactor]) {
        Ok(caller) => caller,
        Err(redirect) => return redirect.into_response(),
    };
    match chosen_service(query.service.as_deref()) {
        Ok(service) => code_form(&app, area, &caller, service, StatusCode::OK, None, None).await,
        Err(error) => error_page(&app, area, Some(&caller), error),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    /// A typed code or passcode.
    code: Option<String>,
    /// One of a challenge's choices (a Duo push, a call, passcodes by text message).
    option: Option<String>,
    /// "Check now": an approval that is waiting.
    poll: Option<String>,
    service: Option<String>,
}

pub async fn code<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Form(form): Form<CodeForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let mut caller = match caller.posting(&app, area, &[Stage::SecondFactor], &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let service = match chosen_service(form.service.as_deref()) {
        Ok(service) => service,
        Err(error) => return error_page(&app, area, Some(&caller), error),
    };
    let result = app
        .verify_second_factor(
            &caller.session,
            &caller.account,
            caller.second_step.take(),
            service,
            &answer_of(form.poll.as_deref(), form.option, form.code),
            caller.remote(),
        )
        .await;
    match result {
        Ok(Verdict::Accepted { session_token }) => signed_in(&app, see_other(area.home()), &session_token),
        // 202: still waiting (what poll.js asks again on).
        Ok(Verdict::Pending) => {
            let still = Challenge::Approval {
                prompt: "Still waiting for your approval…".into(),
            };
            code_form(&app, area, &caller, service, StatusCode::ACCEPTED, None, Some(still)).await
        }
        Ok(Verdict::Next(challenge)) => {
            code_form(&app, area, &caller, service, StatusCode::OK, None, Some(challenge)).await
        }
        Err(Error::Unauthenticated) => see_other(&area.path("/login")),
        Err(error) => {
            let status = error.status();
            code_form(&app, area, &caller, service, status, Some(error.public_message()), None).await
        }
    }
}

#[derive(Template)]
#[template(path = "backup_login.html")]
struct BackupLoginPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn backup_page<const ADMIN: bool>(State(app): State<App>, caller: MaybeCaller) -> Response {
    let area = Area::of::<ADMIN>();
    match caller.require(area, &[Stage::SecondFactor]) {
        Ok(caller) => render(
            StatusCode::OK,
            BackupLoginPage {
                layout: Layout::new(&app, area, "Login using Backup Code", Some(&caller)),
                error: None,
                notice: None,
            },
        ),
        Err(redirect) => redirect.into_response(),
    }
}

#[derive(Deserialize)]
pub struct BackupForm {
    csrf: String,
    backup_code: String,
}

#[derive(Template)]
#[template(path = "backup_code.html")]
pub struct BackupCodePage {
    pub layout: Layout,
    pub heading: &'static str,
    pub explanation: &'static str,
    pub backup_code: String,
    /// Where "Close" goes; none after an enrolment link, whose session has ended.
    pub continue_url: Option<&'static str>,
}

pub async fn backup<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Form(form): Form<BackupForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    let caller = match caller.posting(&app, area, &[Stage::SecondFactor], &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let result = app
        .login_with_backup_code(&caller.session, &caller.account, &form.backup_code, caller.remote())
        .await;
    match result {
        Ok((next, session_token)) => {
            let page = render(
                StatusCode::OK,
                BackupCodePage {
                    layout: Layout::new(&app, area, "Your new Backup Code", None),
                    heading: "Your new Backup Code",
                    explanation:
                        "You logged in with your backup code, which cannot be used again. This is your new backup code.",
                    backup_code: next.display(),
                    continue_url: Some(area.home()),
                },
            );
            signed_in(&app, page, &session_token)
        }
        Err(Error::Unauthenticated) => see_other(&area.path("/login")),
        Err(error) => {
            let status = error.status();
            let layout = Layout::new(&app, area, "Login using Backup Code", Some(&caller));
            render(
                status,
                BackupLoginPage {
                    layout,
                    error: Some(error.public_message()),
                    notice: None,
                },
            )
        }
    }
}

/// The page after a completed login, with the cookie of the session's new token.
pub fn signed_in(app: &App, mut page: Response, session_token: &str) -> Response {
    page.headers_mut().extend(session_cookie(app, Some(session_token)));
    page
}

/// A page after which the session has ended: its cookie goes.
pub fn ended(app: &App, mut page: Response) -> Response {
    page.headers_mut().extend(session_cookie(app, None));
    page
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout<const ADMIN: bool>(
    State(app): State<App>,
    caller: MaybeCaller,
    Form(form): Form<CsrfForm>,
) -> Response {
    let area = Area::of::<ADMIN>();
    if caller.0.is_some() {
        let caller = match caller.posting(&app, area, ANY_STAGE, &form.csrf) {
            Ok(caller) => caller,
            Err(page) => return page,
        };
        if let Err(error) = app.logout(&caller.session, caller.remote()).await {
            return error_page(&app, area, Some(&caller), error);
        }
    }
    ended(&app, see_other(&area.path("/login")))
}

#[derive(Deserialize)]
pub struct DuoCallbackQuery {
    state: Option<String>,
    duo_code: Option<String>,
}

/// Where Duo's Universal Prompt sends the browser back (`?state=...&duo_code=...`): it
/// completes the session's login, or its enrolment in Duo, whichever area it is in. The
/// `state` is checked against the one kept for this session before anything else.
pub async fn duo_callback(
    State(app): State<App>,
    caller: MaybeCaller,
    Query(query): Query<DuoCallbackQuery>,
) -> Response {
    let Some(kind) = caller.0.as_ref().map(|c| c.account.kind) else {
        return error_page(
            &app,
            Area::of::<false>(),
            None,
            Error::Validation("Your login expired while Duo Security was asking you. Log in again.".into()),
        );
    };
    let area = Area { kind };
    let mut caller = match caller.require(area, ANY_STAGE) {
        Ok(caller) => caller,
        Err(redirect) => return redirect.into_response(),
    };
    let answer = Answer::Callback {
        state: query.state.unwrap_or_default(),
        code: query.duo_code.unwrap_or_default(),
    };
    let service = Some(ServiceId::Duo);
    if caller.session.stage != Stage::SecondFactor {
        let result = app
            .confirm_enrolment(
                &caller.session,
                &caller.account,
                ServiceId::Duo,
                &answer,
                caller.remote(),
            )
            .await;
        return super::account::enrolment_answered(&app, area, &caller, service, result).await;
    }
    match app
        .verify_second_factor(
            &caller.session,
            &caller.account,
            caller.second_step.take(),
            service,
            &answer,
            caller.remote(),
        )
        .await
    {
        Ok(Verdict::Accepted { session_token }) => signed_in(&app, see_other(area.home()), &session_token),
        Ok(Verdict::Pending | Verdict::Next(_)) => see_other(&area.path("/login/code?service=duo")),
        Err(error) => {
            let status = error.status();
            code_form(&app, area, &caller, service, status, Some(error.public_message()), None).await
        }
    }
}
