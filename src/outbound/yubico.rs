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
    /// Ask for the key's counters (`timestamp=1`), for servers that sign them.
    pub signed_counters: bool,
    /// The `sl` to ask for (the share of a pool's servers that must agree, 0–100), for
    /// servers that sign it.
    pub sync_level: Option<u8>,
    /// The most a verification may take, all servers together.
    pub timeout: Duration,
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
}

impl ValidationClient {
    /// Trusts the system's roots and those of `extra_roots` (a private server's authority).
    pub fn new(extra_roots: Option<&std::path::Path>) -> Result<ValidationClient, String> {
        // The deadline of `verify` bounds every call (and drops those still running), so
        // that "no answer in time" is one answer, not a race between two timers.
        let http = super::http_client(extra_roots, Duration::from_secs(5))?
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(ValidationClient { http })
    }

    /// Asks every server of `service` about `otp` at once, for at most `service.timeout`.
    /// The answer: the first verified one whose status settles it (`REPLAYED_REQUEST`, which
    /// a sibling's replication causes, does not while others may still answer).
    pub async fn verify(&self, service: &ValidationService<'_>, otp: &Otp) -> Result<Verdict, ValidationFailure> {
        let nonce = random::alphanumeric(32).map_err(|e| ValidationFailure::Unreachable(e.to_string()))?;
        // Only id, otp and nonce (and timestamp and sl where asked): yubiserver signs nothing else,
        // and more than 7 parameters corrupt its memory (protocol reference §7.5).
        let mut fields = vec![
            ("id", service.client_id),
            ("otp", otp.text.as_str()),
            ("nonce", nonce.as_str()),
        ];
        if service.signed_counters {
            fields.push(("timestamp", "1"));
        }
        let sync_level = service.sync_level.map(|level| level.to_string());
        if let Some(level) = &sync_level {
            fields.push(("sl", level));
        }
        let query = request_query(service.api_key, &fields);
        let mut pending: FuturesUnordered<_> = service
            .urls
            .iter()
            .map(|url| self.ask(url, &query, service.api_key, &otp.text, &nonce))
            .collect();
        let mut last = ValidationFailure::Unreachable("no validation server is configured".into());
        let deadline = tokio::time::sleep(service.timeout);
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
