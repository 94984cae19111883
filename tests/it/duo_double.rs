//! A test double of Duo's Auth API (protocol reference §1.5), named as such: HTTPS on
//! loopback with a certificate authority and server certificate made for the test (trusted
//! through `tls_ca_file`), every signed request verified as Duo verifies it (the
//! integration key, the date against the double's clock, the signature in version 5 or 2
//! over the configured host or the `Host` header), and answers scripted per test. It is
//! proven right by Duo's own client in `duo::duo_client_is_accepted_by_the_double_*`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use twofold::core::duo_sign::{signature, Canonical, Digest};

/// The keys of the double's applications (Auth API and Web SDK alike), as the tests give
/// them to Twofold: the integration key (client ID) and the secret key (client secret).
pub const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
pub const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

/// How far a request's date may be from the double's clock, as Duo's own mock allows.
const DATE_TOLERANCE_SECS: i64 = 300;

/// What the double saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The signature version that matched (5 or 2), if the request was signed and accepted.
    pub signature_version: Option<u8>,
}

/// How the double's Duo treats one user.
#[derive(Clone, Debug)]
pub struct DuoUser {
    /// What `/preauth` answers: `auth`, `allow`, `deny` or `enroll`.
    pub preauth: &'static str,
    /// Polls of a push or call answered `waiting` before its outcome.
    pub waits: u32,
    /// A push's or call's outcome: `allow`, `deny`, `timeout` or `fraud`.
    pub outcome: &'static str,
    /// The passcode Duo accepts for the user.
    pub passcode: &'static str,
}

impl Default for DuoUser {
    /// Enrolled with one phone; a push is approved after two polls; passcode 123456.
    fn default() -> Self {
        DuoUser {
            preauth: "auth",
            waits: 2,
            outcome: "allow",
            passcode: "123456",
        }
    }
}

/// A scripted failure for the next request.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: &'static str,
}

