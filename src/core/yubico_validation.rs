//! Yubico's validation protocol 2.0, the client's side (protocol reference §6): the signed
//! request, and the answer verified before anything in it is believed.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The signature `h` of a set of fields: HMAC-SHA1 keyed with the decoded API key, over
/// the fields but `h` sorted by name and joined as `k=v&k=v` (raw values), in base64.
pub fn signature(api_key: &[u8], fields: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = fields.iter().filter(|(name, _)| *name != "h").collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let message = sorted
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(api_key).unwrap_or_else(|_| unreachable!());
    mac.update(message.as_bytes());
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

/// The query string of a verification: the fields in the given order, then `h`, each
/// percent-encoded (an unescaped `+` in `h` would arrive as a space).
pub fn request_query(api_key: &[u8], fields: &[(&str, &str)]) -> String {
    let h = signature(api_key, fields);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        query.append_pair(name, value);
    }
    query.append_pair("h", &h);
    query.finish()
}

/// What a validation server said of an OTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadOtp,
    ReplayedOtp,
    /// This OTP and nonce were seen: a sibling server of a pool answered already.
    ReplayedRequest,
    /// The client ID or API key is wrong: the administrator's to fix.
    BadSignature,
    NoSuchClient,
    OperationNotAllowed,
    MissingParameter,
    BackendError,
    NotEnoughAnswers,
    /// yubiserver's: the counter did not move and the timestamp did not advance.
    DelayedOtp,
    /// Anything else: a failure.
    Unknown,
}

impl Status {
    fn parse(text: &str) -> Status {
        match text {
            "OK" => Status::Ok,
            "BAD_OTP" => Status::BadOtp,
            "REPLAYED_OTP" => Status::ReplayedOtp,
            "REPLAYED_REQUEST" => Status::ReplayedRequest,
            "BAD_SIGNATURE" => Status::BadSignature,
            "NO_SUCH_CLIENT" => Status::NoSuchClient,
            "OPERATION_NOT_ALLOWED" => Status::OperationNotAllowed,
            "MISSING_PARAMETER" => Status::MissingParameter,
            "BACKEND_ERROR" => Status::BackendError,
            "NOT_ENOUGH_ANSWERS" => Status::NotEnoughAnswers,
            "DELAYED_OTP" => Status::DelayedOtp,
            _ => Status::Unknown,
        }
    }
}

/// A verified answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// With `timestamp=1`, when the server signed them: the key's use and session
    /// counters.
    pub counters: Option<(u16, u8)>,
}

/// Why an answer cannot be believed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer is not signed with the API key (or not signed at all)")]
    Signature,
    #[error("the answer is about another OTP or nonce than the request's")]
    Echo,
    #[error("the answer has no status")]
    NoStatus,
}

