//! A test double of a Yubico OTP validation server (protocol 2.0), named as such: plain HTTP
//! on loopback, for only what Debian's `yubiserver` cannot produce (protocol reference §7.8):
//! a bad or missing signature, an answer about another OTP or nonce, `REPLAYED_REQUEST`,
//! `BACKEND_ERROR`, a slow server. Each request gets the next scripted answer; the answers
//! are signed as the protocol says (the signing is proven against yubiserver and the
//! protocol's published examples elsewhere).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use twofold::core::yubico_validation::signature;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Script {
    /// A correct answer with this status (`OK`, `BACKEND_ERROR`, `REPLAYED_REQUEST`, ...),
    /// signed with `key`.
    Status(&'static str),
    /// `OK`, signed with another key.
    WronglySigned,
    /// `OK`, without `h`.
    Unsigned,
    /// `OK`, correctly signed, about another nonce than the request's.
    OtherNonce,
    /// Nothing for this long, then `OK`.
    Slow(Duration),
    /// `OK` with the key's counters (`sessioncounter`, `sessionuse`), signed, as YubiCloud
    /// answers `timestamp=1`.
    OkWithCounters(u16, u8),
}

#[derive(Clone)]
struct Double {
    key: Vec<u8>,
    script: Arc<Mutex<VecDeque<Script>>>,
    requests: Arc<AtomicUsize>,
    last_query: Arc<Mutex<Vec<(String, String)>>>,
}

pub struct YubicoDouble {
    pub url: String,
    script: Arc<Mutex<VecDeque<Script>>>,
    requests: Arc<AtomicUsize>,
    last_query: Arc<Mutex<Vec<(String, String)>>>,
}

impl YubicoDouble {
    /// Starts the double; its answers are signed with `key` (the decoded API key).
    pub async fn start(key: &[u8]) -> YubicoDouble {
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let last_query = Arc::new(Mutex::new(Vec::new()));
        let double = Double {
            key: key.to_vec(),
            script: script.clone(),
            requests: requests.clone(),
            last_query: last_query.clone(),
        };
        let app = axum::Router::new()
            .route("/wsapi/2.0/verify", axum::routing::get(verify))
            .with_state(double);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wsapi/2.0/verify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        YubicoDouble {
            url,
            script,
            requests,
            last_query,
        }
    }

    /// The parameters of the last request.
    pub fn last_query(&self) -> Vec<(String, String)> {
        self.last_query.lock().unwrap().clone()
    }

    /// How many verifications it was asked for.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// What the next requests get, in order.
    pub fn answer(&self, scripts: &[Script]) {
        self.script.lock().unwrap().extend(scripts.iter().cloned());
    }
}

async fn verify(State(double): State<Double>, Query(query): Query<Vec<(String, String)>>) -> String {
    let field = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    double.requests.fetch_add(1, Ordering::SeqCst);
    *double.last_query.lock().unwrap() = query.clone();
    let next = double.script.lock().unwrap().pop_front();
    let mut counters = None;
    let (status, key, nonce, signed) = match next.unwrap_or(Script::Status("OK")) {
        Script::Status(status) => (status, double.key.clone(), field("nonce"), true),
        Script::WronglySigned => ("OK", b"not the api key at all".to_vec(), field("nonce"), true),
        Script::Unsigned => ("OK", double.key.clone(), field("nonce"), false),
        Script::OtherNonce => ("OK", double.key.clone(), "someothernonce0123456789".into(), true),
        Script::Slow(pause) => {
            tokio::time::sleep(pause).await;
            ("OK", double.key.clone(), field("nonce"), true)
        }
        Script::OkWithCounters(use_counter, session) => {
            counters = Some((use_counter.to_string(), session.to_string()));
            ("OK", double.key.clone(), field("nonce"), true)
        }
    };
    let otp = field("otp");
    let t = "2026-12-04T18:00:00Z0000".to_string();
    let mut fields = vec![
        ("nonce", nonce.as_str()),
        ("otp", otp.as_str()),
        ("sl", "100"),
        ("status", status),
        ("t", t.as_str()),
    ];
    if let Some((use_counter, session)) = &counters {
        fields.extend([
            ("sessioncounter", use_counter.as_str()),
            ("sessionuse", session.as_str()),
            ("timestamp", "4660"),
        ]);
    }
    let mut body = String::new();
    if signed {
        body.push_str(&format!("h={}\r\n", signature(&key, &fields)));
    }
    for (name, value) in &fields {
        body.push_str(&format!("{name}={value}\r\n"));
    }
    body
}
