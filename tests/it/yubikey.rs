//! Twofold reads Yubico OTPs as Yubico's tools make them (500 OTPs of random keys, IDs and
//! counters made by `yubiotp`, PyPI, open to the same fields in `core::yubico_otp`), and
//! talks to a real validation server, Debian's `yubiserver`, as protocol 2.0 says.

use serde_json::json;
use twofold::core::yubico_otp::{open, parse};

use crate::duo_client::run_python;

fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    data_encoding::HEXLOWER
        .decode(hex.as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn otps_made_by_yubiotp_open_to_their_fields() {
    let vectors = run_python("yubiotp_vectors.py", &json!({"count": 500, "seed": 7}));
    let vectors = vectors.as_array().unwrap();
    assert_eq!(vectors.len(), 500);
    for vector in vectors {
        let text = vector["otp"].as_str().unwrap();
        let otp = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(otp.public_id, vector["public_id"].as_str().unwrap(), "{text}");
        let token = open(
            &otp,
            &bytes(vector["aes_key"].as_str().unwrap()),
            &bytes(vector["private_id"].as_str().unwrap()),
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        let field = |name: &str| vector[name].as_u64().unwrap();
        assert_eq!(
            (
                u64::from(token.use_counter),
                u64::from(token.session_counter),
                u64::from(token.timestamp),
                u64::from(token.random)
            ),
            (
                field("use_counter"),
                field("session_counter"),
                field("timestamp"),
                field("random")
            ),
            "{text}"
        );
    }
}

/// How the tests' API client (ID 1) asks the servers at `urls`, for at most `secs` seconds.
fn yubiserver_client(urls: &[String], secs: u64) -> twofold::outbound::yubico::ValidationService<'_> {
    twofold::outbound::yubico::ValidationService {
        urls,
        client_id: "1",
        api_key: API_SECRET,
        signed_counters: false,
        sync_level: None,
        timeout: std::time::Duration::from_secs(secs),
    }
}

/// The verify URL of a server that accepts connections and never answers.
async fn hanging_server() -> String {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wsapi/2.0/verify", hung.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    url
}

/// The verify URL of a port nothing listens on (it was free a moment ago).
fn closed_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/wsapi/2.0/verify", listener.local_addr().unwrap())
}

