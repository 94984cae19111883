//! The Duo Universal Prompt's JWTs (HS512, keyed with the client secret), as Duo's own
//! client `duo_universal` makes and checks them: the authorization request the browser
//! carries to Duo, the client assertion of the health check and the token exchange, and the
//! `id_token` Duo answers with. Only HS512 is accepted; every time check has 60 s of leeway.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha512;
use subtle::ConstantTimeEq;

use super::duo_api::DuoFailure;

/// How long the JWTs Twofold signs are valid (Duo accepts at most five minutes).
pub const LIFETIME_SECS: i64 = 300;
/// The leeway of every time check on an `id_token`.
pub const LEEWAY_SECS: i64 = 60;

const HEADER: &str = r#"{"alg":"HS512","typ":"JWT"}"#;

/// The Web SDK application's credentials and where Duo is.
pub struct Client<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    /// `api-XXXXXXXX.duosecurity.com`.
    pub api_host: &'a str,
}

/// The claims of the authorization request, in duo_universal's order.
#[derive(Serialize)]
struct AuthorizationRequest<'a> {
    scope: &'a str,
    redirect_uri: &'a str,
    client_id: &'a str,
    iss: &'a str,
    aud: String,
    exp: i64,
    state: &'a str,
    response_type: &'a str,
    duo_uname: &'a str,
    use_duo_code_attribute: bool,
}

/// The claims of a client assertion.
#[derive(Serialize)]
struct ClientAssertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    jti: &'a str,
}

/// What a valid `id_token` says, of what Twofold uses.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct IdToken {
    pub preferred_username: String,
    pub auth_result: AuthResult,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct AuthResult {
    pub result: String,
    pub status: Option<String>,
    pub status_msg: Option<String>,
}

/// The claims checked, beyond those of [`IdToken`].
#[derive(Deserialize)]
struct Checked {
    aud: String,
    iss: String,
    exp: Option<f64>,
    iat: Option<f64>,
    nonce: Option<String>,
    #[serde(flatten)]
    token: IdToken,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is not signed with HS512")]
    Algorithm,
    #[error("the token's signature is wrong")]
    Signature,
    #[error("the token is for another application or from another issuer")]
    Audience,
    #[error("the token has expired, or was issued in the future (check this server's clock)")]
    Time,
    #[error("the token is for another user")]
    Username,
    #[error("the token's nonce is not this login's")]
    Nonce,
    #[error("Duo did not allow the login ({0})")]
    NotAllowed(String),
}

