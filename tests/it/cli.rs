//! The `twofold` binary, run as an operator would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{enrolled_client, error_code, fresh_postgres_url, Backend, TestServer, PASSWORD};

pub(crate) fn twofold(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twofold"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TWOFOLD_DATA_DIR", data_dir);
    command
}

/// The binary with its data directory, on the test's database.
async fn twofold_on(backend: Backend, data_dir: &std::path::Path) -> impl Fn() -> Command {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(fresh_postgres_url().await),
    };
    let data_dir = data_dir.to_path_buf();
    move || {
        let mut command = twofold(&data_dir);
        if let Some(url) = &database_url {
            command.env("TWOFOLD_DATABASE_URL", url);
        }
        command
    }
}

pub(crate) fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

#[test]
fn help_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, help, _) = run(twofold(dir.path()).arg("--help"));
    assert!(ok);
    for word in [
        "serve",
        "migrate",
        "admin",
        "client",
        "user",
        "--config",
        "--data-dir",
        "TWOFOLD_DATA_DIR",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let (_, help, _) = run(twofold(dir.path()).args(["admin", "create", "--help"]));
    for word in ["--username", "--password-file", "--role", "full", "staff"] {
        assert!(help.contains(word), "admin create --help lacks {word}");
    }
    let (_, help, _) = run(twofold(dir.path()).args(["user", "--help"]));
    assert!(help.contains("reset-2fa"));
}

async fn accounts_are_created_listed_and_reset_from_the_command_line(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let twofold = twofold_on(backend, &dir.path().join("data")).await;

    let (ok, out, err) = run(twofold()
        .args(["admin", "create", "--username", "root"])
        .arg("--password-file")
        .arg(&password_file));
    assert!(ok, "{err}");
    assert!(out.contains("created administrator root (full)"));
    let (ok, _, err) = run(twofold()
        .args(["client", "create", "--username", "vic", "--email", "vic@example.com"])
        .arg("--password-file")
        .arg(&password_file));
    assert!(ok, "{err}");
    let (ok, _, err) = run(twofold()
        .args(["client", "create", "--username", "VIC", "--email", "x@example.com"])
        .arg("--password-file")
        .arg(&password_file));
    assert!(!ok && err.contains("already in use"), "{err}");
    let (ok, _, err) = run(twofold().args([
        "client",
        "create",
        "--username",
        "w",
        "--email",
        "w@example.com",
        "--password-file",
        "/nonexistent",
    ]));
    assert!(!ok && err.contains("cannot read /nonexistent"), "{err}");

    let (_, admins, _) = run(twofold().args(["admin", "list"]));
    assert!(
        admins
            .lines()
            .any(|l| l.contains("root") && l.contains("full") && l.contains("off")),
        "{admins}"
    );
    let (_, clients, _) = run(twofold().args(["client", "list"]));
    assert!(clients.contains("vic@example.com"), "{clients}");

    let (ok, out, _) = run(twofold().args(["user", "reset-2fa", "root"]));
    assert!(ok);
    assert!(out.contains("had no two-factor authentication"));
    let (ok, _, err) = run(twofold().args(["user", "reset-2fa", "ghost"]));
    assert!(!ok && err.contains("No admin account named ghost"), "{err}");
}

#[test]
fn a_bad_configuration_is_refused_with_its_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(twofold(dir.path())
        .env("TWOFOLD_LOCKOUT__MAX_FAILURES", "0")
        .arg("migrate"));
    assert!(!ok);
    assert!(err.contains("lockout.max_failures"), "{err}");
    let (ok, _, err) = run(twofold(dir.path())
        .env("TWOFOLD_LISTEN", "not an address")
        .arg("migrate"));
    assert!(!ok);
    assert!(err.to_lowercase().contains("listen"), "{err}");
    let (ok, _, err) = run(twofold(dir.path())
        .env("TWOFOLD_TRUSTED_PROXIES", r#"["10.0.0.0/8", "proxy.example"]"#)
        .arg("migrate"));
    assert!(
        !ok && err.contains("trusted_proxies") && err.contains("proxy.example"),
        "{err}"
    );
    let (ok, _, err) = run(twofold(dir.path())
        .env("TWOFOLD_HTTP_READ_TIMEOUT_SECS", "0")
        .arg("migrate"));
    assert!(!ok && err.contains("http_read_timeout_secs"), "{err}");
    let config = dir.path().join("twofold.toml");
    std::fs::write(&config, "issuer = \"Acme: Inc\"\n").unwrap();
    let (ok, _, err) = run(twofold(dir.path()).arg("--config").arg(&config).arg("migrate"));
    assert!(!ok && err.contains("issuer"), "{err}");
}