/// Debian's `yubiserver` 0.6, a real validation server (protocol reference §7), on a free
/// port with a throwaway database holding two keys and one API client; stopped when dropped.
pub(crate) struct YubiServer {
    pub url: String,
    pid: u32,
    database: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A YubiKey as yubiserver knows it.
pub(crate) struct Key {
    aes_key: &'static str,
    private_id: &'static str,
    pub public_id: &'static str,
}

/// The reference's worked vector, and a second key for another account.
pub(crate) const KEY: Key = Key {
    aes_key: "2b7e151628aed2a6abf7158809cf4f3c",
    private_id: "a1b2c3d4e5f6",
    public_id: "vvcijgklnrbf",
};
pub(crate) const OTHER_KEY: Key = Key {
    aes_key: "000102030405060708090a0b0c0d0e0f",
    private_id: "0a0b0c0d0e0f",
    public_id: "ccccccbcgujh",
};
/// The API client's secret (`API_KEY` in base64).
const API_SECRET: &[u8] = b"abcdefghijklmnopqrst";
pub(crate) const API_KEY: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3Q=";

impl YubiServer {
    pub fn start() -> YubiServer {
        use std::os::unix::fs::PermissionsExt;
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        // Started as root, yubiserver runs as its own user with group root: the directory
        // and the database are group-writable so that it can record counters.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let database = dir.path().join("yubiserver.sqlite");
        std::fs::copy("/etc/yubiserver/yubiserver.sqlite.init", &database).unwrap();
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o660)).unwrap();
        let admin = |args: &[&str]| {
            let output = Command::new("yubiserver-admin")
                .arg("-b")
                .arg(&database)
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        };
        for (name, key) in [("ci", &KEY), ("other", &OTHER_KEY)] {
            admin(&["-y", "-a", name, key.public_id, key.private_id, key.aes_key]);
        }
        admin(&["-p", "-a", "ci", std::str::from_utf8(API_SECRET).unwrap()]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Command::new("yubiserver")
            .arg("-d")
            .arg(&database)
            .args(["-p", &port.to_string(), "-l"])
            .arg(dir.path().join("yubiserver.log"))
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(started.status.success());
        // It daemonizes at once; wait for the port, then find the daemon by it.
        let ready = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(ready, "yubiserver did not start on port {port}");
        let listing = Command::new("ss")
            .args(["-Hltnp", &format!("sport = :{port}")])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).to_string();
        let pid = listing
            .split("pid=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid for port {port} in {listing:?}"));
        YubiServer {
            url: format!("http://127.0.0.1:{port}/wsapi/2.0/verify"),
            pid,
            database,
            _dir: dir,
        }
    }

    /// OTPs of `KEY`, for these (use counter, session counter, timestamp).
    pub fn mint(otps: &[(u16, u8, u32)]) -> Vec<String> {
        Self::mint_for(&KEY, otps)
    }

    fn mint_for(key: &Key, otps: &[(u16, u8, u32)]) -> Vec<String> {
        let minted = run_python(
            "yubiotp_mint.py",
            &json!({"aes_key": key.aes_key, "private_id": key.private_id, "public_id": key.public_id, "otps": otps}),
        );
        minted
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect()
    }

    /// Makes the database read-only for yubiserver, which then still answers OK, but
    /// records no counter (protocol reference §7.5).
    fn lose_its_counters(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.database, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

impl Drop for YubiServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yubiserver_answers_are_verified_and_read() {
    use twofold::core::yubico_validation::{AnswerError, Status};
    use twofold::outbound::yubico::{ValidationClient, ValidationFailure, ValidationService};
    let server = YubiServer::start();
    let client = ValidationClient::new(None).unwrap();
    let urls = [server.url.clone()];
    let service = yubiserver_client(&urls, 3);
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200)]);
    let first = parse(&otps[0]).unwrap();
    let verdict = client.verify(&service, &first).await.unwrap();
    assert_eq!(verdict.status, Status::Ok);
    assert_eq!(
        client.verify(&service, &first).await.unwrap().status,
        Status::ReplayedOtp
    );

    // Another key's code with this key's public ID does not decrypt.
    let foreign = run_python(
        "yubiotp_mint.py",
        &json!({"aes_key": "00112233445566778899aabbccddeeff", "private_id": KEY.private_id,
                "public_id": KEY.public_id, "otps": [[1, 5, 0x300]]}),
    );
    let foreign = parse(foreign[0].as_str().unwrap()).unwrap();
    assert_eq!(client.verify(&service, &foreign).await.unwrap().status, Status::BadOtp);

    // A wrong API key: yubiserver's signature does not hold, so its OK is not believed;
    // an unknown client gets an unsigned answer, not believed either.
    let second = parse(&otps[1]).unwrap();
    let wrong_key = ValidationService {
        api_key: b"another twenty chars",
        ..service
    };
    assert_eq!(
        client.verify(&wrong_key, &second).await,
        Err(ValidationFailure::Unbelievable(AnswerError::Signature))
    );
    let unknown = ValidationService {
        client_id: "99",
        ..service
    };
    assert_eq!(
        client.verify(&unknown, &second).await,
        Err(ValidationFailure::Unbelievable(AnswerError::Signature))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_or_hangs_is_unreachable_within_the_timeout() {
    use twofold::core::yubico_validation::Status;
    use twofold::outbound::yubico::{ValidationClient, ValidationFailure};
    let server = YubiServer::start();
    let client = ValidationClient::new(None).unwrap();
    let closed = closed_server();
    let hung_url = hanging_server().await;
    let otp = parse(&YubiServer::mint(&[(2, 0, 0x100)])[0]).unwrap();
    let ask = |urls: Vec<String>| {
        let client = client.clone();
        let otp = otp.clone();
        async move {
            let service = yubiserver_client(&urls, 1);
            client.verify(&service, &otp).await
        }
    };
    assert!(matches!(
        ask(vec![closed.clone()]).await,
        Err(ValidationFailure::Unreachable(_))
    ));
    let hanging = ask(vec![hung_url.clone()]).await;
    assert_eq!(hanging, Err(ValidationFailure::Unreachable("no answer in time".into())));
    // With a server that hangs and one that answers, the answer is taken.
    let both = ask(vec![hung_url, closed, server.url.clone()]).await;
    assert_eq!(both.unwrap().status, Status::Ok);
}

// ---- The YubiKey service over HTTP, against yubiserver, on both databases ----------------

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{error_code, Backend, Client, TestServer};

on_both_backends!(
    the_api_key_is_write_only_over_http,
    a_key_enrols_and_logs_in_and_twofold_keeps_its_own_replay_ledger,
    validation_server_troubles_are_never_a_wrong_code,
);

/// The settings document with YubiKey on for everyone, checked by `urls`.
async fn yubikey_settings(admin: &Client, urls: &[&str], api_key: Value) -> Value {
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["services"]["yubikey"] = json!({
        "active": true, "clients": true, "admins": true,
        "settings": {"mode": "validation_server", "client_id": "1", "api_key": api_key,
                     "urls": urls, "timeout_secs": 2, "signed_counters": false},
    });
    settings
}

/// A server whose YubiKey service asks the validation servers `urls` (its settings document
/// changed by `adjust`), and its signed-in full administrator.
async fn server_asking(backend: Backend, urls: &[&str], adjust: impl FnOnce(&mut Value)) -> (TestServer, Client) {
    let server = TestServer::start(backend).await;
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    let mut settings = yubikey_settings(&admin, urls, json!(API_KEY)).await;
    adjust(&mut settings);
    let (status, saved) = admin.put("/api/v1/admin/two-factor/settings", settings).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    (server, admin)
}

/// A client account (made if need be) that enrols the key whose code is `otp`; returns its
/// backup code.
async fn enrolled_with_key(server: &TestServer, username: &str, otp: &str) -> String {
    let kind = twofold::core::policy::AccountKind::Client;
    if server.app.store.find_account(kind, username).await.unwrap().is_none() {
        server.client_account(username).await;
    }
    let client = server.client();
    assert_eq!(client.login("client", username).await.1["status"], "authenticated");
    let (status, confirmed) = enrolling(&client, json!({"label": "Blue key"}), otp).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    confirmed["backup_code"].as_str().unwrap().to_string()
}

/// Starts a YubiKey enrolment (`start`: its body) and confirms it with `otp`: the answer
/// to the confirmation.
async fn enrolling(client: &Client, start: Value, otp: &str) -> crate::support::Answer {
    let (status, started) = client.post("/api/v1/me/two-factor/yubikey/enrollment", start).await;
    assert_eq!(
        (status, &started["type"]),
        (StatusCode::OK, &json!("yubikey")),
        "{started}"
    );
    client
        .post("/api/v1/me/two-factor/yubikey/enrollment/confirm", json!({"code": otp}))
        .await
}

/// A password login of `username` that stops at the second step.
async fn at_second_step(server: &TestServer, username: &str) -> Client {
    let client = server.client();
    let (_, login) = client.login("client", username).await;
    assert_eq!(login["status"], "second_factor_required", "{login}");
    client
}

async fn answer(client: &Client, otp: &str) -> crate::support::Answer {
    client
        .post(
            "/api/v1/login/second-factor",
            json!({"service": "yubikey", "code": otp}),
        )
        .await
}

/// The Secret Key is answered only as `{"set": true}`, never shown, logged or audited; a
/// round trip of the document keeps it; it can be cleared; one that is not base64 is refused.
async fn the_api_key_is_write_only_over_http(backend: Backend) {
    let yubiserver = YubiServer::start();
    let (server, admin) = server_asking(backend, &[&yubiserver.url], |_| {}).await;
    let (_, settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    assert_eq!(
        settings["services"]["yubikey"]["settings"]["api_key"],
        json!({"set": true})
    );
    let page = admin.get("/admin/settings/two-factor").await;
    let everything = format!("{settings} {page:?}");
    assert!(
        !everything.contains(API_KEY) && !everything.contains("YWJj"),
        "{everything}"
    );
    let audit = server.app.store.audit_events(None, 100).await.unwrap();
    let audited = format!("{audit:?}");
    assert!(!audited.contains(API_KEY), "{audited}");
    assert!(
        audit.iter().any(|e| e.event == "settings_changed"
            && e.detail
                .as_deref()
                .unwrap_or_default()
                .contains("services.yubikey.settings.api_key")),
        "the audit names the Secret Key as changed: {audited}"
    );

    // The document as answered goes back as it is: the key stays, and still works.
    let mut round_trip = settings.clone();
    round_trip.as_object_mut().unwrap().remove("server_time_utc");
    assert_eq!(
        admin
            .put("/api/v1/admin/two-factor/settings", round_trip.clone())
            .await
            .0,
        StatusCode::OK
    );
    let otp = &YubiServer::mint(&[(1, 0, 0x100)])[0];
    enrolled_with_key(&server, "alice", otp).await;

    // Not base64: refused, and the key set before is kept.
    let mut bad = round_trip.clone();
    bad["services"]["yubikey"]["settings"]["api_key"] = json!("not base64!");
    let refused = admin.put("/api/v1/admin/two-factor/settings", bad).await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY, "{refused:?}");
    assert!(refused.1["error"]["message"].as_str().unwrap().contains("base64"));
    // Active without a key: refused. Off, the key may be cleared.
    let mut cleared = round_trip.clone();
    cleared["services"]["yubikey"]["settings"]["api_key"] = json!({"set": false});
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", cleared.clone()).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    cleared["services"]["yubikey"]["active"] = json!(false);
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", cleared).await.0,
        StatusCode::OK
    );
    let (_, settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    assert_eq!(
        settings["services"]["yubikey"]["settings"]["api_key"],
        json!({"set": false})
    );
    assert_eq!(
        server.app.store.setting_secrets_set().await.unwrap(),
        Vec::<(String, String)>::new()
    );
}

/// Enrol a key, log in with it; a wrong OTP, another account's key and a replayed OTP are
/// refused, the last one even when yubiserver, having lost its counters, answers OK.
async fn a_key_enrols_and_logs_in_and_twofold_keeps_its_own_replay_ledger(backend: Backend) {
    use twofold::core::yubico_validation::Status;
    use twofold::outbound::yubico::ValidationClient;
    let yubiserver = YubiServer::start();
    let (server, _admin) = server_asking(backend, &[&yubiserver.url], |_| {}).await;
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200), (1, 2, 0x300), (1, 3, 0x400)]);
    let backup_code = enrolled_with_key(&server, "alice", &otps[0]).await;
    assert!(!backup_code.is_empty());
    let bob_otps = YubiServer::mint_for(&OTHER_KEY, &[(1, 0, 0x100), (1, 1, 0x200)]);
    enrolled_with_key(&server, "bob", &bob_otps[0]).await;

    let alice = at_second_step(&server, "alice").await;
    // Another key's OTP with this key's public ID: yubiserver says BAD_OTP.
    let forged = run_python(
        "yubiotp_mint.py",
        &json!({"aes_key": "00112233445566778899aabbccddeeff", "private_id": KEY.private_id,
                "public_id": KEY.public_id, "otps": [[1, 9, 0x900]]}),
    );
    let wrong = answer(&alice, forged[0].as_str().unwrap()).await;
    assert_eq!(
        (wrong.0, error_code(&wrong)),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );
    // Bob's key is not Alice's: refused, and not sent anywhere, so Bob's OTP still works.
    let foreign = answer(&alice, &bob_otps[1]).await;
    assert_eq!(
        (foreign.0, error_code(&foreign)),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );
    let bob = at_second_step(&server, "bob").await;
    assert_eq!(answer(&bob, &bob_otps[1]).await.1["status"], "authenticated");
    // Malformed: refused before any network call, with a clear message.
    let typo = answer(&alice, "hello").await;
    assert_eq!(
        (typo.0, error_code(&typo)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code_format")
    );
    assert!(typo.1["error"]["message"].as_str().unwrap().contains("YubiKey"));
    assert_eq!(answer(&alice, &otps[1]).await.1["status"], "authenticated");

    // A replay yubiserver itself refuses.
    let again = at_second_step(&server, "alice").await;
    let replayed = answer(&again, &otps[1]).await;
    assert_eq!(
        (replayed.0, error_code(&replayed)),
        (StatusCode::UNAUTHORIZED, "code_already_used")
    );

    // yubiserver loses its counters: it answers OK to a replay, Twofold does not.
    yubiserver.lose_its_counters();
    assert_eq!(answer(&again, &otps[2]).await.1["status"], "authenticated");
    let client = ValidationClient::new(None).unwrap();
    let urls = [yubiserver.url.clone()];
    let service = yubiserver_client(&urls, 3);
    let replay = parse(&otps[2]).unwrap();
    assert_eq!(
        client.verify(&service, &replay).await.unwrap().status,
        Status::Ok,
        "the precondition: yubiserver accepts the replay"
    );
    let third = at_second_step(&server, "alice").await;
    let replayed = answer(&third, &otps[2]).await;
    assert_eq!(
        (replayed.0, error_code(&replayed)),
        (StatusCode::UNAUTHORIZED, "code_already_used")
    );
    // A new OTP still works; the backup code too.
    assert_eq!(answer(&third, &otps[3]).await.1["status"], "authenticated");
    let last = at_second_step(&server, "alice").await;
    let (status, used) = last
        .post("/api/v1/login/backup-code", json!({"backup_code": backup_code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{used}");

    // A key belongs to one account: Carol cannot enrol Alice's.
    server.client_account("carol").await;
    let carol = server.client();
    carol.login("client", "carol").await;
    yubiserver_writable(&yubiserver);
    let fresh = YubiServer::mint(&[(2, 0, 0x100)]);
    let taken = enrolling(&carol, json!({}), &fresh[0]).await;
    assert_eq!(
        (taken.0, error_code(&taken)),
        (StatusCode::CONFLICT, "conflict"),
        "{taken:?}"
    );
}

fn yubiserver_writable(yubiserver: &YubiServer) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&yubiserver.database, std::fs::Permissions::from_mode(0o660)).unwrap();
}

/// A wrong Secret Key and a server that is down are the administrator's trouble: the user is
/// told so (never "wrong code"), the audit names the problem, and nothing hangs.
async fn validation_server_troubles_are_never_a_wrong_code(backend: Backend) {
    let yubiserver = YubiServer::start();
    let (server, admin) = server_asking(backend, &[&yubiserver.url], |_| {}).await;
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200), (1, 2, 0x300)]);
    enrolled_with_key(&server, "alice", &otps[0]).await;

    let wrong_key = yubikey_settings(&admin, &[&yubiserver.url], json!("YW5vdGhlciB0d2VudHkgY2hhcnM=")).await;
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", wrong_key).await.0,
        StatusCode::OK
    );
    let alice = at_second_step(&server, "alice").await;
    let refused = answer(&alice, &otps[1]).await;
    assert_eq!(
        (refused.0, error_code(&refused)),
        (StatusCode::BAD_GATEWAY, "second_factor_service_misconfigured")
    );
    assert!(refused.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("administrator"));
    let audit = server.app.store.audit_events(None, 5).await.unwrap();
    let detail = audit[0].detail.clone().unwrap_or_default();
    assert_eq!(audit[0].event, "login_yubikey");
    assert!(detail.contains("Secret Key"), "{detail}");
    // The administrator sees it on the settings page.
    let (_, page) = admin.get("/admin/settings/two-factor").await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains("Trouble with the validation servers") && page.contains("check the Secret Key"),
        "{page}"
    );

    let closed = closed_server();
    let down = yubikey_settings(&admin, &[&closed], json!({"set": true})).await;
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", down).await.0,
        StatusCode::OK
    );
    let refused = answer(&alice, &otps[2]).await;
    assert_eq!(
        (refused.0, error_code(&refused)),
        (StatusCode::SERVICE_UNAVAILABLE, "second_factor_service_unreachable")
    );
    // Fixed, with a second server that hangs first in the list: the same OTP, never judged,
    // now logs in, from the server that answers.
    let hung_url = hanging_server().await;
    let up = yubikey_settings(&admin, &[&hung_url, &yubiserver.url], json!(API_KEY)).await;
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", up).await.0,
        StatusCode::OK
    );
    let logged_in = answer(&alice, &otps[2]).await;
    assert_eq!(logged_in.1["status"], "authenticated", "{logged_in:?}");
}