fn base64url(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

fn mac(secret: &str, signing_input: &str) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sign(secret: &str, claims: &impl Serialize) -> Option<String> {
    let payload = serde_json::to_vec(claims).ok()?;
    let input = format!("{}.{}", base64url(HEADER.as_bytes()), base64url(&payload));
    let signature = base64url(&mac(secret, &input));
    Some(format!("{input}.{signature}"))
}

impl Client<'_> {
    /// The `request` parameter of `https://<host>/oauth/v1/authorize`: who logs in, where
    /// Duo sends the browser back, and the `state` it must bring back.
    pub fn authorization_request(&self, username: &str, state: &str, redirect_uri: &str, now: i64) -> Option<String> {
        let claims = AuthorizationRequest {
            scope: "openid",
            redirect_uri,
            client_id: self.client_id,
            iss: self.client_id,
            aud: format!("https://{}", self.api_host),
            exp: now + LIFETIME_SECS,
            state,
            response_type: "code",
            duo_uname: username,
            use_duo_code_attribute: true,
        };
        sign(self.client_secret, &claims)
    }

    /// Where to send the browser: `https://<host>/oauth/v1/authorize` with the signed
    /// request, and the `nonce` the `id_token` must carry back.
    pub fn authorize_url(
        &self,
        username: &str,
        state: &str,
        nonce: &str,
        redirect_uri: &str,
        now: i64,
    ) -> Option<String> {
        let request = self.authorization_request(username, state, redirect_uri, now)?;
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", self.client_id)
            .append_pair("request", &request)
            .append_pair("nonce", nonce)
            .finish();
        Some(format!("https://{}/oauth/v1/authorize?{query}", self.api_host))
    }

    /// The `client_assertion` for `endpoint` (`/oauth/v1/health_check`, `/oauth/v1/token`);
    /// `jti` must be random and new.
    pub fn client_assertion(&self, endpoint: &str, jti: &str, now: i64) -> Option<String> {
        let audience = format!("https://{}{endpoint}", self.api_host);
        let claims = ClientAssertion {
            iss: self.client_id,
            sub: self.client_id,
            aud: &audience,
            exp: now + LIFETIME_SECS,
            jti,
        };
        sign(self.client_secret, &claims)
    }

    /// Checks an `id_token` as duo_universal does (HS512 only, audience, issuer, times with
    /// leeway, the username the login started with, the nonce), and that Duo allowed the
    /// login.
    pub fn check_id_token(&self, token: &str, username: &str, nonce: &str, now: i64) -> Result<IdToken, OidcError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed);
        };
        let decode = |part: &str| {
            data_encoding::BASE64URL_NOPAD
                .decode(part.as_bytes())
                .map_err(|_| OidcError::Malformed)
        };
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| OidcError::Malformed)?;
        if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS512") {
            return Err(OidcError::Algorithm);
        }
        let signed = &token[..token.len() - signature.len() - 1];
        if !bool::from(mac(self.client_secret, signed).ct_eq(&decode(signature)?)) {
            return Err(OidcError::Signature);
        }
        let claims: Checked = serde_json::from_slice(&decode(payload)?).map_err(|_| OidcError::Malformed)?;
        if claims.aud != self.client_id || claims.iss != format!("https://{}/oauth/v1/token", self.api_host) {
            return Err(OidcError::Audience);
        }
        let (Some(exp), Some(iat)) = (claims.exp, claims.iat) else {
            return Err(OidcError::Time);
        };
        let now = now as f64;
        if now > exp + LEEWAY_SECS as f64 || iat > now + LEEWAY_SECS as f64 {
            return Err(OidcError::Time);
        }
        if claims.token.preferred_username != username {
            return Err(OidcError::Username);
        }
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(OidcError::Nonce);
        }
        if claims.token.auth_result.result != "allow" {
            return Err(OidcError::NotAllowed(claims.token.auth_result.result));
        }
        Ok(claims.token)
    }
}

/// Reads the token endpoint's answer: the `id_token`, or why there is none. Its refusals are
/// OAuth's (`{"error": "invalid_grant", "error_description": ...}`), not the Auth API's
/// envelope: they are `Refused` with code 0 and the OAuth error as the message.
pub fn read_token_answer(status: u16, body: &[u8]) -> Result<String, DuoFailure> {
    if status == 429 {
        return Err(DuoFailure::RateLimited { retry_after_secs: None });
    }
    let answer: serde_json::Value = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(_) if status != 200 => return Err(DuoFailure::Unavailable { status }),
        Err(error) => return Err(DuoFailure::Garbled(format!("not JSON: {error}"))),
    };
    let text = |key: &str| answer.get(key).and_then(serde_json::Value::as_str);
    match (status, text("id_token"), text("error")) {
        (200, Some(token), _) => Ok(token.to_string()),
        (_, _, Some(error)) => Err(DuoFailure::Refused {
            status,
            code: 0,
            message: error.to_string(),
            detail: text("error_description").map(str::to_string),
        }),
        (200, None, None) => Err(DuoFailure::Garbled("no id_token in the answer".into())),
        _ => Err(DuoFailure::Unavailable { status }),
    }
}

#[cfg(test)]
mod tests {
    //! Vectors from duo_universal 2.3.1's own tests, with its time pinned to 2 (see the
    //! protocol reference, §2.2 and §2.4).
    use serde_json::json;

