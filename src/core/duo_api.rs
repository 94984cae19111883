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

/// What `/auth/v2/preauth` says of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preauth {
    /// A second factor is needed: one of these devices.
    Auth { devices: Vec<Device> },
    /// Let in without a second factor (a bypass user, a trusted network).
    Allow { message: String },
    /// Not let in (locked out, denied by policy); `Deny` also stands for any answer this
    /// version does not know, as Duo asks.
    Deny { message: String },
    /// Unknown to Duo, or not enrolled.
    Enroll { message: String },
}

/// One of a user's Duo devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub display_name: String,
    pub capabilities: Vec<Capability>,
}

/// What a device can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    Push,
    Phone,
    Sms,
    /// Duo Mobile's passcodes.
    MobileOtp,
}

/// The state of an authentication (`/auth/v2/auth` without `async`, or `/auth_status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthResult {
    Allow,
    /// `status` is Duo's machine value (`deny`, `fraud`, `locked_out`, `sent`, `timeout`).
    Deny {
        status: String,
        message: String,
    },
    /// Still waiting for the user (`pushed`, `calling`, `answered`).
    Waiting {
        status: String,
        message: String,
    },
}

/// A new Duo user's activation (`/auth/v2/enroll`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    pub user_id: String,
    pub username: String,
    /// The `duo://` link Duo Mobile opens.
    pub activation_code: String,
    /// The HTTPS URL of the activation QR code.
    pub activation_barcode: String,
    pub expiration: i64,
}

/// Where an activation stands (`/auth/v2/enroll_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationStatus {
    Success,
    Waiting,
    /// Expired or unknown: only a new activation helps.
    Invalid,
}

fn field<'a>(response: &'a Value, key: &str) -> Result<&'a str, DuoFailure> {
    response
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| DuoFailure::Garbled(format!("no {key} in the answer")))
}

fn message(response: &Value) -> String {
    text(response, "status_msg").unwrap_or_default()
}

pub fn read_preauth(response: &Value) -> Result<Preauth, DuoFailure> {
    let message = message(response);
    Ok(match field(response, "result")? {
        "auth" => {
            let devices = response
                .get("devices")
                .and_then(Value::as_array)
                .ok_or_else(|| DuoFailure::Garbled("no devices in an auth answer".into()))?;
            let devices = devices
                .iter()
                .map(|device| {
                    Ok(Device {
                        id: field(device, "device")?.to_string(),
                        display_name: text(device, "display_name")
                            .or_else(|| text(device, "name"))
                            .unwrap_or_default(),
                        capabilities: device
                            .get("capabilities")
                            .and_then(Value::as_array)
                            .map(|list| list.iter().filter_map(|c| capability(c.as_str()?)).collect())
                            .unwrap_or_default(),
                    })
                })
                .collect::<Result<_, DuoFailure>>()?;
            Preauth::Auth { devices }
        }
        "allow" => Preauth::Allow { message },
        "enroll" => Preauth::Enroll { message },
        _ => Preauth::Deny { message },
    })
}

fn capability(name: &str) -> Option<Capability> {
    match name {
        "push" => Some(Capability::Push),
        "phone" => Some(Capability::Phone),
        "sms" => Some(Capability::Sms),
        "mobile_otp" => Some(Capability::MobileOtp),
        _ => None,
    }
}

pub fn read_auth_result(response: &Value) -> Result<AuthResult, DuoFailure> {
    let status = text(response, "status").unwrap_or_default();
    let message = message(response);
    Ok(match field(response, "result")? {
        "allow" => AuthResult::Allow,
        "waiting" => AuthResult::Waiting { status, message },
        _ => AuthResult::Deny { status, message },
    })
}

/// The transaction of an asynchronous `/auth/v2/auth`.
pub fn read_txid(response: &Value) -> Result<String, DuoFailure> {
    Ok(field(response, "txid")?.to_string())
}

pub fn read_activation(response: &Value) -> Result<Activation, DuoFailure> {
    Ok(Activation {
        user_id: field(response, "user_id")?.to_string(),
        username: field(response, "username")?.to_string(),
        activation_code: field(response, "activation_code")?.to_string(),
        activation_barcode: field(response, "activation_barcode")?.to_string(),
        expiration: response
            .get("expiration")
            .and_then(Value::as_i64)
            .ok_or_else(|| DuoFailure::Garbled("no expiration in the answer".into()))?,
    })
}