/// The key file lines (ykman's CSV) of `key`.
pub(crate) fn key_file_line(serial: u32, key: &Key) -> String {
    format!(
        "{serial},{},{},{},,2026-12-04T18:00:00,\n",
        key.public_id, key.private_id, key.aes_key
    )
}

/// `twofold yubikey import` on the server's database; its success and output.
fn import(server: &TestServer, file: &str, args: &[&str]) -> (bool, String) {
    let path = server.dir.path().join("keys.csv");
    std::fs::write(&path, file).unwrap();
    let mut command = crate::cli::twofold(server.dir.path());
    if let Some(url) = server.config_database_url() {
        command.env("TWOFOLD_DATABASE_URL", url);
    }
    command.args(["yubikey", "import"]).arg(&path).args(args);
    let (ok, out, err) = crate::cli::run(&mut command);
    (ok, format!("{out}{err}"))
}

/// Local mode: no server at all. Keys imported with the CLI (one for whoever touches it,
/// one assigned to Bob) enrol and log in; replayed, older and tampered OTPs are refused, as
/// are keys nobody imported and keys assigned to someone else.
async fn local_mode_checks_otps_itself_with_imported_keys(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    let mut settings = yubikey_settings(&admin, &[], json!({"set": false})).await;
    settings["services"]["yubikey"]["settings"]["mode"] = json!("local");
    settings["services"]["yubikey"]["settings"]["client_id"] = json!("");
    let (status, saved) = admin.put("/api/v1/admin/two-factor/settings", settings).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    server.client_account("bob").await;

    // A bad file imports nothing, and says which line is wrong.
    let bad = format!("{}1,vvcijgklnrbf,zz,00\n", key_file_line(1, &OTHER_KEY));
    let (ok, said) = import(&server, &bad, &[]);
    assert!(!ok && said.contains("line 2: the private ID"), "{said}");
    let (ok, said) = import(&server, &key_file_line(7, &KEY), &[]);
    assert!(ok && said.contains("imported 1 YubiKey(s)"), "{said}");
    let (ok, said) = import(&server, &key_file_line(8, &OTHER_KEY), &["--assign-to", "bob"]);
    assert!(ok && said.contains("assigned to bob"), "{said}");
    let (ok, said) = import(&server, &key_file_line(7, &KEY), &[]);
    assert!(
        !ok && said.contains("Already imported") && said.contains(KEY.public_id),
        "{said}"
    );

    // The same through the API, for full administrators only.
    let third = Key {
        aes_key: "00112233445566778899aabbccddeeff",
        private_id: "112233445566",
        public_id: "ccccccbcgujj",
    };
    let body = |assign: Value| json!({"keys": key_file_line(9, &third), "assign_to": assign});
    let unknown = admin
        .post(
            "/api/v1/admin/yubikeys",
            body(json!({"kind": "client", "name": "nobody"})),
        )
        .await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND, "{unknown:?}");
    let bad = admin
        .post("/api/v1/admin/yubikeys", json!({"keys": "1,vvcijgklnrbf,zz,00"}))
        .await;
    assert_eq!(
        (bad.0, error_code(&bad)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
    );
    server
        .create_account(
            twofold::core::policy::AccountKind::Admin,
            Some(twofold::core::policy::Role::Staff),
            "staff",
        )
        .await;
    let staff = server.client();
    staff.login("admin", "staff").await;
    assert_eq!(
        staff.post("/api/v1/admin/yubikeys", body(Value::Null)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(staff.get("/api/v1/admin/yubikeys").await.0, StatusCode::FORBIDDEN);
    let imported = admin
        .post("/api/v1/admin/yubikeys", body(json!({"kind": "client", "name": "bob"})))
        .await;
    assert_eq!((imported.0, &imported.1["imported"]), (StatusCode::OK, &json!(1)));

    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200), (2, 0, 0x100), (2, 1, 0x200)]);
    enrolled_with_key(&server, "alice", &otps[0]).await;
    let alice = at_second_step(&server, "alice").await;
    for (used, why) in [(&otps[0], "the enrolment's"), (&otps[0], "again")] {
        let refused = answer(&alice, used).await;
        assert_eq!(error_code(&refused), "code_already_used", "{why}: {refused:?}");
    }
    // A changed character: the CRC does not hold.
    let mut tampered = otps[1].clone();
    let last = if tampered.ends_with('c') { "b" } else { "c" };
    tampered.replace_range(43.., last);
    assert_eq!(error_code(&answer(&alice, &tampered).await), "invalid_code");
    assert_eq!(answer(&alice, &otps[2]).await.1["status"], "authenticated");
    // The OTP before it, never used, is older than the last accepted: refused.
    let again = at_second_step(&server, "alice").await;
    assert_eq!(error_code(&answer(&again, &otps[1]).await), "code_already_used");
    assert_eq!(answer(&again, &otps[3]).await.1["status"], "authenticated");

    // Bob's key is his: Alice cannot add it, Bob can.
    let bob_otps = YubiServer::mint_for(&OTHER_KEY, &[(1, 0, 0x100), (1, 1, 0x200)]);
    let refused = enrolling(&again, json!({"password": crate::support::PASSWORD}), &bob_otps[0]).await;
    assert_eq!(
        (refused.0, error_code(&refused)),
        (StatusCode::CONFLICT, "conflict"),
        "{refused:?}"
    );
    enrolled_with_key(&server, "bob", &bob_otps[1]).await;
    let (_, keys) = admin.get("/api/v1/admin/yubikeys").await;
    let mut summary: Vec<(Value, Value, Value)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["public_id"].clone(),
                k["assigned_to"].clone(),
                k["enrolled_by"].clone(),
            )
        })
        .collect();
    // Listed in the order of import; the command line's clock is the real one, so sorted here.
    summary.sort_by_key(|(public_id, _, _)| public_id.to_string());
    assert_eq!(
        summary,
        [
            (json!(OTHER_KEY.public_id), json!("bob"), json!("bob")),
            (json!("ccccccbcgujj"), json!("bob"), Value::Null),
            (json!(KEY.public_id), Value::Null, json!("alice")),
        ]
    );

    // A key nobody imported.
    let unknown = YubiServer::mint_for(
        &Key {
            aes_key: "0f0e0d0c0b0a09080706050403020100",
            private_id: "010203040506",
            public_id: "ccccccccccdb",
        },
        &[(1, 0, 0x100)],
    );
    server.client_account("carol").await;
    let carol = server.client();
    carol.login("client", "carol").await;
    let refused = enrolling(&carol, json!({}), &unknown[0]).await;
    assert_eq!(error_code(&refused), "validation_error", "{refused:?}");
    assert!(refused.1["error"]["message"].as_str().unwrap().contains("import"));
}

