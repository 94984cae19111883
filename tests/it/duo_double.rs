//! A test double of Duo's Auth API (protocol reference §1.5), named as such: HTTPS on
//! loopback with a certificate authority and server certificate made for the test (trusted
//! through `tls_ca_file`), every signed request verified as Duo verifies it (the
//! integration key, the date against the double's clock, the signature in version 5 or 2
//! over the configured host or the `Host` header), and answers scripted per test. It is
//! proven right by Duo's own client in `duo::duo_client_is_accepted_by_the_double_*`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use twofold::core::duo_sign::{signature, Canonical, Digest};

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

struct State {
    integration_key: String,
    secret_key: String,
    /// Added to the real clock: the double's Duo runs this far ahead of the machine.
    skew_secs: i64,
    seen: Vec<Seen>,
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
    let response = if path == "/auth/v2/ping" {
        envelope(StatusCode::OK, json!({"stat": "OK", "response": {"time": now}}))
    } else {
        match verify(&state, host, method, uri, headers, body, now) {
            Err(refusal) => refusal,
            Ok(version) => {
                seen.signature_version = Some(version);
                match path.as_str() {
                    "/auth/v2/check" => envelope(StatusCode::OK, json!({"stat": "OK", "response": {"time": now}})),
                    _ => fail(StatusCode::NOT_FOUND, 40401, "Resource not found"),
                }
            }
        }
    };
    state.seen.push(seen);
    response
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
