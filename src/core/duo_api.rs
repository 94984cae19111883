//! Reading Duo's Auth API answers: the `{"stat": "OK", "response": ...}` envelope, its
//! failures, and what each failure means for the administrator. A Duo failure is never a
//! wrong code: a signature, integration or timestamp error is a misconfiguration to fix, a
//! rate limit or an outage is Duo being unavailable.

use serde_json::Value;

/// Why a call to Duo did not give an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DuoFailure {
    /// Duo refused the request (`stat: FAIL`): its code and message, as it sent them.
    Refused {
        status: u16,
        code: u32,
        message: String,
        detail: Option<String>,
    },
    /// Too many requests (HTTP 429); `retry_after_secs` when Duo said how long to wait.
    RateLimited { retry_after_secs: Option<u64> },
    /// Duo answered an HTTP error without Duo's envelope (a 5xx, a proxy's page).
    Unavailable { status: u16 },
    /// Duo answered something that is not Duo's envelope.
    Garbled(String),
    /// No answer: the connection, TLS or the time allowed failed (the reason, for the log).
    Unreachable(String),
}

/// What an administrator must fix (or wait for) after a failure, in the words the admin
/// area shows. `None`: the failure is about the request or the user, not the configuration.
pub fn diagnosis(failure: &DuoFailure) -> Option<&'static str> {
    match failure {
        DuoFailure::Refused { code: 40101 | 40102, .. } => Some("Invalid Integration: Duo does not know the integration key."),
        DuoFailure::Refused { code: 40103, .. } => {
            Some("Invalid Integration: Duo refused the signature; check the secret key and the API hostname.")
        }
        DuoFailure::Refused { code: 40104 | 40105, .. } => Some(
            "Duo refused the request's time: this server's clock is off from Duo's. Synchronise this server with NTP.",
        ),
        DuoFailure::Refused { code: 40301, .. } => Some(
            "Invalid Integration: this Duo application may not use this API; check the kind of application created at Duo.",
        ),
        DuoFailure::Refused { .. } => None,
        DuoFailure::RateLimited { .. } => Some("Duo is limiting this server's requests; try again shortly."),
        DuoFailure::Unavailable { .. } | DuoFailure::Garbled(_) => Some("Duo answered wrongly or is having an outage."),
        DuoFailure::Unreachable(_) => {
            Some("Duo cannot be reached: check the API hostname, this server's outbound HTTPS and its trusted certificates.")
        }
    }
}

/// Reads one answer of the Auth API: its `response` when `stat` is `OK` and the status 200.
/// `retry_after` is the `Retry-After` header, if any (seconds; a date is not honoured).
pub fn read_answer(status: u16, retry_after: Option<&str>, body: &[u8]) -> Result<Value, DuoFailure> {
    if status == 429 {
        return Err(DuoFailure::RateLimited {
            retry_after_secs: retry_after.and_then(|text| text.trim().parse().ok()),
        });
    }
    let envelope: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) if status != 200 => return Err(DuoFailure::Unavailable { status }),
        Err(error) => return Err(DuoFailure::Garbled(format!("not JSON: {error}"))),
    };
    match envelope.get("stat").and_then(Value::as_str) {
        Some("OK") if status == 200 => envelope
            .get("response")
            .cloned()
            .ok_or_else(|| DuoFailure::Garbled("no response in an OK answer".into())),
        Some("FAIL") => Err(DuoFailure::Refused {
            status,
            code: envelope
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|code| u32::try_from(code).ok())
                .unwrap_or(0),
            message: text(&envelope, "message").unwrap_or_default(),
            detail: text(&envelope, "message_detail"),
        }),
        _ if status != 200 => Err(DuoFailure::Unavailable { status }),
        other => Err(DuoFailure::Garbled(format!("stat is {other:?}"))),
    }
}

fn text(envelope: &Value, key: &str) -> Option<String> {
    envelope.get(key).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ok_answer_gives_its_response() {
        let body = br#"{"stat": "OK", "response": {"time": 1357020061}}"#;
        assert_eq!(read_answer(200, None, body).unwrap()["time"], 1357020061);
        let bare = br#"{"stat": "OK", "response": "waiting"}"#;
        assert_eq!(read_answer(200, None, bare).unwrap(), "waiting");
    }

    #[test]
    fn duos_refusals_keep_their_code_and_say_what_to_fix() {
        let refused = |code: u32, status: u16| {
            let body =
                format!(r#"{{"stat": "FAIL", "code": {code}, "message": "Invalid request", "message_detail": "x"}}"#);
            read_answer(status, None, body.as_bytes()).unwrap_err()
        };
        assert_eq!(
            refused(40103, 401),
            DuoFailure::Refused {
                status: 401,
                code: 40103,
                message: "Invalid request".into(),
                detail: Some("x".into())
            }
        );
        assert!(diagnosis(&refused(40102, 401)).unwrap().contains("integration key"));
        assert!(diagnosis(&refused(40103, 401)).unwrap().contains("secret key"));
        assert!(diagnosis(&refused(40105, 401)).unwrap().contains("NTP"));
        assert!(diagnosis(&refused(40301, 403)).unwrap().contains("kind of application"));
        assert_eq!(
            diagnosis(&refused(40002, 400)),
            None,
            "a bad request is not a misconfiguration"
        );
        // A FAIL with a 200 is still a refusal.
        assert!(matches!(refused(40002, 200), DuoFailure::Refused { code: 40002, .. }));
    }

    #[test]
    fn outages_limits_and_garbage_are_never_answers() {
        assert_eq!(
            read_answer(429, Some("7"), b""),
            Err(DuoFailure::RateLimited {
                retry_after_secs: Some(7)
            })
        );
        assert_eq!(
            read_answer(429, Some("Wed, 21 Oct 2026 07:28:00 GMT"), b"{}"),
            Err(DuoFailure::RateLimited { retry_after_secs: None })
        );
        assert_eq!(
            read_answer(503, None, b"<html>busy</html>"),
            Err(DuoFailure::Unavailable { status: 503 })
        );
        assert_eq!(
            read_answer(502, None, b"{}"),
            Err(DuoFailure::Unavailable { status: 502 })
        );
        for garbage in [
            &b"{\"stat\": \"OK\""[..],
            b"{\"stat\": \"MAYBE\"}",
            b"{\"stat\": \"OK\"}",
            b"[]",
        ] {
            assert!(
                matches!(read_answer(200, None, garbage), Err(DuoFailure::Garbled(_))),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