on_both_backends!(local_mode_checks_otps_itself_with_imported_keys);

/// What yubiserver cannot produce, from a double (`yubico_double`): answers that cannot be
/// believed are the configuration's (or an attacker's) problem, never an OK; a server that
/// cannot settle it or is too slow is unreachable; none of it is a wrong code, and the OTP
/// still works once a believable server answers.
async fn answers_that_cannot_be_believed_are_never_ok(backend: Backend) {
    use crate::yubico_double::{Script, YubicoDouble};
    let double = YubicoDouble::start(API_SECRET).await;
    let (server, _admin) = server_asking(backend, &[&double.url], |_| {}).await;
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200)]);
    enrolled_with_key(&server, "alice", &otps[0]).await;

    let alice = at_second_step(&server, "alice").await;
    let cases = [
        (Script::WronglySigned, "second_factor_service_misconfigured"),
        (Script::Unsigned, "second_factor_service_misconfigured"),
        (Script::OtherNonce, "second_factor_service_misconfigured"),
        (Script::Status("BAD_SIGNATURE"), "second_factor_service_misconfigured"),
        (Script::Status("NO_SUCH_CLIENT"), "second_factor_service_misconfigured"),
        (
            Script::Status("OPERATION_NOT_ALLOWED"),
            "second_factor_service_misconfigured",
        ),
        (Script::Status("BACKEND_ERROR"), "second_factor_service_unreachable"),
        (
            Script::Status("NOT_ENOUGH_ANSWERS"),
            "second_factor_service_unreachable",
        ),
        (Script::Status("REPLAYED_REQUEST"), "second_factor_service_unreachable"),
        // Beyond the 2-second timeout of the settings.
        (
            Script::Slow(std::time::Duration::from_secs(4)),
            "second_factor_service_unreachable",
        ),
    ];
    // Ten of them, twice the lockout's limit: none counts against the user.
    for (script, expected) in cases {
        double.answer(std::slice::from_ref(&script));
        let refused = answer(&alice, &otps[1]).await;
        assert_eq!(error_code(&refused), expected, "{script:?}: {refused:?}");
    }
    // The same OTP, now believably OK: accepted (nothing above used it up).
    assert_eq!(answer(&alice, &otps[1]).await.1["status"], "authenticated");

    // Wrong OTPs do count, before the server is asked: the sixth is refused unasked.
    let guesser = at_second_step(&server, "alice").await;
    let guesses = YubiServer::mint(&[
        (1, 2, 0x300),
        (1, 3, 0x400),
        (1, 4, 0x500),
        (1, 5, 0x600),
        (1, 6, 0x700),
        (1, 7, 0x800),
    ]);
    for guess in &guesses[..5] {
        double.answer(&[Script::Status("BAD_OTP")]);
        assert_eq!(error_code(&answer(&guesser, guess).await), "invalid_code");
    }
    let asked = double.requests();
    let locked = answer(&guesser, &guesses[5]).await;
    assert_eq!(error_code(&locked), "locked_out", "{locked:?}");
    assert_eq!(double.requests(), asked, "a locked-out guess never reaches the server");
}