struct State {
    integration_key: String,
    secret_key: String,
    /// Added to the real clock: the double's Duo runs this far ahead of the machine.
    skew_secs: i64,
    seen: Vec<Seen>,
    users: HashMap<String, DuoUser>,
    /// Universal Prompt codes not yet exchanged: code → (username, nonce, redirect URI,
    /// outcome).
    codes: HashMap<String, (String, String, String, &'static str)>,
    /// Open transactions: polls still `waiting`, and the outcome.
    transactions: HashMap<String, (u32, &'static str)>,
    /// Activations: user id → (username, activation code, polls still `waiting`).
    activations: HashMap<String, (String, String, u32)>,
    /// Polls of a new activation answered `waiting` before Duo Mobile activates.
    activation_waits: u32,
    fail_next: Option<Failure>,
}

pub struct DuoDouble {
    /// `127.0.0.1:PORT`, as an API hostname.
    pub host: String,
    pub port: u16,
    /// The PEM of the certificate authority that signed the double's certificate.
    pub ca_file: PathBuf,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for DuoDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The machine's clock: the double stands for Duo, which has a real one.
#[allow(clippy::disallowed_methods)]
pub fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl DuoDouble {
    pub async fn start(integration_key: &str, secret_key: &str) -> DuoDouble {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, tls) = certificates();
        let ca_file = dir.path().join("duo-double-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State {
            integration_key: integration_key.into(),
            secret_key: secret_key.into(),
            skew_secs: 0,
            seen: Vec::new(),
            users: HashMap::new(),
            codes: HashMap::new(),
            transactions: HashMap::new(),
            activations: HashMap::new(),
            activation_waits: 1,
            fail_next: None,
        }));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let (served_state, served_host) = (state.clone(), host.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, state, host) = (acceptor.clone(), served_state.clone(), served_host.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (state, host) = (state.clone(), host.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = http_body_util::BodyExt::collect(body)
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let response = answer(&state, &host, &parts.method, &parts.uri, &parts.headers, &body);
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        DuoDouble {
            host,
            port,
            ca_file,
            state,
            _dir: dir,
            server,
        }
    }

    /// The double's Duo runs `secs` ahead of this machine (negative: behind).
    pub fn set_skew(&self, secs: i64) {
        self.state.lock().unwrap().skew_secs = secs;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The transaction ids the double gave out, none of which may reach a client.
    pub fn txids(&self) -> Vec<String> {
        self.state.lock().unwrap().transactions.keys().cloned().collect()
    }

    pub fn add_user(&self, username: &str, user: DuoUser) {
        self.state.lock().unwrap().users.insert(username.into(), user);
    }

    /// The next request (signed or not) gets this answer instead.
    pub fn fail_next(&self, failure: Failure) {
        self.state.lock().unwrap().fail_next = Some(failure);
    }
}

/// A certificate authority (its PEM) and the server's TLS configuration with a certificate
/// it signed for `127.0.0.1` (as an IP address, and as a DNS name, which duo_client matches).
fn certificates() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Duo double test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(Vec::<String>::new()).unwrap();
    server.subject_alt_names = vec![
        SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
        SanType::DnsName("127.0.0.1".try_into().unwrap()),
    ];
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
    (ca_cert.pem(), tls)
}

fn envelope(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn ok(response: Value) -> Response {
    envelope(StatusCode::OK, json!({"stat": "OK", "response": response}))
}

fn fail(status: StatusCode, code: u32, message: &str) -> Response {
    envelope(status, json!({"stat": "FAIL", "code": code, "message": message}))
}

fn answer(state: &Mutex<State>, host: &str, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let mut state = state.lock().unwrap();
    let now = real_now() + state.skew_secs;
    let path = uri.path().to_string();
    let mut seen = Seen {
        method: method.to_string(),
        path: path.clone(),
        signature_version: None,
    };
    let response = if let Some(failure) = state.fail_next.take() {
        let mut response = (StatusCode::from_u16(failure.status).unwrap(), failure.body).into_response();
        if let Some(retry_after) = failure.retry_after {
            response
                .headers_mut()
                .insert("retry-after", retry_after.parse().unwrap());
        }
        response
    } else if path == "/auth/v2/ping" {
        ok(json!({"time": now}))
    } else if path.starts_with("/oauth/v1/") {
        let params = params(uri, headers, body);
        universal_prompt(&mut state, host, &path, &params, now)
    } else {
        match verify(&state, host, method, uri, headers, body, now) {
            Err(refusal) => refusal,
            Ok(version) => {
                seen.signature_version = Some(version);
                let params = params(uri, headers, body);
                scripted(&mut state, host, &path, &params, now)
            }
        }
    };
    state.seen.push(seen);
    response
}

/// A request's parameters: a GET's query, a POST's JSON object (signature version 5) or
/// form (version 2).
fn params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json_body {
        let object: HashMap<String, Value> = serde_json::from_slice(body).unwrap_or_default();
        return object
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
    }
    let source = match uri.query() {
        Some(query) => query.as_bytes(),
        None => body,
    };
    url::form_urlencoded::parse(source).into_owned().collect()
}

/// The scripted Auth API (protocol reference §1.1, §1.5).
fn scripted(state: &mut State, host: &str, path: &str, params: &HashMap<String, String>, now: i64) -> Response {
    let bad = |detail: &str| {
        envelope(
            StatusCode::BAD_REQUEST,
            json!({"stat": "FAIL", "code": 40002, "message": "Invalid request parameters", "message_detail": detail}),
        )
    };
    let username = params.get("username").cloned();
    let user = username.as_ref().and_then(|name| state.users.get(name)).cloned();
    match path {
        "/auth/v2/check" => ok(json!({"time": now})),
        "/auth/v2/preauth" => {
            let Some(_) = username else { return bad("username") };
            match user {
                None => ok(
                    json!({"result": "enroll", "status_msg": "Enroll an authentication device to proceed",
                                  "enroll_portal_url": format!("https://{host}/portal?code=x")}),
                ),
                Some(DuoUser { preauth: "auth", .. }) => {
                    ok(json!({"result": "auth", "status_msg": "Account is active",
                    "devices": [{"device": "DPFZRS9FB0D46QFTM891", "type": "phone", "number": "XXX-XXX-0100",
                                 "name": "", "display_name": "iOS (XXX-XXX-0100)",
                                 "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"]}]}))
                }
                Some(DuoUser { preauth: "allow", .. }) => {
                    ok(json!({"result": "allow", "status_msg": "Allowing unknown user"}))
                }
                Some(DuoUser { preauth, .. }) => {
                    ok(json!({"result": preauth, "status_msg": "Your account is disabled"}))
                }
            }
        }
        "/auth/v2/auth" => {
            let Some(user) = user else { return bad("username") };
            let asynchronous = params.get("async").map(String::as_str) == Some("1");
            match params.get("factor").map(String::as_str) {
                Some("push" | "phone" | "auto") if asynchronous => {
                    let txid = data_encoding::HEXLOWER.encode(&twofold::random::bytes::<16>().unwrap());
                    state.transactions.insert(txid.clone(), (user.waits, user.outcome));
                    ok(json!({"txid": txid}))
                }
                Some("push" | "phone" | "auto") => ok(outcome(user.outcome)),
                Some("sms") => ok(json!({"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent"})),
                Some("passcode") if params.get("passcode").map(String::as_str) == Some(user.passcode) => {
                    ok(outcome("allow"))
                }
                Some("passcode") => {
                    ok(json!({"result": "deny", "status": "deny", "status_msg": "Invalid passcode, please try again."}))
                }
                _ => bad("factor"),
            }
        }
        "/auth/v2/auth_status" => {
            let Some(transaction) = params.get("txid").and_then(|txid| state.transactions.get_mut(txid)) else {
                return bad("txid");
            };
            if transaction.0 > 0 {
                transaction.0 -= 1;
                return ok(json!({"result": "waiting", "status": "pushed",
                                 "status_msg": "Pushed a login request to your device..."}));
            }
            ok(outcome(transaction.1))
        }
        "/auth/v2/enroll" => {
            let random = data_encoding::HEXLOWER.encode(&twofold::random::bytes::<8>().unwrap());
            let user_id = format!("DU{}", random.to_uppercase());
            let username = username.unwrap_or_else(|| format!("user{random}"));
            let code = format!("duo://{random}-{}", host.replace(':', "-"));
            let valid_secs: i64 = params.get("valid_secs").and_then(|v| v.parse().ok()).unwrap_or(86_400);
            state.activations.insert(
                user_id.clone(),
                (username.clone(), code.clone(), state.activation_waits),
            );
            ok(
                json!({"user_id": user_id, "username": username, "activation_code": code,
                      "activation_barcode": format!("https://{host}/frame/qr?value={random}"),
                      "expiration": now + valid_secs}),
            )
        }
        "/auth/v2/enroll_status" => {
            let (Some(user_id), Some(code)) = (params.get("user_id"), params.get("activation_code")) else {
                return bad("user_id, activation_code");
            };
            let Some((username, expected, waits)) = state.activations.get_mut(user_id) else {
                return ok(json!("invalid"));
            };
            if expected != code {
                return ok(json!("invalid"));
            }
            if *waits > 0 {
                *waits -= 1;
                return ok(json!("waiting"));
            }
            let username = username.clone();
            state.users.entry(username).or_default();
            ok(json!("success"))
        }
        _ => fail(StatusCode::NOT_FOUND, 40401, "Resource not found"),
    }
}

/// The Universal Prompt (protocol reference §2), the double's Web SDK application using
/// the same pair of keys as Client ID and secret. The authorize endpoint stands for the
/// user at Duo's prompt: it answers at once with the redirect back, as the user's script
/// decides (an unknown user is denied).
fn universal_prompt(state: &mut State, host: &str, path: &str, params: &HashMap<String, String>, now: i64) -> Response {
    let invalid_client = || {
        envelope(
            StatusCode::BAD_REQUEST,
            json!({"stat": "FAIL", "code": 40002, "message": "invalid_client",
                   "message_detail": "The provided client_assertion was invalid.", "timestamp": now}),
        )
    };
    let oauth_error = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": error, "error_description": error})),
        )
            .into_response()
    };
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let assertion_valid = |endpoint: &str| {
        param("client_id") == state.integration_key
            && jwt_claims(&state.secret_key, param("client_assertion")).is_some_and(|claims| {
                claims["iss"] == state.integration_key.as_str()
                    && claims["sub"] == state.integration_key.as_str()
                    && claims["aud"] == format!("https://{host}{endpoint}").as_str()
                    && claims["exp"].as_f64().is_some_and(|exp| exp >= now as f64)
            })
    };
    match path {
        "/oauth/v1/health_check" => match assertion_valid(path) {
            true => ok(json!({"timestamp": now})),
            false => invalid_client(),
        },
        "/oauth/v1/authorize" => {
            let Some(request) = jwt_claims(&state.secret_key, param("request")) else {
                return oauth_error("invalid_request");
            };
            let fresh = request["exp"].as_f64().is_some_and(|exp| exp >= now as f64);
            if param("client_id") != state.integration_key
                || request["aud"] != format!("https://{host}").as_str()
                || !fresh
            {
                return oauth_error("invalid_request");
            }
            let text = |key: &str| request[key].as_str().unwrap_or("").to_string();
            let (username, redirect_uri) = (text("duo_uname"), text("redirect_uri"));
            let outcome = state.users.get(&username).map_or("deny", |user| user.outcome);
            let code = data_encoding::HEXLOWER.encode(&twofold::random::bytes::<16>().unwrap());
            state.codes.insert(
                code.clone(),
                (username, param("nonce").to_string(), redirect_uri.clone(), outcome),
            );
            let back = format!("{redirect_uri}?state={}&duo_code={code}", text("state"));
            (StatusCode::FOUND, [("location", back)]).into_response()
        }
        "/oauth/v1/token" => {
            if !assertion_valid(path) {
                return oauth_error("invalid_client");
            }
            let Some((username, nonce, redirect_uri, outcome)) = state.codes.remove(param("code")) else {
                return oauth_error("invalid_grant");
            };
            if redirect_uri != param("redirect_uri") || param("grant_type") != "authorization_code" {
                return oauth_error("invalid_grant");
            }
            let claims = json!({"aud": state.integration_key, "iss": format!("https://{host}/oauth/v1/token"),
                "exp": now + 300, "iat": now, "auth_time": now, "nonce": nonce, "preferred_username": username,
                "auth_result": {"result": outcome, "status": outcome, "status_msg": "Login Successful"}});
            let id_token = jwt_sign(&state.secret_key, &claims);
            axum::Json(
                json!({"id_token": id_token, "access_token": "double", "expires_in": 300, "token_type": "Bearer"}),
            )
            .into_response()
        }
        _ => fail(StatusCode::NOT_FOUND, 40401, "Resource not found"),
    }
}

