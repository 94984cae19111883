//! Calls to Duo Security's Auth API over HTTPS: signed as Duo's own clients sign them
//! (`core::duo_sign`, version 5), read as `core::duo_api` reads answers, and bounded in
//! time so that a Duo outage never holds a request for long.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::core::duo_api::{
    read_activation, read_activation_status, read_answer, read_auth_result, read_preauth, read_txid, Activation,
    ActivationStatus, AuthResult, DuoFailure, Preauth,
};
use crate::core::duo_oidc;
use crate::core::duo_sign::sign_v5;
use crate::random;

/// What identifies Twofold to Duo: an Auth API application's keys and host.
pub struct Integration<'a> {
    /// `api-XXXXXXXX.duosecurity.com`, or `host:port`.
    pub api_hostname: &'a str,
    pub integration_key: &'a str,
    pub secret_key: &'a SecretString,
}

/// A Web SDK application of Duo's (the Universal Prompt): its Client ID and secret, and
/// Duo's host.
pub struct WebSdk<'a> {
    pub api_hostname: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
}

impl WebSdk<'_> {
    fn oidc(&self) -> duo_oidc::Client<'_> {
        duo_oidc::Client {
            client_id: self.client_id,
            client_secret: self.client_secret.expose_secret(),
            api_host: self.api_hostname,
        }
    }
}