on_both_backends!(answers_that_cannot_be_believed_are_never_ok);

/// With `signed_counters`, the key's counters as the server signed them are the replay
/// counter: a server that answers OK to an OTP whose counters did not move forward (it lost
/// its own) is not believed. With a `sync_level`, the `sl` is asked for.
async fn signed_counters_must_move_forward(backend: Backend) {
    use crate::yubico_double::{Script, YubicoDouble};
    let double = YubicoDouble::start(API_SECRET).await;
    let (server, _admin) = server_asking(backend, &[&double.url], |s| {
        s["services"]["yubikey"]["settings"]["signed_counters"] = json!(true);
        s["services"]["yubikey"]["settings"]["sync_level"] = json!(50);
    })
    .await;
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200), (1, 2, 0x300)]);
    double.answer(&[Script::OkWithCounters(1, 0)]);
    enrolled_with_key(&server, "alice", &otps[0]).await;
    let asked: Vec<(String, String)> = double.last_query();
    let param = |name: &str| asked.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!((param("timestamp"), param("sl")), (Some("1"), Some("50")), "{asked:?}");

    let alice = at_second_step(&server, "alice").await;
    double.answer(&[Script::OkWithCounters(1, 1)]);
    assert_eq!(answer(&alice, &otps[1]).await.1["status"], "authenticated");
    // Another OTP, which the server says OK to, with counters that did not move.
    let again = at_second_step(&server, "alice").await;
    double.answer(&[Script::OkWithCounters(1, 1)]);
    let refused = answer(&again, &otps[2]).await;
    assert_eq!(error_code(&refused), "code_already_used", "{refused:?}");
    double.answer(&[Script::OkWithCounters(2, 0)]);
    assert_eq!(answer(&again, &otps[2]).await.1["status"], "authenticated");
}

