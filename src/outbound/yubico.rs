//! Calls to Yubico OTP validation servers (protocol 2.0): the same signed request to every
//! configured server at once, the first answer that is verified and definitive taken, the
//! rest dropped, and never longer than the timeout (protocol reference §6.6).

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::core::yubico_otp::Otp;
use crate::core::yubico_validation::{request_query, verify_answer, AnswerError, Status, Verdict};
use crate::random;

/// A validation service: its servers, and the API client Twofold is at them.
pub struct ValidationService<'a> {
    /// Full URLs such as `https://api.yubico.com/wsapi/2.0/verify` (`http` is allowed:
    /// answers are signed).
    pub urls: &'a [String],
    pub client_id: &'a str,
    /// The API key, base64-decoded.
    pub api_key: &'a [u8],
}

/// Why no server gave a believable, definitive answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationFailure {
    /// An answer was not signed with the API key, or was about another OTP or nonce. The
    /// API key may be wrong, or someone is in the middle.
    #[error("a validation server's answer cannot be believed: {0}")]
    Unbelievable(AnswerError),
    /// No answer in time, no connection, or no answer that settles it.
    #[error("no validation server answered: {0}")]
    Unreachable(String),
}

#[derive(Clone)]
pub struct ValidationClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl ValidationClient {
    pub fn new(timeout: Duration) -> Result<ValidationClient, String> {
        // The deadline of `verify` bounds every call (and drops those still running), so
        // that "no answer in time" is one answer, not a race between two timers.
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Twofold/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(ValidationClient { http, timeout })
    }

    /// Asks every server of `service` about `otp` at once. The answer: the first verified
    /// one whose status settles it (`REPLAYED_REQUEST`, which a sibling's replication causes,
    /// does not while others may still answer).
    pub async fn verify(&self, service: &ValidationService<'_>, otp: &Otp) -> Result<Verdict, ValidationFailure> {
        let nonce = random::alphanumeric(32).map_err(|e| ValidationFailure::Unreachable(e.to_string()))?;
        // Only id, otp and nonce: yubiserver signs nothing else (protocol reference §7.5).
        let fields = [
            ("id", service.client_id),
            ("otp", otp.text.as_str()),
            ("nonce", nonce.as_str()),
        ];
        let query = request_query(service.api_key, &fields);
        let mut pending: FuturesUnordered<_> = service
            .urls
            .iter()
            .map(|url| self.ask(url, &query, service.api_key, &otp.text, &nonce))
            .collect();
        let mut last = ValidationFailure::Unreachable("no validation server is configured".into());
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        loop {
            let answer = tokio::select! {
                answer = pending.next() => answer,
                () = &mut deadline => return Err(ValidationFailure::Unreachable("no answer in time".into())),
            };
            match answer {
                None => return Err(last),
                Some(Ok(verdict)) if verdict.status != Status::ReplayedRequest => return Ok(verdict),
                Some(Ok(verdict)) => last = ValidationFailure::Unreachable(format!("{:?}", verdict.status)),
                Some(Err(failure)) => last = failure,
            }
        }
    }

    async fn ask(
        &self,
        url: &str,
        query: &str,
        api_key: &[u8],
        otp: &str,
        nonce: &str,
    ) -> Result<Verdict, ValidationFailure> {
        let unreachable = |e: reqwest::Error| ValidationFailure::Unreachable(format!("{url}: {e}"));
        let response = self
            .http
            .get(format!("{url}?{query}"))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ValidationFailure::Unreachable(format!("{url}: HTTP {status}")));
        }
        let body = response.text().await.map_err(unreachable)?;
        verify_answer(api_key, &body, otp, nonce).map_err(ValidationFailure::Unbelievable)
    }
}