/// An HS512 JWT of `claims`, keyed with `secret`.
fn jwt_sign(secret: &str, claims: &Value) -> String {
    let encode = |bytes: &[u8]| data_encoding::BASE64URL_NOPAD.encode(bytes);
    let input = format!(
        "{}.{}",
        encode(br#"{"alg":"HS512","typ":"JWT"}"#),
        encode(claims.to_string().as_bytes())
    );
    format!("{input}.{}", encode(&hs512(secret, &input)))
}

/// The claims of an HS512 JWT whose signature `secret` makes, else nothing.
fn jwt_claims(secret: &str, token: &str) -> Option<Value> {
    let decode = |part: &str| data_encoding::BASE64URL_NOPAD.decode(part.as_bytes()).ok();
    let (input, signature) = token.rsplit_once('.')?;
    let (header, payload) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&decode(header)?).ok()?;
    let valid = header["alg"] == "HS512" && bool::from(hs512(secret, input).ct_eq(&decode(signature)?));
    valid.then(|| serde_json::from_slice(&decode(payload)?).ok()).flatten()
}

fn hs512(secret: &str, input: &str) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The final answer of an authentication with this outcome.
fn outcome(outcome: &str) -> Value {
    match outcome {
        "allow" => json!({"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."}),
        "timeout" => json!({"result": "deny", "status": "timeout", "status_msg": "Login timed out."}),
        "fraud" => json!({"result": "deny", "status": "fraud", "status_msg": "Login request reported as fraudulent."}),
        _ => json!({"result": "deny", "status": "deny", "status_msg": "Login request denied."}),
    }
}