/// A second factor of Duo's to start.
pub enum AuthFactor<'a> {
    /// A push to Duo Mobile on `device` (a device id, or `auto`).
    Push { device: &'a str },
    /// A phone call to `device`.
    Phone { device: &'a str },
    /// New passcodes by text message to `device` (never itself a login: the user types one).
    Sms { device: &'a str },
    /// A passcode the user typed (Duo Mobile, a token, a text message, a bypass code).
    Passcode(&'a str),
}

/// What `/auth/v2/auth` gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStarted {
    /// Asynchronous: the transaction to poll.
    Transaction(String),
    Done(AuthResult),
}

/// The HTTPS client every call to Duo goes through.
#[derive(Clone)]
pub struct DuoApi {
    http: reqwest::Client,
}

impl DuoApi {
    /// Trusts the system's roots, and the PEM certificates of `extra_roots` if given (a
    /// private validation server, a proxy that re-signs, the tests' double); every call
    /// ends after `timeout`.
    pub fn new(extra_roots: Option<&Path>, timeout: Duration) -> Result<DuoApi, String> {
        let builder = super::http_client(extra_roots, timeout.min(Duration::from_secs(5)))?
            .https_only(true)
            .timeout(timeout);
        let http = builder.build().map_err(|e| format!("the HTTPS client: {e}"))?;
        Ok(DuoApi { http })
    }

    /// `/auth/v2/ping` (not signed): Duo's clock, in Unix seconds.
    pub async fn ping(&self, api_hostname: &str) -> Result<i64, DuoFailure> {
        let request = self.http.get(format!("https://{api_hostname}/auth/v2/ping"));
        duo_time(&self.send(request).await?)
    }

    /// `/auth/v2/check`: whether Duo accepts the integration (keys, host, application
    /// kind, this server's clock); Duo's clock, in Unix seconds.
    pub async fn check(&self, integration: &Integration<'_>, now: i64) -> Result<i64, DuoFailure> {
        duo_time(&self.call(integration, "GET", "/auth/v2/check", &[], now).await?)
    }

    /// `/auth/v2/preauth`: may `username` log in, and with what. `ipaddr`: the user's
    /// address, for Duo's address-based policies.
    pub async fn preauth(
        &self,
        integration: &Integration<'_>,
        username: &str,
        ipaddr: Option<&str>,
        now: i64,
    ) -> Result<Preauth, DuoFailure> {
        let mut params = vec![("username", username)];
        params.extend(ipaddr.map(|ip| ("ipaddr", ip)));
        read_preauth(&self.call(integration, "POST", "/auth/v2/preauth", &params, now).await?)
    }

    /// `/auth/v2/auth`: starts `factor` for `username`. A push or a call is asynchronous
    /// (its transaction is polled with [`DuoApi::auth_status`]); a passcode or a batch of
    /// text messages is answered at once.
    pub async fn auth(
        &self,
        integration: &Integration<'_>,
        username: &str,
        factor: &AuthFactor<'_>,
        ipaddr: Option<&str>,
        now: i64,
    ) -> Result<AuthStarted, DuoFailure> {
        let mut params = vec![("username", username)];
        params.extend(ipaddr.map(|ip| ("ipaddr", ip)));
        let asynchronous = match factor {
            AuthFactor::Push { device } => {
                params.extend([("factor", "push"), ("device", *device), ("type", "Login")]);
                true
            }
            AuthFactor::Phone { device } => {
                params.extend([("factor", "phone"), ("device", *device)]);
                true
            }
            AuthFactor::Sms { device } => {
                params.extend([("factor", "sms"), ("device", *device)]);
                false
            }
            AuthFactor::Passcode(passcode) => {
                params.extend([("factor", "passcode"), ("passcode", *passcode)]);
                false
            }
        };
        params.push(("async", if asynchronous { "1" } else { "0" }));
        let response = self.call(integration, "POST", "/auth/v2/auth", &params, now).await?;
        match asynchronous {
            true => Ok(AuthStarted::Transaction(read_txid(&response)?)),
            false => Ok(AuthStarted::Done(read_auth_result(&response)?)),
        }
    }

    /// `/auth/v2/auth_status`: where the transaction `txid` stands.
    pub async fn auth_status(
        &self,
        integration: &Integration<'_>,
        txid: &str,
        now: i64,
    ) -> Result<AuthResult, DuoFailure> {
        read_auth_result(
            &self
                .call(integration, "GET", "/auth/v2/auth_status", &[("txid", txid)], now)
                .await?,
        )
    }

    /// `/auth/v2/enroll`: a new Duo user `username` and its activation for Duo Mobile.
    pub async fn enroll(
        &self,
        integration: &Integration<'_>,
        username: &str,
        valid_secs: u32,
        now: i64,
    ) -> Result<Activation, DuoFailure> {
        let valid_secs = valid_secs.to_string();
        let params = [("username", username), ("valid_secs", valid_secs.as_str())];
        read_activation(&self.call(integration, "POST", "/auth/v2/enroll", &params, now).await?)
    }

    /// `/auth/v2/enroll_status`: whether Duo Mobile has activated, for the `user_id` and
    /// `activation_code` of an [`Activation`].
    pub async fn enroll_status(
        &self,
        integration: &Integration<'_>,
        user_id: &str,
        activation_code: &str,
        now: i64,
    ) -> Result<ActivationStatus, DuoFailure> {
        let params = [("user_id", user_id), ("activation_code", activation_code)];
        read_activation_status(
            &self
                .call(integration, "POST", "/auth/v2/enroll_status", &params, now)
                .await?,
        )
    }

    /// The Universal Prompt's health check: whether Duo accepts the application (its
    /// client assertion); Duo's clock, in Unix seconds.
    pub async fn health_check(&self, app: &WebSdk<'_>, now: i64) -> Result<i64, DuoFailure> {
        const ENDPOINT: &str = "/oauth/v1/health_check";
        let assertion = self.client_assertion(app, ENDPOINT, now)?;
        let form = [("client_id", app.client_id), ("client_assertion", assertion.as_str())];
        let request = self
            .http
            .post(format!("https://{}{ENDPOINT}", app.api_hostname))
            .form(&form);
        let response = self.send(request).await?;
        response
            .get("timestamp")
            .and_then(Value::as_i64)
            .ok_or_else(|| DuoFailure::Garbled("no timestamp in the answer".into()))
    }

    /// The Universal Prompt's token exchange: the `id_token` for the code Duo sent the
    /// browser back with (to check with `duo_oidc::Client::check_id_token`).
    pub async fn exchange_code(
        &self,
        app: &WebSdk<'_>,
        code: &str,
        redirect_uri: &str,
        now: i64,
    ) -> Result<String, DuoFailure> {
        const ENDPOINT: &str = "/oauth/v1/token";
        let assertion = self.client_assertion(app, ENDPOINT, now)?;
        // A form body, as Duo's Go client sends it: the code never lands in a URL log.
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", app.client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let request = self
            .http
            .post(format!("https://{}{ENDPOINT}", app.api_hostname))
            .form(&form);
        let (status, _, body) = self.fetch(request).await?;
        duo_oidc::read_token_answer(status, &body)
    }

    fn client_assertion(&self, app: &WebSdk<'_>, endpoint: &str, now: i64) -> Result<String, DuoFailure> {
        let jti = random::alphanumeric(36).map_err(|e| DuoFailure::Unreachable(e.to_string()))?;
        app.oidc()
            .client_assertion(endpoint, &jti, now)
            .ok_or_else(|| DuoFailure::Unreachable("the client assertion could not be made".into()))
    }

    /// A signed call: its `response`, or why there is none.
    pub async fn call(
        &self,
        integration: &Integration<'_>,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        now: i64,
    ) -> Result<Value, DuoFailure> {
        let signed = sign_v5(
            integration.integration_key,
            integration.secret_key.expose_secret(),
            now,
            method,
            integration.api_hostname,
            path,
            params,
        )
        .ok_or_else(|| DuoFailure::Unreachable("this server's clock is outside the dates Duo accepts".into()))?;
        let mut url = format!("https://{}{path}", integration.api_hostname);
        if !signed.query.is_empty() {
            url = format!("{url}?{}", signed.query);
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| DuoFailure::Unreachable(format!("method {method}: {e}")))?;
        let mut request = self
            .http
            .request(method, url)
            .header("Date", &signed.date)
            .header("Authorization", &signed.authorization);
        if let Some(body) = signed.json_body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        self.send(request).await
    }

    /// A call to the Auth API (or the health check, which answers in its envelope).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, DuoFailure> {
        let (status, retry_after, body) = self.fetch(request).await?;
        read_answer(status, retry_after.as_deref(), &body)
    }

    /// Any call: the status, the `Retry-After` header, the body; or why there is none.
    async fn fetch(&self, request: reqwest::RequestBuilder) -> Result<(u16, Option<String>, Vec<u8>), DuoFailure> {
        let unreachable = |e: reqwest::Error| DuoFailure::Unreachable(describe(&e));
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(unreachable)?;
        Ok((status, retry_after, body.to_vec()))
    }
}

fn duo_time(response: &Value) -> Result<i64, DuoFailure> {
    response
        .get("time")
        .and_then(Value::as_i64)
        .ok_or_else(|| DuoFailure::Garbled("no time in the answer".into()))
}

/// A transport error with its causes (reqwest's own message omits them: "error sending
/// request" says nothing of a certificate or a timeout).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    if error.is_timeout() {
        text = format!("no answer in time ({text})");
    }
    text
}
