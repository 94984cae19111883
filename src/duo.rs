//! Calls to Duo Security's Auth API over HTTPS: signed as Duo's own clients sign them
//! (`core::duo_sign`, version 5), read as `core::duo_api` reads answers, and bounded in
//! time so that a Duo outage never holds a request for long.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::core::duo_api::{read_answer, DuoFailure};
use crate::core::duo_sign::sign_v5;

/// What identifies Twofold to Duo: an Auth API application's keys and host.
pub struct Integration<'a> {
    /// `api-XXXXXXXX.duosecurity.com`, or `host:port`.
    pub api_hostname: &'a str,
    pub integration_key: &'a str,
    pub secret_key: &'a SecretString,
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
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Twofold/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = extra_roots {
            let pem = std::fs::read(path).map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!("tls_ca_file {}: no PEM certificate in it", path.display()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
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

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, DuoFailure> {
        let response = request
            .send()
            .await
            .map_err(|e| DuoFailure::Unreachable(describe(&e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| DuoFailure::Unreachable(describe(&e)))?;
        read_answer(status, retry_after.as_deref(), &body)
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