/// Checks a signed request as Duo does; the signature version that matched.
fn verify(
    state: &State,
    host: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    now: i64,
) -> Result<u8, Response> {
    let unauthorized = |code, message| Err(fail(StatusCode::UNAUTHORIZED, code, message));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some((integration_key, signed)) = header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| data_encoding::BASE64.decode(v.as_bytes()).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.split_once(':').map(|(i, s)| (i.to_string(), s.to_string())))
    else {
        return unauthorized(40101, "Missing request credentials");
    };
    if integration_key != state.integration_key {
        return unauthorized(40102, "Invalid integration key in request credentials");
    }
    let Some(date) = header("x-duo-date").or(header("date")) else {
        return unauthorized(40104, "Missing request timestamp");
    };
    let parsed = time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822);
    match parsed {
        Ok(at) if (at.unix_timestamp() - now).abs() <= DATE_TOLERANCE_SECS => {}
        _ => return unauthorized(40105, "Bad request timestamp"),
    }
    let query: Vec<(String, String)> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let is_form = header("content-type").is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = match is_form {
        true => url::form_urlencoded::parse(body).into_owned().collect(),
        false => Vec::new(),
    };
    let v2_params = if is_form { form } else { query.clone() };
    let x_duo: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-duo-") && name.as_str() != "x-duo-date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    let host_header = header("host").unwrap_or("").to_lowercase();
    let bare_host = host_header
        .rsplit_once(':')
        .map_or(host_header.clone(), |(h, _)| h.to_string());
    let method = method.as_str();
    for candidate_host in [host.to_lowercase(), host_header.clone(), bare_host] {
        let query_refs = as_refs(&query);
        let v5 = Canonical {
            date,
            method,
            host: &candidate_host,
            path: uri.path(),
            params: &query_refs,
        }
        .v5(std::str::from_utf8(body).unwrap_or(""), &as_refs(&x_duo));
        let matches = |digest, text: &str| {
            bool::from(
                signature(digest, &state.secret_key, text)
                    .as_bytes()
                    .ct_eq(signed.as_bytes()),
            )
        };
        if matches(Digest::Sha512, &v5) {
            return Ok(5);
        }
        let v2_refs = as_refs(&v2_params);
        let v2 = Canonical {
            date,
            method,
            host: &candidate_host,
            path: uri.path(),
            params: &v2_refs,
        }
        .v2();
        if matches(Digest::Sha512, &v2) || matches(Digest::Sha1, &v2) {
            return Ok(2);
        }
    }
    unauthorized(40103, "Invalid signature in request credentials")
}

fn as_refs(list: &[(String, String)]) -> Vec<(&str, &str)> {
    list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
