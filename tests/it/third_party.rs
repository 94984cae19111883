//! Real third-party clients: the QR code decoded by `zbarimg` (as a phone's camera would),
//! the codes computed by `oathtool` (as an authenticator app would), and the JSON API checked
//! against its OpenAPI document by `schemathesis`. `.ci/run` installs both
//! (Debian packages `zbar-tools` and `oathtool`).

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;
use twofold::core::otpauth::KeyUri;

use crate::support::*;

/// The code an authenticator app shows for `key` at `at`, computed by `oathtool`.
pub fn oathtool(key: &KeyUri, at: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD.encode(&key.secret);
    let output = Command::new("oathtool")
        .args([
            &format!("--totp={}", key.params.algorithm.name()),
            "--base32",
            &format!("--digits={}", key.params.digits),
            &format!("--time-step-size={}s", key.params.period),
            &format!("--now=@{at}"),
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            // The secret goes through stdin, never on a command line others can read.
            child.stdin.take().unwrap().write_all(secret.as_bytes())?;
            child.wait_with_output()
        })
        .expect("oathtool is installed (Debian package oathtool)");
    assert!(
        output.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// What a phone's camera reads in the image: the QR code's text, decoded by `zbarimg`.
pub fn zbarimg(png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.png");
    std::fs::write(&path, png).unwrap();
    let output = Command::new("zbarimg")
        .args(["--raw", "-q", "--nodbus", "-Sdisable", "-Sqrcode.enable"])
        .arg(&path)
        .output()
        .expect("zbarimg is installed (Debian package zbar-tools)");
    assert!(
        output.status.success(),
        "zbarimg found no QR code (exit {:?})",
        output.status.code()
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

async fn an_authenticator_app_scanning_the_qr_code_can_log_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("uma@example.org").await;
    let client = server.client();
    client.login("client", "uma@example.org").await;

    let (_, enrolment) = client.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    let png = data_encoding::BASE64
        .decode(enrolment["qr_png_base64"].as_str().unwrap().as_bytes())
        .unwrap();
    let scanned = zbarimg(&png);
    assert_eq!(
        scanned,
        enrolment["otpauth_uri"].as_str().unwrap(),
        "the QR code holds the URI byte for byte"
    );
    let key = KeyUri::parse(&scanned).unwrap();
    assert_eq!(key.account, "uma@example.org");

    let code = oathtool(&key, server.now());
    let (status, confirmed) = client
        .post("/api/v1/me/two-factor/totp/enrollment/confirm", json!({"code": code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");

    server.next_step();
    let login = server.client();
    login.login("client", "uma@example.org").await;
    let code = oathtool(&key, server.now());
    assert_eq!(
        login.post("/api/v1/login/second-factor", json!({"code": code})).await.0,
        StatusCode::OK
    );

    let replayer = server.client();
    replayer.login("client", "uma@example.org").await;
    let replay = replayer
        .post("/api/v1/login/second-factor", json!({"code": code}))
        .await;
    assert_eq!(error_code(&replay), "code_already_used");
    let stale = replayer
        .post(
            "/api/v1/login/second-factor",
            json!({"code": oathtool(&key, server.now() - 60)}),
        )
        .await;
    assert_ne!(stale.0, StatusCode::OK);
    assert_eq!(error_code(&stale), "code_already_used", "older than the last used step");
}

async fn eight_digit_sha256_enrolments_work_with_oathtool(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["services"]["totp"]["settings"]["algorithm"] = json!("SHA256");
    settings["services"]["totp"]["settings"]["digits"] = json!(8);
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", settings).await.0,
        StatusCode::OK
    );

    let (_, enrolment) = admin.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    let png = data_encoding::BASE64
        .decode(enrolment["qr_png_base64"].as_str().unwrap().as_bytes())
        .unwrap();
    let key = KeyUri::parse(&zbarimg(&png)).unwrap();
    assert!(enrolment["otpauth_uri"]
        .as_str()
        .unwrap()
        .contains("algorithm=SHA256&digits=8"));
    let code = oathtool(&key, server.now());
    assert_eq!(code.len(), 8);
    let (status, body) = admin
        .post("/api/v1/me/two-factor/totp/enrollment/confirm", json!({"code": code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    server.next_step();
    let login = server.client();
    let (_, answer) = login.login("admin", "root").await;
    assert_eq!(answer["services"][0]["challenge"]["length"], 8);
    let code = oathtool(&key, server.now());
    assert_eq!(
        login.post("/api/v1/login/second-factor", json!({"code": code})).await.0,
        StatusCode::OK
    );
}

/// schemathesis (PyPI) generates requests for every operation of `/api/openapi.json`, valid
/// and not, and checks the real server's answers: never a server error, every status
/// documented, every body as its schema says. Once without a session, once with a full
/// administrator's.
async fn the_api_answers_as_its_openapi_document_says(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("boss").await;
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"username": "boss", "password": PASSWORD, "area": "admin"}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let document = format!("{}/api/openapi.json", server.base);
    for session in [None, Some(format!("Cookie: {cookie}"))] {
        let workdir = tempfile::tempdir().unwrap();
        let mut command = Command::new(python_peer("st"));
        command
            .current_dir(workdir.path())
            .args(["run", &document, "--checks"])
            .arg("not_a_server_error,status_code_conformance,response_schema_conformance")
            .args(["--max-examples", "25", "--seed", "7", "--no-color"]);
        if let Some(header) = &session {
            command.args(["-H", header]);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("schemathesis runs (st, from tests/python/requirements.txt)");
        assert!(
            output.status.success(),
            "schemathesis {}:\n{}",
            if session.is_some() {
                "with a session"
            } else {
                "without a session"
            },
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

on_both_backends!(
    the_api_answers_as_its_openapi_document_says,
    an_authenticator_app_scanning_the_qr_code_can_log_in,
    eight_digit_sha256_enrolments_work_with_oathtool,
);