async fn serve_writes_a_setup_token_and_never_logs_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = (twofold_on(backend, dir.path()).await)()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let address = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited: {log}");
        log.push_str(&line);
        if let Some(at) = line.find("listening on http://") {
            break line[at + "listening on ".len()..].trim().to_string();
        }
    };
    let token_path = dir.path().join("setup-token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert!(log.contains("setup-token"), "the log names the file: {log}");
    assert!(!log.contains(token.trim()), "the log never shows the token");
    assert!(dir.path().join("master.key").exists());
    assert_eq!(dir.path().join("twofold.db").exists(), backend == Backend::Sqlite);
    // SQLite runs in WAL mode: readers never wait for the writer.
    assert_eq!(dir.path().join("twofold.db-wal").exists(), backend == Backend::Sqlite);

    let http = reqwest::Client::new();
    let created = http
        .post(format!("{address}/api/v1/setup"))
        .json(&json!({"setup_token": token, "username": "first", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let login = http
        .post(format!("{address}/api/v1/login"))
        .json(&json!({"username": "first", "password": PASSWORD, "area": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `twofold user unlock` lifts the lockout and, as the admin endpoint does, ends the
/// account's sessions: the guesser's half-logged-in one too.
async fn unlocking_from_the_command_line_ends_the_accounts_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "una").await;
    let attacker = server.client();
    attacker.login("client", "una").await;
    let wrong = crate::flows::wrong_code(&server, &secret);
    for _ in 0..6 {
        attacker
            .post("/api/v1/login/second-factor", json!({"code": wrong}))
            .await;
    }
    let locked = attacker
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&locked), "locked_out");

    let mut unlock = twofold(server.dir.path());
    if let Some(url) = server.config_database_url() {
        unlock.env("TWOFOLD_DATABASE_URL", url);
    }
    let (ok, out, err) = run(unlock.args(["user", "unlock", "--kind", "client", "una"]));
    assert!(
        ok && out.contains("lockouts lifted and sessions ended for una"),
        "{err}"
    );
    assert_eq!(error_code(&attacker.get("/api/v1/me").await), "unauthenticated");
    let owner = server.client();
    owner.login("client", "una").await;
    let accepted = owner
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(accepted.0, reqwest::StatusCode::OK, "{}", accepted.1);
    let id = server.client_id("una").await;
    let audit = server.app.store.audit_events(Some(id), 100).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.event == "unlocked" && e.detail.as_deref() == Some("from the command line")));
}

on_both_backends!(
    accounts_are_created_listed_and_reset_from_the_command_line,
    serve_writes_a_setup_token_and_never_logs_it,
    unlocking_from_the_command_line_ends_the_accounts_sessions,
    applications_are_registered_keyed_and_revoked_from_the_command_line,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_enrolled_on_sqlite_logs_in_on_postgres_after_db_copy() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.full_admin("root").await;
    let (secret, backup) = enrolled_client(&server, "yuri").await;
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["force_admins"] = json!(true);
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", settings).await.0,
        reqwest::StatusCode::OK
    );
    // A used step and a lockout count that must survive the move.
    let used = server.client();
    used.login("client", "yuri").await;
    let used_code = server.code(&secret, 0);
    assert_eq!(
        used.post("/api/v1/login/second-factor", json!({"code": used_code}))
            .await
            .0,
        reqwest::StatusCode::OK
    );
    let audit_before = server.app.store.audit_events(None, 10_000).await.unwrap().len();

    let target = fresh_postgres_url().await;
    let copy = || {
        let mut command = twofold(server.dir.path());
        command.args(["db", "copy", "--to", &target]);
        command
    };
    let (ok, out, err) = run(&mut copy());
    assert!(ok, "{err}");
    assert!(
        out.contains("accounts: 2 rows copied") && out.contains("backup_codes: 1 rows copied"),
        "{out}"
    );
    let (ok, _, err) = run(&mut copy());
    assert!(!ok && err.contains("not empty"), "a second copy is refused: {err}");
    let (ok, _, err) = run(copy().arg("--replace"));
    assert!(ok, "{err}");

    let server = server.moved_to(target).await;
    assert!(
        server.app.two_factor_settings().await.unwrap().force_admins,
        "settings copied"
    );
    let client = server.client();
    assert_eq!(
        client.login("client", "yuri").await.1["status"],
        "second_factor_required"
    );
    let replay = client
        .post("/api/v1/login/second-factor", json!({"code": used_code}))
        .await;
    assert_eq!(
        error_code(&replay),
        "code_already_used",
        "the last used step came along"
    );
    server.next_step();
    let next = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(next.0, reqwest::StatusCode::OK, "{}", next.1);
    let by_backup = server.client();
    by_backup.login("client", "yuri").await;
    let (status, _) = by_backup
        .post("/api/v1/login/backup-code", json!({"backup_code": backup}))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    // New rows get fresh ids after the copied ones.
    server.client_account("zed").await;
    let audit_after = server.app.store.audit_events(None, 10_000).await.unwrap();
    assert!(audit_after.len() > audit_before);
}