/// The fields of an answer: one `key=value` per line, split at the first `=` (base64
/// values hold `=` too); blank lines ignored.
pub fn parse_fields(body: &str) -> Vec<(String, String)> {
    body.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Verifies an answer to the request for `otp` with `nonce`: its signature (in constant
/// time), the echo of both, and its status. Only a verified `Status::Ok` is a success.
pub fn verify_answer(api_key: &[u8], body: &str, otp: &str, nonce: &str) -> Result<Verdict, AnswerError> {
    let fields = parse_fields(body);
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let sent = field("h").ok_or(AnswerError::Signature)?;
    let signed: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let expected = signature(api_key, &signed);
    if !bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        return Err(AnswerError::Signature);
    }
    let status = Status::parse(field("status").ok_or(AnswerError::NoStatus)?);
    // Early refusals (a malformed request) carry no echo; a success always does.
    let echoed = field("otp") == Some(otp) && field("nonce") == Some(nonce);
    if status == Status::Ok && !echoed {
        return Err(AnswerError::Echo);
    }
    if !echoed && (field("otp").is_some() || field("nonce").is_some()) {
        return Err(AnswerError::Echo);
    }
    let counters = match (field("sessioncounter"), field("sessionuse")) {
        (Some(use_counter), Some(session)) => use_counter.parse().ok().zip(session.parse().ok()),
        _ => None,
    };
    Ok(Verdict { status, counters })
}

#[cfg(test)]
mod tests {
    //! The worked examples of the protocol reference §6 (recomputed there with the
    //! standard library and `yubiotp`).
    use super::*;

    const API_KEY: &[u8] = b"abcdefghijklmnopqrst"; // base64 YWJjZGVmZ2hpamtsbW5vcHFyc3Q=
    const OTP: &str = "vvcijgklnrbfchugidrdnbnenkbknvrnrfjdvjgjecbn";
    const NONCE: &str = "0123456789abcdefABCDEF";

    #[test]
    fn a_request_is_signed_and_escaped_as_the_protocol_says() {
        let fields = [
            ("id", "42"),
            ("otp", OTP),
            ("nonce", NONCE),
            ("timestamp", "1"),
            ("sl", "50"),
            ("timeout", "8"),
        ];
        assert_eq!(signature(API_KEY, &fields), "+SaV9RXxJYOX9PdWQH/NTekiGFg=");
        assert_eq!(
            request_query(API_KEY, &fields),
            format!("id=42&otp={OTP}&nonce={NONCE}&timestamp=1&sl=50&timeout=8&h=%2BSaV9RXxJYOX9PdWQH%2FNTekiGFg%3D")
        );
    }

    fn answer(status: &str, h: &str) -> String {
        format!(
            "h={h}\r\nt=2024-11-25T08:00:00Z0123\r\notp={OTP}\r\nnonce={NONCE}\r\nsl=100\r\n\
             timestamp=1193046\r\nsessioncounter=1\r\nsessionuse=0\r\nstatus={status}\r\n\r\n"
        )
    }

    #[test]
    fn a_signed_answer_is_believed_and_a_tampered_one_is_not() {
        let body = answer("OK", "zvtfk+pwsMpD1G9Pj8D3PgIr2AM=");
        assert_eq!(
            verify_answer(API_KEY, &body, OTP, NONCE),
            Ok(Verdict {
                status: Status::Ok,
                counters: Some((1, 0))
            })
        );
        let tampered = answer("REPLAYED_OTP", "zvtfk+pwsMpD1G9Pj8D3PgIr2AM=");
        assert_eq!(
            verify_answer(API_KEY, &tampered, OTP, NONCE),
            Err(AnswerError::Signature)
        );
        assert_eq!(
            verify_answer(b"another key", &body, OTP, NONCE),
            Err(AnswerError::Signature)
        );
        let unsigned = body.replace("h=zvtfk+pwsMpD1G9Pj8D3PgIr2AM=\r\n", "");
        assert_eq!(
            verify_answer(API_KEY, &unsigned, OTP, NONCE),
            Err(AnswerError::Signature)
        );
    }

    #[test]
    fn a_real_answer_of_debians_yubiserver_is_believed() {
        // Observed from yubiserver 0.6 with the API key yubiserver-admin printed for the
        // 20-character secret `abcdefghijklmnopqrst` (protocol reference §6, §7.3).
        let body = "h=ozICiVKUtTGERz2nHWNxbvFCRSs=\r\nt=2026-11-25T08:01:09.873Z\r\n\
                    otp=vvcijgklnrbfdltnnkijjtbbedjvcitfjhhgbitdbrgg\r\nnonce=RMvUDRL9aXTifsgOImsACRp18igg6Gew\r\n\
                    sl=100\r\nstatus=OK\r\n";
        let verdict = verify_answer(
            API_KEY,
            body,
            "vvcijgklnrbfdltnnkijjtbbedjvcitfjhhgbitdbrgg",
            "RMvUDRL9aXTifsgOImsACRp18igg6Gew",
        );
        assert_eq!(
            verdict,
            Ok(Verdict {
                status: Status::Ok,
                counters: None
            })
        );
    }

    #[test]
    fn an_answer_about_another_otp_or_nonce_is_refused() {
        let body = answer("OK", "zvtfk+pwsMpD1G9Pj8D3PgIr2AM=");
        assert_eq!(
            verify_answer(API_KEY, &body, OTP, "another-nonce-000"),
            Err(AnswerError::Echo)
        );
        let other_otp = "vvcijgklnrbfchugidrdnbnenkbknvrnrfjdvjgjeccc";
        assert_eq!(verify_answer(API_KEY, &body, other_otp, NONCE), Err(AnswerError::Echo));
    }

    #[test]
    fn every_status_is_read_and_only_ok_succeeds() {
        for (text, status) in [
            ("BAD_OTP", Status::BadOtp),
            ("REPLAYED_OTP", Status::ReplayedOtp),
            ("REPLAYED_REQUEST", Status::ReplayedRequest),
            ("BAD_SIGNATURE", Status::BadSignature),
            ("NO_SUCH_CLIENT", Status::NoSuchClient),
            ("OPERATION_NOT_ALLOWED", Status::OperationNotAllowed),
            ("MISSING_PARAMETER", Status::MissingParameter),
            ("BACKEND_ERROR", Status::BackendError),
            ("NOT_ENOUGH_ANSWERS", Status::NotEnoughAnswers),
            ("DELAYED_OTP", Status::DelayedOtp),
            ("SOMETHING_NEW", Status::Unknown),
        ] {
            let fields = [("t", "x"), ("otp", OTP), ("nonce", NONCE), ("status", text)];
            let h = signature(API_KEY, &fields);
            let body = format!("h={h}\r\nt=x\r\notp={OTP}\r\nnonce={NONCE}\r\nstatus={text}\r\n");
            assert_eq!(
                verify_answer(API_KEY, &body, OTP, NONCE).unwrap().status,
                status,
                "{text}"
            );
        }
        // An early refusal carries no echo, and is still only a refusal.
        let fields = [("t", "x"), ("status", "MISSING_PARAMETER")];
        let h = signature(API_KEY, &fields);
        let body = format!("h={h}\r\nt=x\r\nstatus=MISSING_PARAMETER\r\n");
        assert_eq!(
            verify_answer(API_KEY, &body, OTP, NONCE).unwrap().status,
            Status::MissingParameter
        );
    }

    #[test]
    fn values_keep_their_equals_signs() {
        assert_eq!(
            parse_fields("h=ab/c+d=\r\nstatus=OK\r\n\r\n"),
            [("h".to_string(), "ab/c+d=".to_string()), ("status".into(), "OK".into())]
        );
    }
}
