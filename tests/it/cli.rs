//! The `twofold` binary, run as an operator would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{fresh_postgres_url, Backend, PASSWORD};

fn twofold(data_dir: &std::path::Path) -> Command {
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

fn run(command: &mut Command) -> (bool, String, String) {
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

on_both_backends!(
    accounts_are_created_listed_and_reset_from_the_command_line,
    serve_writes_a_setup_token_and_never_logs_it
);