pub fn read_activation_status(response: &Value) -> Result<ActivationStatus, DuoFailure> {
    match response.as_str() {
        Some("success") => Ok(ActivationStatus::Success),
        Some("waiting") => Ok(ActivationStatus::Waiting),
        Some(_) => Ok(ActivationStatus::Invalid),
        None => Err(DuoFailure::Garbled("the activation status is not a string".into())),
    }
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

    #[test]
    fn preauth_answers_are_read_and_unknown_results_deny() {
        // The shape of a real answer (duo_client's examples/Auth/async_advanced_user_mfa.log).
        let auth = serde_json::json!({"result": "auth", "status_msg": "Account is active", "devices": [
            {"device": "DP80Z4GVU82OT8O1BNJF", "type": "phone", "number": "XXX-XXX-4788",
             "name": "", "display_name": "iOS (XXX-XXX-4788)",
             "capabilities": ["auto", "push", "sms", "phone", "mobile_otp", "something_new"]},
            {"device": "DHXXXXXXXXXXXXXXXXXX", "type": "token", "name": "Token"}]});
        assert_eq!(
            read_preauth(&auth).unwrap(),
            Preauth::Auth {
                devices: vec![
                    Device {
                        id: "DP80Z4GVU82OT8O1BNJF".into(),
                        display_name: "iOS (XXX-XXX-4788)".into(),
                        capabilities: vec![
                            Capability::Push,
                            Capability::Sms,
                            Capability::Phone,
                            Capability::MobileOtp
                        ],
                    },
                    Device {
                        id: "DHXXXXXXXXXXXXXXXXXX".into(),
                        display_name: "Token".into(),
                        capabilities: vec![],
                    },
                ]
            }
        );
        let said = |result: &str| read_preauth(&serde_json::json!({"result": result, "status_msg": "m"})).unwrap();
        assert_eq!(said("allow"), Preauth::Allow { message: "m".into() });
        assert_eq!(said("enroll"), Preauth::Enroll { message: "m".into() });
        assert_eq!(said("deny"), Preauth::Deny { message: "m".into() });
        assert_eq!(said("some_future_result"), Preauth::Deny { message: "m".into() });
        assert!(matches!(
            read_preauth(&serde_json::json!({"result": "auth"})),
            Err(DuoFailure::Garbled(_))
        ));
    }

    #[test]
    fn auth_results_transactions_and_activations_are_read() {
        let result = |v: serde_json::Value| read_auth_result(&v).unwrap();
        assert_eq!(
            result(serde_json::json!({"result": "allow", "status": "allow"})),
            AuthResult::Allow
        );
        assert_eq!(
            result(serde_json::json!({"result": "waiting", "status": "pushed", "status_msg": "Pushed"})),
            AuthResult::Waiting {
                status: "pushed".into(),
                message: "Pushed".into()
            }
        );
        assert_eq!(
            result(serde_json::json!({"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent"})),
            AuthResult::Deny {
                status: "sent".into(),
                message: "New SMS passcodes sent".into()
            }
        );
        assert!(matches!(
            result(serde_json::json!({"result": "maybe"})),
            AuthResult::Deny { .. }
        ));
        assert_eq!(read_txid(&serde_json::json!({"txid": "f50324f8"})).unwrap(), "f50324f8");
        assert!(read_txid(&serde_json::json!({})).is_err());
        let activation = serde_json::json!({"user_id": "DU1", "username": "kim",
            "activation_code": "duo://x", "activation_barcode": "https://x/frame/qr?value=y", "expiration": 1_357_020_061});
        assert_eq!(read_activation(&activation).unwrap().activation_code, "duo://x");
        assert_eq!(
            read_activation_status(&serde_json::json!("waiting")).unwrap(),
            ActivationStatus::Waiting
        );
        assert_eq!(
            read_activation_status(&serde_json::json!("success")).unwrap(),
            ActivationStatus::Success
        );
        assert_eq!(
            read_activation_status(&serde_json::json!("invalid")).unwrap(),
            ActivationStatus::Invalid
        );
        assert!(read_activation_status(&serde_json::json!(3)).is_err());
    }
}