/// `twofold app create` prints the first key once; `app list` shows the key id, never the
/// secret; `app key` rotates; `app revoke` ends a key.
async fn applications_are_registered_keyed_and_revoked_from_the_command_line(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let twofold = twofold_on(backend, dir.path()).await;
    let (ok, out, err) = run(twofold().args([
        "app",
        "create",
        "--name",
        "Shop",
        "--scope",
        "check",
        "--network",
        "10.0.0.0/8",
    ]));
    assert!(ok, "{err}");
    let key = out.lines().find(|l| l.starts_with("tfk_")).unwrap().to_string();
    let (key_id, secret) = key.strip_prefix("tfk_").unwrap().split_once('_').unwrap();
    let (ok, listed, _) = run(twofold().args(["app", "list"]));
    assert!(ok);
    assert!(
        listed.contains("\"Shop\" kinds=client scopes=check networks=10.0.0.0/8 unenrolled=must-enrol active"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("key {key_id} live")) && !listed.contains(secret),
        "{listed}"
    );
    let (ok, rotated, _) = run(twofold().args(["app", "key", "1"]));
    assert!(ok && rotated.contains("tfk_"), "{rotated}");
    let (ok, _, err) = run(twofold().args(["app", "revoke", "1", key_id]));
    assert!(ok, "{err}");
    let (_, listed, _) = run(twofold().args(["app", "list"]));
    assert!(listed.contains(&format!("key {key_id} revoked")), "{listed}");
    let (ok, _, err) = run(twofold().args(["app", "create", "--name", "Shop", "--scope", "everything"]));
    assert!(!ok && err.contains("--scope"), "{err}");
    // Letting the users without a second factor pass is explicit.
    let (ok, out, err) = run(twofold().args(["app", "policy", "1", "--allow-unenrolled", "yes"]));
    assert!(ok && out.contains("may pass"), "{out}{err}");
    let (_, listed, _) = run(twofold().args(["app", "list"]));
    assert!(listed.contains("unenrolled=pass"), "{listed}");
    let (ok, _, err) = run(twofold().args(["app", "policy", "1", "--allow-unenrolled", "maybe"]));
    assert!(!ok && err.contains("--allow-unenrolled"), "{err}");
}