on_both_backends!(signed_counters_must_move_forward);

/// Forced enrolment, the admin's disable and the backup code work for YubiKey as for the
/// other services: a forced client may choose it, its enrolment completes the login, and an
/// administrator's disable sends it back to enrolment.
async fn a_forced_client_enrols_a_yubikey_and_an_admin_disables_it(backend: Backend) {
    use crate::yubico_double::YubicoDouble;
    let double = YubicoDouble::start(API_SECRET).await;
    let (server, admin) = server_asking(backend, &[&double.url], |s| {
        s["force_clients"] = json!(true);
    })
    .await;
    let dora = server.client_account("dora").await;

    let client = server.client();
    let (_, login) = client.login("client", "dora").await;
    assert_eq!(login["status"], "enrollment_required");
    let offered: Vec<&str> = login["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["totp", "yubikey"]);
    assert_eq!(error_code(&client.get("/api/v1/me").await), "enrollment_required");
    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200)]);
    let (status, confirmed) = enrolling(&client, json!({"label": "Blue key"}), &otps[0]).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let backup_code = confirmed["backup_code"].as_str().unwrap().to_string();
    let (status, me) = client.get("/api/v1/me").await;
    assert_eq!(
        (status, &me["two_factor"]["enabled"]),
        (StatusCode::OK, &json!(true)),
        "{me}"
    );

    // The backup code instead of the key.
    let other = at_second_step(&server, "dora").await;
    let (status, used) = other
        .post("/api/v1/login/backup-code", json!({"backup_code": backup_code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{used}");

    // The administrator turns it off: every session ends, and the next login enrols again.
    let disabled = admin
        .post(&format!("/api/v1/admin/accounts/{dora}/two-factor/disable"), json!({}))
        .await;
    assert!(disabled.0.is_success(), "{disabled:?}");
    assert_eq!(error_code(&client.get("/api/v1/me").await), "unauthenticated");
    let (_, login) = server.client().login("client", "dora").await;
    assert_eq!(login["status"], "enrollment_required");
}

on_both_backends!(a_forced_client_enrols_a_yubikey_and_an_admin_disables_it);