    use super::*;

    const CLIENT: Client<'static> = Client {
        client_id: "DIXXXXXXXXXXXXXXXXXX",
        client_secret: "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
        api_host: "api-XXXXXXX.test.duosecurity.com",
    };

    fn signature_of(jwt: &str) -> &str {
        jwt.rsplit('.').next().unwrap()
    }

    #[test]
    fn the_authorization_request_is_duo_universals_byte_for_byte() {
        let state = "deadbeefdeadbeefdeadbeefdeadbeefdead";
        let jwt = CLIENT
            .authorization_request("user1", state, "https://www.example.com", 2)
            .unwrap();
        assert_eq!(
            signature_of(&jwt),
            "soB-jk6P4pzmREKHs5BUlyqNWGTt8id2DIObFYtzXttHwcKuZfjojK9d8_AwzjWhhKPzHWnNfdQUYbkEhRcFag"
        );
    }

    #[test]
    fn the_client_assertion_is_duo_universals_byte_for_byte() {
        let jwt = CLIENT.client_assertion("/oauth/v1/token", &"J".repeat(36), 2).unwrap();
        assert_eq!(
            signature_of(&jwt),
            "ujHXd4WGqv5mngqj1_y8i2Z8EpE_UOBnhXek_tx-baaKZbQv2nUY3adnRYdejgxamJeAoNKk0g-7CxB5mfFW5w"
        );
    }

    const NOW: i64 = 1_800_000_000;

    fn id_token(claims: serde_json::Value) -> String {
        sign(CLIENT.client_secret, &claims).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({
            "aud": "DIXXXXXXXXXXXXXXXXXX",
            "iss": "https://api-XXXXXXX.test.duosecurity.com/oauth/v1/token",
            "exp": NOW + 300,
            "iat": NOW,
            "nonce": "a-nonce-of-this-login-0123456789abcdef",
            "preferred_username": "user1",
            "auth_result": {"result": "allow", "status": "allow", "status_msg": "Login Successful"},
            "auth_time": NOW,
        })
    }

    fn check(token: &str, now: i64) -> Result<IdToken, OidcError> {
        CLIENT.check_id_token(token, "user1", "a-nonce-of-this-login-0123456789abcdef", now)
    }

    #[test]
    fn a_valid_id_token_is_accepted() {
        let token = check(&id_token(claims()), NOW).unwrap();
        assert_eq!(token.preferred_username, "user1");
        assert_eq!(token.auth_result.result, "allow");
        // Duo's float `exp` and `iat`, as PyJWT writes them, are read too.
        let mut floats = claims();
        floats["exp"] = json!(NOW as f64 + 300.25);
        floats["iat"] = json!(NOW as f64 + 0.5);
        assert!(check(&id_token(floats), NOW).is_ok());
    }

    #[test]
    fn every_check_of_duo_universal_refuses_what_it_should() {
        let with = |key: &str, value: serde_json::Value| {
            let mut changed = claims();
            changed[key] = value;
            id_token(changed)
        };
        assert_eq!(
            check(&with("aud", json!("DIYYYYYYYYYYYYYYYYYY")), NOW),
            Err(OidcError::Audience)
        );
        assert_eq!(
            check(&with("iss", json!("https://evil.example/oauth/v1/token")), NOW),
            Err(OidcError::Audience)
        );
        assert_eq!(
            check(&with("preferred_username", json!("User1")), NOW),
            Err(OidcError::Username)
        );
        assert_eq!(
            check(&with("nonce", json!("another nonce entirely, 0123456789")), NOW),
            Err(OidcError::Nonce)
        );
        assert_eq!(
            check(&with("auth_result", json!({"result": "deny"})), NOW),
            Err(OidcError::NotAllowed("deny".into()))
        );
        // Times, with 60 s of leeway either way.
        let token = id_token(claims());
        assert!(check(&token, NOW + 300 + 60).is_ok());
        assert_eq!(check(&token, NOW + 300 + 61), Err(OidcError::Time), "expired");
        assert!(check(&token, NOW - 60).is_ok());
        assert_eq!(check(&token, NOW - 61), Err(OidcError::Time), "issued in the future");
        let mut no_iat = claims();
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(check(&id_token(no_iat), NOW), Err(OidcError::Time));
    }

    #[test]
    fn only_hs512_with_the_client_secret_is_accepted() {
        let token = id_token(claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        // Signed with another secret.
        let forged = sign("another secret another secret another s", &claims()).unwrap();
        assert_eq!(check(&forged, NOW), Err(OidcError::Signature));
        // A changed payload under the old signature.
        let mut changed = claims();
        changed["preferred_username"] = json!("admin");
        let payload = base64url(&serde_json::to_vec(&changed).unwrap());
        let header = input.split('.').next().unwrap();
        let tampered = format!("{header}.{payload}.{}", signature_of(&token));
        assert_eq!(check(&tampered, NOW), Err(OidcError::Signature));
        // `alg: none`, and another algorithm.
        for alg in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS256","typ":"JWT"}"#] {
            let body = input.split('.').nth(1).unwrap();
            let token = format!("{}.{body}.", base64url(alg.as_bytes()));
            assert_eq!(check(&token, NOW), Err(OidcError::Algorithm), "{alg}");
        }
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(check(garbage, NOW), Err(OidcError::Malformed), "{garbage}");
        }
    }

    #[test]
    fn token_answers_give_the_id_token_or_the_oauth_refusal() {
        assert_eq!(
            read_token_answer(
                200,
                br#"{"id_token": "a.b.c", "access_token": "x", "expires_in": 300, "token_type": "Bearer"}"#
            ),
            Ok("a.b.c".to_string())
        );
        let refused = read_token_answer(
            400,
            br#"{"error": "invalid_grant", "error_description": "The provided authorization grant is invalid"}"#,
        );
        assert!(
            matches!(&refused, Err(DuoFailure::Refused { status: 400, code: 0, message, .. }) if message == "invalid_grant"),
            "{refused:?}"
        );
        assert_eq!(
            read_token_answer(502, b"<html/>"),
            Err(DuoFailure::Unavailable { status: 502 })
        );
        assert!(matches!(read_token_answer(200, b"{}"), Err(DuoFailure::Garbled(_))));
        assert!(matches!(
            read_token_answer(200, b"{\"id_token\""),
            Err(DuoFailure::Garbled(_))
        ));
        assert_eq!(
            read_token_answer(429, b""),
            Err(DuoFailure::RateLimited { retry_after_secs: None })
        );
    }

    #[test]
    fn the_authorize_url_carries_the_signed_request_and_the_nonce() {
        let client = Client {
            client_id: "DIXXXXXXXXXXXXXXXXXX",
            client_secret: "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
            api_host: "api-XXXXXXX.test.duosecurity.com",
        };
        let url = client
            .authorize_url(
                "user1",
                "deadbeefdeadbeefdeadbeefdeadbeefdead",
                "n0nce-n0nce-n0nce-n0nce",
                "https://www.example.com",
                2,
            )
            .unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://api-XXXXXXX.test.duosecurity.com/oauth/v1/authorize");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let request = client
            .authorization_request(
                "user1",
                "deadbeefdeadbeefdeadbeefdeadbeefdead",
                "https://www.example.com",
                2,
            )
            .unwrap();
        assert_eq!(
            pairs,
            [
                ("response_type".to_string(), "code".to_string()),
                ("client_id".into(), "DIXXXXXXXXXXXXXXXXXX".into()),
                ("request".into(), request),
                ("nonce".into(), "n0nce-n0nce-n0nce-n0nce".into()),
            ]
        );
    }
}
