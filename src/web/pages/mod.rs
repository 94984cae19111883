//! The admin area (`/admin`) and the client area (`/`): server-rendered pages that work
//! without JavaScript, sharing the service calls of the JSON API.
//!
//! Both areas have the same login and account pages; handlers take the area as a const
//! generic (`ADMIN`). Every form carries a CSRF token: the session's once signed in, a
//! double-submit cookie before (the login and setup forms).

mod account;
mod admin;
mod applications;
mod enrolment_link;
mod login;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use subtle::ConstantTimeEq;

use super::api::utc_text;
use super::session::{cookie, remote_addr, session_token, Caller};
use crate::app::App;
use crate::core::policy::ServiceId;
use crate::core::policy::{AccountKind, Role};
use crate::random;
use crate::services::factors::Choice;
use crate::services::{Answer, Challenge, Error};
use crate::store::Stage;

pub fn routes() -> Router<App> {
    let mut router = Router::new()
        .route("/", get(login::client_home))
        .route("/admin", get(admin::dashboard))
        .route("/admin/setup", get(admin::setup_page).post(admin::setup))
        .route(
            "/admin/settings/two-factor",
            get(admin::settings_page).post(admin::save_settings),
        )
        .route(
            "/admin/settings/yubikeys",
            get(admin::yubikeys_page).post(admin::import_yubikeys),
        )
        .route("/admin/administrators", get(admin::administrators))
        .route("/admin/clients", get(admin::clients))
        .route(
            "/admin/accounts/{id}/two-factor/disable",
            post(admin::disable_two_factor),
        )
        .route("/admin/accounts/{id}/unlock", post(admin::unlock))
        .route(
            "/admin/applications",
            get(applications::applications_page).post(applications::create),
        )
        .route("/admin/applications/{id}/keys", post(applications::issue_key))
        .route(
            "/admin/applications/{id}/keys/{key_id}/revoke",
            post(applications::revoke_key),
        )
        .route("/admin/applications/{id}/active", post(applications::set_active))
        .route("/admin/applications/{id}/policy", post(applications::set_policy))
        .route(
            "/enroll/{token}",
            get(enrolment_link::link_page).post(enrolment_link::use_link),
        )
        .route(crate::services::factors::duo::CALLBACK_PATH, get(login::duo_callback))
        .route("/static/style.css", get(style))
        .route("/static/poll.js", get(poll_script));
    for (prefix, admin) in [("/admin", true), ("", false)] {
        let path = |suffix: &str| format!("{prefix}{suffix}");
        router = if admin {
            area_routes::<true>(router, path)
        } else {
            area_routes::<false>(router, path)
        };
    }
    router
}

fn area_routes<const ADMIN: bool>(router: Router<App>, path: impl Fn(&str) -> String) -> Router<App> {
    router
        .route(
            &path("/login"),
            get(login::login_page::<ADMIN>).post(login::login::<ADMIN>),
        )
        .route(
            &path("/login/code"),
            get(login::code_page::<ADMIN>).post(login::code::<ADMIN>),
        )
        .route(
            &path("/login/backup"),
            get(login::backup_page::<ADMIN>).post(login::backup::<ADMIN>),
        )
        .route(&path("/logout"), post(login::logout::<ADMIN>))
        .route(&path("/account"), get(account::account_page::<ADMIN>))
        .route(&path("/account/two-factor/start"), post(account::start::<ADMIN>))
        .route(&path("/account/two-factor/totp"), get(account::enrolment_page::<ADMIN>))
        .route(
            &path("/account/two-factor/yubikey"),
            get(account::enrolment_page::<ADMIN>),
        )
        .route(&path("/account/two-factor/duo"), get(account::enrolment_page::<ADMIN>))
        .route(&path("/account/two-factor/confirm"), post(account::confirm::<ADMIN>))
        .route(&path("/account/two-factor/disable"), post(account::disable::<ADMIN>))
        .route(
            &path("/account/two-factor/credentials/{id}/rename"),
            post(account::rename::<ADMIN>),
        )
        .route(
            &path("/account/two-factor/credentials/{id}/remove"),
            post(account::remove::<ADMIN>),
        )
}

async fn style() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    (headers, include_str!("../../../static/style.css")).into_response()
}

async fn poll_script() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    (headers, include_str!("../../../static/poll.js")).into_response()
}

/// A challenge that is not a typed code, as `challenge.html` shows it: its forms post to
/// `action` (the login's or the enrolment's).
pub struct ChallengeView {
    /// `choose`, `redirect` (the user continues at the service), or `wait` (an approval
    /// or an activation).
    kind: &'static str,
    service: &'static str,
    service_name: &'static str,
    action: String,
    options: Vec<Choice>,
    passcode: bool,
    notice: Option<String>,
    prompt: String,
    link: String,
    qr_png_base64: Option<String>,
}

