//! Sessions over HTTP: the `twofold_session` cookie (HttpOnly, SameSite=Lax; over TLS Secure
//! and named `__Host-twofold_session`) names a row in the database; the token itself is
//! never stored.
//!
//! Extractors state what a handler needs, and refuse the rest before the handler runs:
//! - [`SignedIn`]: both factors done. A half-logged-in session gets 401
//!   `second_factor_required` (or 403 `enrollment_required` when it must enrol first),
//!   whatever way its token is presented.
//! - [`Enrolling`]: signed in, or a forced user who must enrol now.
//! - [`AwaitingSecondFactor`]: the password is done and the second factor is due.
//! - [`AnySession`]: any live session (to log out).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::app::App;
use crate::services::Error;
use crate::store::{Account, LiveSession, SecondStep, Session, Stage};

pub const COOKIE_NAME: &str = "twofold_session";

/// The caller's session, account and address.
pub struct Caller {
    pub session: Session,
    pub account: Account,
    /// What the second step reads, read with the session while it is at that step.
    pub second_step: Option<SecondStep>,
    pub remote: Option<String>,
}

impl Caller {
    pub fn new(found: LiveSession, remote: Option<String>) -> Caller {
        Caller {
            session: found.session,
            account: found.account,
            second_step: found.second_step,
            remote,
        }
    }

    pub fn remote(&self) -> Option<&str> {
        self.remote.as_deref()
    }
}

/// The session cookie's token. Two of them are refused, never resolved by picking one: a
/// cookie planted from a sibling domain or a path would otherwise decide whose session this is.
pub fn session_token(app: &App, headers: &HeaderMap) -> Result<Option<String>, Error> {
    let name = app.config.cookie_name(COOKIE_NAME);
    let mut tokens = cookies(headers, &name);
    match (tokens.next(), tokens.next()) {
        (Some(_), Some(_)) => Err(Error::AmbiguousSession),
        (first, _) => Ok(first),
    }
}

/// The value of the cookie `name`, from any `Cookie` header (the first, if it is repeated).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookies(headers, name).next()
}

fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The client's address: the peer's, unless the peer is one of the `trusted_proxies`; then
/// the nearest address in `X-Forwarded-For` (read from the right) that is not one of them.
/// What a client writes there itself is never believed: only the entries its trusted proxies
/// appended are walked.
pub fn remote_addr(app: &App, parts: &Parts) -> Option<String> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    let is_trusted = |ip: &IpAddr| app.trusted_proxies.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if is_trusted(&peer) {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else { break };
            client = ip;
            if !is_trusted(&ip) {
                break;
            }
        }
    }
    Some(client.to_string())
}

/// `Set-Cookie` for a new session, or (with `None`) to delete it.
pub fn session_cookie(app: &App, token: Option<&str>) -> HeaderMap {
    let (name, secure) = (app.config.cookie_name(COOKIE_NAME), app.config.cookie_security());
    let value = match token {
        Some(token) => format!("{name}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(SET_COOKIE, value);
    }
    headers
}

async fn caller(parts: &Parts, app: &App) -> Result<Caller, Error> {
    let token = session_token(app, &parts.headers)?.ok_or(Error::Unauthenticated)?;
    let found = app.session(&token).await?.ok_or(Error::Unauthenticated)?;
    Ok(Caller::new(found, remote_addr(app, parts)))
}

fn stage_error(stage: Stage) -> Error {
    match stage {
        Stage::SecondFactor => Error::SecondFactorRequired,
        Stage::Enrolment | Stage::LinkEnrolment => Error::EnrollmentRequired,
        Stage::Authenticated => Error::Conflict("You are already logged in.".into()),
    }
}

macro_rules! session_extractor {
    ($(#[$doc:meta])* $name:ident, $allowed:pat) => {
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl FromRequestParts<App> for $name {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
                let caller = caller(parts, app).await?;
                match caller.session.stage {
                    $allowed => Ok($name(caller)),
                    other => Err(stage_error(other)),
                }
            }
        }
    };
}

session_extractor!(
    /// Both factors done.
    SignedIn, Stage::Authenticated);
session_extractor!(
    /// Signed in, or made to enrol before anything else (or only to enrol: an enrolment
    /// link's session).
    Enrolling, Stage::Authenticated | Stage::Enrolment | Stage::LinkEnrolment);
session_extractor!(
    /// Password done, second factor due.
    AwaitingSecondFactor, Stage::SecondFactor);

/// Any live session.
pub struct AnySession(pub Caller);

impl FromRequestParts<App> for AnySession {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        Ok(AnySession(caller(parts, app).await?))
    }
}
