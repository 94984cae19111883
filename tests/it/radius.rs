//! RADIUS: Debian's FreeRADIUS with `rlm_rest`, configured with the files the README ships
//! (`contrib/freeradius`), asks Twofold's `/validate/radius`; `radclient` plays the VPN.
//! Over plain HTTP, the endpoint's status codes are the ones `rlm_rest` reads.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::applications::{audit, registered};
use crate::support::{enrolled_client, error_code, raised_lockout, Answer, Backend, TestServer};

on_both_backends!(
    a_vpn_asks_freeradius_and_freeradius_asks_twofold,
    validate_radius_answers_in_the_status_codes_rlm_rest_reads,
);

/// The secret FreeRADIUS shares with its RADIUS client (the VPN; here `radclient`).
const SHARED_SECRET: &str = "vpn-shared-secret";

/// A FreeRADIUS server in the foreground on a free loopback port, with the shipped module
/// and site pointed at `twofold` with an application key; stopped when dropped.
struct FreeRadius {
    port: u16,
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl FreeRadius {
    fn start(twofold: &str, key: &str) -> FreeRadius {
        let (key_id, secret) = key.strip_prefix("tfk_").unwrap().split_once('_').unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shipped = |name: &str, edits: &[(&str, &str)]| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("contrib/freeradius")
                .join(name);
            let mut text = std::fs::read_to_string(path).unwrap();
            for (from, to) in edits {
                assert!(text.contains(from), "{name} no longer holds {from:?}");
                text = text.replace(from, to);
            }
            std::fs::write(dir.path().join(name), text).unwrap();
        };
        shipped(
            "twofold-module",
            &[
                ("https://twofold.example.com", twofold),
                ("'KEY_ID'", &format!("'{key_id}'")),
                ("'KEY_SECRET'", &format!("'{secret}'")),
            ],
        );
        shipped(
            "twofold-site",
            &[
                ("ipaddr = *", "ipaddr = 127.0.0.1"),
                ("port = 1812", &format!("port = {port}")),
            ],
        );
        let d = dir.path().display();
        let main = format!(
            "prefix = /usr
confdir = {d}
raddbdir = {d}
run_dir = {d}
logdir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
log {{
	destination = stdout
}}
client vpn {{
	ipaddr = 127.0.0.1
	secret = {SHARED_SECRET}
	require_message_authenticator = yes
}}
modules {{
	expr {{
	}}
	always ok {{
		rcode = ok
	}}
	$INCLUDE {d}/twofold-module
}}
$INCLUDE {d}/twofold-site
"
        );
        std::fs::write(dir.path().join("radiusd.conf"), main).unwrap();
        let log = dir.path().join("radiusd.log");
        let child = Command::new("freeradius")
            .args(["-f", "-xx", "-l", "stdout", "-d"])
            .arg(dir.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("freeradius (Debian's freeradius and freeradius-rest; scripts/test installs them)");
        let mut server = FreeRadius {
            port,
            child,
            log,
            _dir: dir,
        };
        for _ in 0..200 {
            if server.log_text().contains("Ready to process requests") {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("freeradius stopped ({status}):\n{}", server.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("freeradius did not start:\n{}", server.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An Access-Request as a VPN sends it: FreeRADIUS's answer (`Access-Accept` or
    /// `Access-Reject`).
    async fn ask(&self, user_name: &str, password: &str, calling_station: Option<&str>) -> String {
        let mut attributes =
            format!("User-Name = \"{user_name}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n");
        if let Some(address) = calling_station {
            attributes.push_str(&format!("Calling-Station-Id = \"{address}\"\n"));
        }
        let target = format!("127.0.0.1:{}", self.port);
        let output = tokio::task::spawn_blocking(move || {
            let mut radclient = Command::new("radclient")
                .args(["-x", "-r", "1", "-t", "10", &target, "auth", SHARED_SECRET])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("radclient (Debian's freeradius-utils)");
            radclient
                .stdin
                .take()
                .unwrap()
                .write_all(attributes.as_bytes())
                .unwrap();
            radclient.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        printed
            .lines()
            .find_map(|line| line.strip_prefix("Received ")?.split_whitespace().next())
            .map(str::to_string)
            .unwrap_or_else(|| {
                panic!(
                    "no answer: {printed}{}\nfreeradius:\n{}",
                    String::from_utf8_lossy(&output.stderr),
                    self.log_text()
                )
            })
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole path: a right code is an Access-Accept once; a wrong or replayed code, an
/// unknown user, an account of a kind the application may not check, a revoked key and a
/// Twofold that is down are each an Access-Reject; each request is audited with the
/// address the VPN reports.
async fn a_vpn_asks_freeradius_and_freeradius_asks_twofold(backend: Backend) {
    let server = TestServer::start_with(backend, raised_lockout).await;
    let (secret, _) = enrolled_client(&server, "cara").await;
    let (admin, id, key) = registered(&server, json!({"name": "VPN", "kinds": "client", "scopes": ["check"]})).await;
    let radius = FreeRadius::start(&server.base, &key);

    assert_eq!(radius.ask("cara", "000000", None).await, "Access-Reject");
    let code = server.code(&secret, 0);
    assert_eq!(
        radius.ask("cara", &code, Some("192.0.2.7")).await,
        "Access-Accept",
        "{}",
        audit(&server).await
    );
    assert_eq!(radius.ask("cara", &code, None).await, "Access-Reject", "single use");
    server.next_step();
    let code = server.code(&secret, 0);
    assert_eq!(
        radius.ask("cara@client", &code, None).await,
        "Access-Accept",
        "the kind may be named"
    );
    assert_eq!(radius.ask("nobody", "123456", None).await, "Access-Reject");
    server.full_admin("root").await;
    assert_eq!(
        radius.ask("root@admin", "123456", None).await,
        "Access-Reject",
        "an application for clients cannot check an administrator"
    );
    let audited = server.app.store.audit_events(None, 200).await.unwrap();
    let accepted: Vec<_> = audited
        .iter()
        .filter(|event| event.event == "validate_radius" && event.outcome == "success")
        .map(|event| (event.remote_addr.as_deref(), event.detail.as_deref().unwrap()))
        .collect();
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    assert!(
        accepted.iter().all(|(_, detail)| detail.contains("accept totp")),
        "{accepted:?}"
    );
    let addresses: Vec<_> = accepted.iter().map(|(address, _)| *address).collect();
    assert!(
        addresses.contains(&Some("192.0.2.7")) && addresses.contains(&Some("127.0.0.1")),
        "the address the VPN reports, else FreeRADIUS's: {addresses:?}"
    );

    let key_id = key.strip_prefix("tfk_").unwrap().split_once('_').unwrap().0;
    let revoked = admin
        .post_empty(&format!("/api/v1/admin/applications/{id}/keys/{key_id}/revoke"))
        .await;
    assert_eq!(revoked.0, StatusCode::NO_CONTENT);
    server.next_step();
    assert_eq!(
        radius.ask("cara", &server.code(&secret, 0), None).await,
        "Access-Reject",
        "a revoked key"
    );
    assert!(audit(&server).await.contains("revoked"));

    // Twofold down (nothing listens there): Access-Reject, never an accept.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let orphan = FreeRadius::start(&nowhere, &key);
    assert_eq!(orphan.ask("cara", "000000", None).await, "Access-Reject");
}

/// `POST /api/v1/validate/radius` with a form body, as `rlm_rest` sends it.
async fn radius_form(server: &TestServer, key: &str, form: &[(&str, &str)]) -> Answer {
    let (key_id, secret) = key.strip_prefix("tfk_").unwrap().split_once('_').unwrap();
    let client = server.client();
    let request = client
        .http
        .post(format!("{}/api/v1/validate/radius", server.base))
        .basic_auth(key_id, Some(secret))
        .form(form);
    client.send(request).await
}

/// 204 accept, 401 reject (wrong code, unknown user, a bare name when the kind cannot be
/// told), 403 locked out or out of scope, 422 for a body that is not the form: the codes
/// `rlm_rest` turns into ok, reject, userlock and invalid.
async fn validate_radius_answers_in_the_status_codes_rlm_rest_reads(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "cara").await;
    let (_, _, both) = registered(&server, json!({"name": "VPN", "kinds": "both", "scopes": ["check"]})).await;

    let code = server.code(&secret, 0);
    let bare = radius_form(&server, &both, &[("user", "cara"), ("pass", &code)]).await;
    assert_eq!(bare.0, StatusCode::UNAUTHORIZED, "which kind is a bare name? {bare:?}");
    let accepted = radius_form(
        &server,
        &both,
        &[("user", "cara@client"), ("pass", &code), ("client_ip", "")],
    )
    .await;
    assert_eq!(accepted.0, StatusCode::NO_CONTENT, "{accepted:?}");
    let replayed = radius_form(&server, &both, &[("user", "cara@client"), ("pass", &code)]).await;
    assert_eq!(
        (replayed.0, error_code(&replayed)),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );
    let unknown = radius_form(&server, &both, &[("user", "nobody@client"), ("pass", "123456")]).await;
    assert_eq!(unknown, replayed, "an unknown user gets the same answer");
    let malformed = radius_form(&server, &both, &[("user", "cara@client")]).await;
    assert_eq!(malformed.0, StatusCode::UNPROCESSABLE_ENTITY, "{malformed:?}");
    let audited = audit(&server).await;
    assert!(audited.contains("needs @client or @admin"), "{audited}");

    // An application limited to administrators: a client's name is out of its scope.
    let (_, _, admins) = registered(
        &server,
        json!({"name": "Bastion", "kinds": "admin", "scopes": ["check"]}),
    )
    .await;
    let scoped = radius_form(&server, &admins, &[("user", "cara@client"), ("pass", "123456")]).await;
    assert_eq!(scoped.0, StatusCode::FORBIDDEN, "{scoped:?}");

    // Wrong codes lock the account out: 403, which rlm_rest reads as a locked user, even
    // for the right code; the lockout is the login page's.
    let mut last = None;
    for _ in 0..8 {
        last = Some(radius_form(&server, &both, &[("user", "cara@client"), ("pass", "000000")]).await);
    }
    let last = last.unwrap();
    assert_eq!(
        (last.0, error_code(&last)),
        (StatusCode::FORBIDDEN, "locked_out"),
        "{last:?}"
    );
    server.next_step();
    let locked = radius_form(
        &server,
        &both,
        &[("user", "cara@client"), ("pass", &server.code(&secret, 0))],
    )
    .await;
    assert_eq!(locked.0, StatusCode::FORBIDDEN);
    let client = server.client();
    client.login("client", "cara").await;
    let at_page = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&at_page), "locked_out");
}