impl ChallengeView {
    /// The view of `challenge`; `None` for a typed code (the pages show their own field).
    pub fn of(challenge: Challenge, service: ServiceId, action: String) -> Result<Option<ChallengeView>, Error> {
        let mut view = ChallengeView {
            kind: "wait",
            service: service.as_str(),
            service_name: service.display_name(),
            action,
            options: Vec::new(),
            passcode: false,
            notice: None,
            prompt: String::new(),
            link: String::new(),
            qr_png_base64: None,
        };
        match challenge {
            Challenge::Choose {
                options,
                passcode,
                notice,
            } => {
                view.kind = "choose";
                (view.options, view.passcode, view.notice) = (options, passcode, notice);
            }
            Challenge::Approval { prompt } => view.prompt = prompt,
            Challenge::Activate { link } => {
                view.qr_png_base64 = Some(data_encoding::BASE64.encode(&super::qr::png(&link)?));
                view.prompt = "Waiting for Duo Mobile to be activated…".into();
                view.link = link;
            }
            Challenge::Redirect { url } => {
                view.kind = "redirect";
                view.link = url;
            }
            Challenge::TypedCode { .. } | Challenge::Browser { .. } => return Ok(None),
        }
        Ok(Some(view))
    }
}

/// The answer a challenge's form sent: a poll, a choice, or a typed code.
pub fn answer_of(poll: Option<&str>, option: Option<String>, code: Option<String>) -> Answer {
    match (poll, option, code) {
        (Some(_), _, _) => Answer::Poll,
        (None, Some(option), _) => Answer::Choose { option },
        (None, None, code) => Answer::Code(code.unwrap_or_default()),
    }
}

/// Which area a page belongs to.
#[derive(Clone, Copy)]
pub struct Area {
    kind: AccountKind,
}

impl Area {
    pub const fn of<const ADMIN: bool>() -> Area {
        Area {
            kind: if ADMIN { AccountKind::Admin } else { AccountKind::Client },
        }
    }

    pub fn prefix(self) -> &'static str {
        match self.kind {
            AccountKind::Admin => "/admin",
            AccountKind::Client => "",
        }
    }

    fn name(self) -> &'static str {
        match self.kind {
            AccountKind::Admin => "Admin Area",
            AccountKind::Client => "Client Area",
        }
    }

    /// Where a signed-in user lands.
    pub fn home(self) -> &'static str {
        match self.kind {
            AccountKind::Admin => "/admin",
            AccountKind::Client => "/account",
        }
    }

    fn path(self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix())
    }
}

/// What the page frame (`base.html`) shows.
pub struct Layout {
    pub title: String,
    pub area_name: &'static str,
    pub prefix: &'static str,
    pub home: &'static str,
    pub user: Option<String>,
    pub is_admin: bool,
    pub is_full_admin: bool,
    pub csrf: String,
    pub server_time: Moment,
    /// For administrators: this server's clock is off from Duo's (what to tell them).
    pub clock_warning: Option<String>,
}

/// A moment shown on a page: RFC 3339 for `<time datetime>`, and `2026-11-25 08:55:19 UTC`
/// for people.
pub struct Moment {
    pub machine: String,
    pub text: String,
}

impl Moment {
    pub fn at(unix: i64) -> Moment {
        let machine = utc_text(unix);
        let text = machine.replace('T', " ").replace('Z', " UTC");
        Moment { machine, text }
    }
}

impl Layout {
    fn new(app: &App, area: Area, title: &str, caller: Option<&Caller>) -> Layout {
        // The navigation is for signed-in users only, not for half-logged-in ones.
        let signed_in = caller.filter(|c| c.session.stage == Stage::Authenticated);
        Layout {
            title: title.into(),
            area_name: area.name(),
            prefix: area.prefix(),
            home: area.home(),
            user: signed_in.map(|c| c.account.username.clone()),
            is_admin: signed_in.is_some_and(|c| c.account.kind == AccountKind::Admin),
            is_full_admin: signed_in.is_some_and(|c| c.account.role == Some(Role::Full)),
            csrf: caller.map(|c| c.session.csrf_token.clone()).unwrap_or_default(),
            server_time: Moment::at(app.now()),
            clock_warning: signed_in
                .filter(|c| c.account.kind == AccountKind::Admin)
                .and_then(|_| clock_warning(app)),
        }
    }
}

/// The banner an administrator sees when the last comparison found this server's clock
/// off from Duo's: both times in UTC, the offset, and what to do.
fn clock_warning(app: &App) -> Option<String> {
    let reading = (*app.duo_clock.lock().ok()?)?;
    reading.is_off().then(|| {
        format!(
            "This server's clock is off from Duo's by {} seconds (when checked: this server {}, Duo {}). \
             Duo refuses the requests of a server whose clock is too far off: synchronise this server with NTP.",
            reading.offset_secs,
            Moment::at(reading.at).text,
            Moment::at(reading.at + reading.offset_secs).text,
        )
    })
}

pub fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => Error::Internal(format!("template: {error}")).into_response(),
    }
}

/// 303 See Other: after a form, the browser loads the next page with GET.
pub fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

#[derive(Template)]
#[template(path = "message_page.html")]
pub struct MessagePage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    link: Option<(String, String)>,
}

/// A page that only says something (an error, a confirmation) and offers a way on.
pub fn message_page(
    app: &App,
    area: Area,
    caller: Option<&Caller>,
    status: StatusCode,
    title: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let link = Some((area.home().to_string(), "Continue".to_string()));
    render(
        status,
        MessagePage {
            layout: Layout::new(app, area, title, caller),
            error,
            notice,
            link,
        },
    )
}

/// An error that stops a page, shown as a page (or a redirect to the login).
pub fn error_page(app: &App, area: Area, caller: Option<&Caller>, error: Error) -> Response {
    if matches!(error, Error::Unauthenticated) {
        return see_other(&area.path("/login"));
    }
    let status = error.status();
    message_page(app, area, caller, status, "Sorry", Some(error.public_message()), None)
}

/// The caller's session, if any (any stage); a database failure becomes an error page.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<App> for MaybeCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let token = match session_token(app, &parts.headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(MaybeCaller(None)),
            Err(error) => return Err(error_page(app, Area::of::<false>(), None, error)),
        };
        match app.session(&token).await {
            Ok(found) => Ok(MaybeCaller(
                found.map(|found| Caller::new(found, remote_addr(app, parts))),
            )),
            Err(error) => Err(error_page(app, Area::of::<false>(), None, error)),
        }
    }
}

impl MaybeCaller {
    /// Lets the caller through if its session belongs to `area` and is at one of `stages`;
    /// otherwise sends it where it must go: the login, the second-factor page, or the
    /// enrolment that a forced user must finish first.
    pub fn require(self, area: Area, stages: &[Stage]) -> Result<Caller, Redirect> {
        let Some(caller) = self.0.filter(|c| c.account.kind == area.kind) else {
            return Err(Redirect::to(&area.path("/login")));
        };
        if stages.contains(&caller.session.stage) {
            return Ok(caller);
        }
        Err(Redirect::to(&match caller.session.stage {
            Stage::SecondFactor => area.path("/login/code"),
            Stage::Enrolment | Stage::LinkEnrolment => area.path("/account"),
            Stage::Authenticated => area.home().to_string(),
        }))
    }
}

impl MaybeCaller {
    /// A form post: the caller must be at one of `stages`, and the form must carry its
    /// session's CSRF token (otherwise the answer is an error page).
    pub fn posting(self, app: &App, area: Area, stages: &[Stage], csrf: &str) -> Result<Caller, Response> {
        let caller = self.require(area, stages).map_err(IntoResponse::into_response)?;
        match check_csrf(&caller, csrf) {
            Ok(()) => Ok(caller),
            Err(error) => Err(error_page(app, area, Some(&caller), error)),
        }
    }
}

pub const SIGNED_IN: &[Stage] = &[Stage::Authenticated];
pub const SIGNED_IN_OR_ENROLLING: &[Stage] = &[Stage::Authenticated, Stage::Enrolment, Stage::LinkEnrolment];
pub const ANY_STAGE: &[Stage] = &[
    Stage::Authenticated,
    Stage::Enrolment,
    Stage::SecondFactor,
    Stage::LinkEnrolment,
];

/// Checks a signed-in form's CSRF token against the session's.
fn check_csrf(caller: &Caller, submitted: &str) -> Result<(), Error> {
    if bool::from(caller.session.csrf_token.as_bytes().ct_eq(submitted.as_bytes())) {
        Ok(())
    } else {
        Err(Error::Validation(
            "This form has expired. Reload the page and try again.".into(),
        ))
    }
}

const CSRF_COOKIE: &str = "twofold_csrf";

/// The double-submit token for forms shown before login: reused from its cookie, or new.
pub fn anonymous_csrf(app: &App, headers: &HeaderMap) -> Result<(String, Option<HeaderValue>), Error> {
    let name = app.config.cookie_name(CSRF_COOKIE);
    if let Some(token) = cookie(headers, &name) {
        return Ok((token, None));
    }
    let token = random::token()?;
    let secure = app.config.cookie_security();
    let cookie = HeaderValue::from_str(&format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"))
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok((token, Some(cookie)))
}

pub fn check_anonymous_csrf(app: &App, headers: &HeaderMap, submitted: &str) -> Result<(), Error> {
    match cookie(headers, &app.config.cookie_name(CSRF_COOKIE)) {
        Some(token) if bool::from(token.as_bytes().ct_eq(submitted.as_bytes())) => Ok(()),
        _ => Err(Error::Validation(
            "This form has expired. Reload the page and try again.".into(),
        )),
    }
}

pub fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}
