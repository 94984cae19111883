//! The user-visible flows of the core issue, over HTTP.

use reqwest::StatusCode;
use serde_json::json;
use twofold::core::otpauth::KeyUri;

use crate::support::*;

async fn admin_enrols_in_totp_and_then_needs_both_factors(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("alice").await;
    let admin = server.client();

    let (status, body) = admin.login("admin", "alice").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("authenticated"))
    );
    let (_, me) = admin.get("/api/v1/me").await;
    assert_eq!(me["two_factor"], json!({"enabled": false, "service": null}));
    let (_, services) = admin.get("/api/v1/me/two-factor/services").await;
    assert_eq!(services, json!([{"id": "totp", "name": "Time-Based Tokens"}]));

    // Get Started: the QR code, the URI and the secret for manual entry.
    let (status, enrolment) = admin.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    assert_eq!(status, StatusCode::OK);
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    let key = KeyUri::parse(uri).unwrap();
    assert!(uri.starts_with("otpauth://totp/Twofold:alice?secret="), "{uri}");
    assert_eq!(key.issuer, "Twofold");
    assert_eq!(key.secret.len(), 20, "160-bit secret");
    let secret = enrolment["secret"].as_str().unwrap();
    assert_eq!(enrolment["secret_grouped"].as_str().unwrap().replace(' ', ""), secret);
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let png = data_encoding::BASE64
        .decode(enrolment["qr_png_base64"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // Nothing is active before a right code.
    let wrong = admin
        .post(
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(error_code(&wrong), "invalid_code");
    assert_eq!(admin.get("/api/v1/me").await.1["two_factor"]["enabled"], false);

    let code = server.code(secret, 0);
    let (status, confirmed) = admin
        .post("/api/v1/me/two-factor/totp/enrollment/confirm", json!({"code": code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let backup = confirmed["backup_code"].as_str().unwrap();
    assert_eq!(backup.len(), 19);
    assert!(backup
        .split('-')
        .all(|group| group.len() == 4 && group.chars().all(|c| c.is_ascii_alphanumeric())));
    assert_eq!(
        admin.get("/api/v1/me").await.1["two_factor"],
        json!({"enabled": true, "service": "totp"})
    );

    // The enrolment code cannot log in again.
    assert_eq!(admin.post_empty("/api/v1/logout").await.0, StatusCode::NO_CONTENT);
    let (_, login) = admin.login("admin", "alice").await;
    assert_eq!(login["status"], "second_factor_required");
    assert_eq!(login["services"][0]["id"], "totp");
    assert_eq!(login["services"][0]["challenge"], json!({"type": "code", "length": 6}));
    let replay = admin.post("/api/v1/login/second-factor", json!({"code": code})).await;
    assert_eq!(error_code(&replay), "code_already_used");

    server.next_step();
    let (status, done) = admin
        .post("/api/v1/login/second-factor", json!({"code": server.code(secret, 0)}))
        .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (StatusCode::OK, Some("authenticated"))
    );
    assert_eq!(admin.get("/api/v1/me").await.1["username"], "alice");
}

async fn codes_are_single_use_and_old_codes_are_out_of_sync(backend: Backend) {
    // Lockout (tested on its own) is raised: every answer below must reach the code check.
    let server = TestServer::start_with(backend, |config| config.lockout.max_failures = 20).await;
    let (secret, _) = enrolled_client(&server, "carol").await;
    let client = server.client();

    client.login("client", "carol").await;
    let code = server.code(&secret, 0);
    assert_eq!(
        client
            .post("/api/v1/login/second-factor", json!({"code": code}))
            .await
            .0,
        StatusCode::OK
    );

    // Replayed in a new login, inside the same window: already used.
    let other = server.client();
    other.login("client", "carol").await;
    let replay = other.post("/api/v1/login/second-factor", json!({"code": code})).await;
    assert_eq!(
        (replay.0, error_code(&replay)),
        (StatusCode::UNAUTHORIZED, "code_already_used")
    );
    assert!(replay.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already been used"));

    // A code from two steps ago (never used) is refused as any wrong code: a guess that
    // matched a nearby step must learn nothing. The device's next code, at the same offset,
    // is the evidence of a clock that is off, and the message then points at the clocks.
    for _ in 0..3 {
        server.next_step();
    }
    let wrong_answer = other
        .post(
            "/api/v1/login/second-factor",
            json!({"code": wrong_code(&server, &secret)}),
        )
        .await;
    let stale = other
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, -2)}))
        .await;
    assert_eq!(stale, wrong_answer, "a far match answers exactly as a wrong code");
    server.next_step();
    let stale = other
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, -2)}))
        .await;
    assert_eq!(
        (stale.0, error_code(&stale)),
        (StatusCode::UNAUTHORIZED, "code_out_of_sync")
    );
    assert!(stale.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("time on your device"));

    // A code that is simply wrong, and one that is not even a code.
    let wrong = other
        .post(
            "/api/v1/login/second-factor",
            json!({"code": wrong_code(&server, &secret)}),
        )
        .await;
    assert_eq!(error_code(&wrong), "invalid_code");
    assert!(wrong.1["error"]["message"].as_str().unwrap().contains("incorrect"));
    let garbage = other.post("/api/v1/login/second-factor", json!({"code": "12ab"})).await;
    assert_eq!(
        (garbage.0, error_code(&garbage)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code_format")
    );

    // An older code, never used, after a newer one was: refused too (RFC 6238 §5.2).
    let newer = server.code(&secret, 1);
    assert_eq!(
        other
            .post("/api/v1/login/second-factor", json!({"code": newer}))
            .await
            .0,
        StatusCode::OK
    );
    let third = server.client();
    third.login("client", "carol").await;
    let older = third
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&older), "code_already_used");
}

/// A six-digit code that matches no step near the server's time.
pub fn wrong_code(server: &TestServer, secret: &str) -> String {
    let near: Vec<String> = (-25..=25).map(|delta| server.code(secret, delta)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn a_drifting_phone_keeps_working_within_the_bound(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "dora").await;
    let client = server.client();
    // The phone runs one step fast, then two: each login teaches the server the offset.
    for steps_ahead in [1, 2, 2] {
        server.next_step();
        client.login("client", "dora").await;
        let answer = client
            .post(
                "/api/v1/login/second-factor",
                json!({"code": server.code(&secret, steps_ahead)}),
            )
            .await;
        assert_eq!(answer.0, StatusCode::OK, "{steps_ahead} steps ahead: {}", answer.1);
    }
    // Beyond the bound (max_drift 2 + window 1): refused however it got there; said to be
    // out of sync once the phone's next code shows the same offset.
    server.next_step();
    client.login("client", "dora").await;
    let far = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 4)}))
        .await;
    assert_eq!(error_code(&far), "invalid_code");
    server.next_step();
    let far = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 4)}))
        .await;
    assert_eq!(error_code(&far), "code_out_of_sync");
}

/// The "out of sync" answer is no guessing oracle: far matches at different offsets, or the
/// same code again, or a far match made in another session, never earn it.
async fn out_of_sync_is_said_only_on_a_second_code_at_the_same_offset(backend: Backend) {
    let server = TestServer::start_with(backend, |config| config.lockout.max_failures = 50).await;
    let (secret, _) = enrolled_client(&server, "gus").await;
    let guesser = server.client();
    guesser.login("client", "gus").await;
    let try_code = |client: &Client, steps: i64| {
        let code = server.code(&secret, steps);
        let client = client.clone();
        async move { client.post("/api/v1/login/second-factor", json!({"code": code})).await }
    };
    server.next_step();
    // Matches at offsets +5, +6, +5 again and +7 within the same step: all "wrong".
    for steps in [5, 6, 5, 7] {
        assert_eq!(error_code(&try_code(&guesser, steps).await), "invalid_code", "{steps}");
    }
    // A far match in another session is not evidence for this one.
    let other = server.client();
    other.login("client", "gus").await;
    assert_eq!(error_code(&try_code(&other, 8).await), "invalid_code");
    server.next_step();
    assert_eq!(error_code(&try_code(&guesser, 8).await), "invalid_code");
    // The same code twice (same step) is no later code.
    assert_eq!(error_code(&try_code(&guesser, 8).await), "invalid_code");
    server.next_step();
    assert_eq!(error_code(&try_code(&guesser, 8).await), "code_out_of_sync");
}

async fn backup_code_logs_in_once_and_is_replaced(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, backup) = enrolled_client(&server, "erin").await;
    let client = server.client();
    client.login("client", "erin").await;
    let (status, used) = client
        .post(
            "/api/v1/login/backup-code",
            json!({"backup_code": backup.to_lowercase().replace('-', " ")}),
        )
        .await;
    assert_eq!(
        (status, used["status"].as_str()),
        (StatusCode::OK, Some("authenticated"))
    );
    let next = used["new_backup_code"].as_str().unwrap().to_string();
    assert_ne!(next, backup);
    assert_eq!(client.get("/api/v1/me").await.0, StatusCode::OK);

    let again = server.client();
    again.login("client", "erin").await;
    let reused = again
        .post("/api/v1/login/backup-code", json!({"backup_code": backup}))
        .await;
    assert_eq!(
        (reused.0, error_code(&reused)),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );
    let malformed = again
        .post("/api/v1/login/backup-code", json!({"backup_code": "ABC"}))
        .await;
    assert_eq!(
        (malformed.0, error_code(&malformed)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code_format")
    );
    let (status, _) = again
        .post("/api/v1/login/backup-code", json!({"backup_code": next}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn forced_client_must_enrol_before_anything_else(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    server.client_account("fred").await;
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["force_clients"] = json!(true);
    let (status, saved) = admin.put("/api/v1/admin/two-factor/settings", settings).await;
    assert_eq!(status, StatusCode::OK, "{saved}");

    let client = server.client();
    let (_, login) = client.login("client", "fred").await;
    assert_eq!(login["status"], "enrollment_required");
    assert_eq!(login["services"][0]["id"], "totp");
    for path in ["/api/v1/me", "/api/v1/admin/accounts?kind=client"] {
        let answer = client.get(path).await;
        assert_eq!(
            (answer.0, error_code(&answer)),
            (StatusCode::FORBIDDEN, "enrollment_required"),
            "{path}"
        );
    }
    let skip = client
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "another long password"}),
        )
        .await;
    assert_eq!(error_code(&skip), "enrollment_required");
    let skip = client
        .post("/api/v1/me/two-factor/disable", json!({"password": PASSWORD}))
        .await;
    assert_eq!(error_code(&skip), "enrollment_required");

    assert_eq!(client.get("/api/v1/me/two-factor/services").await.0, StatusCode::OK);
    client.enrol_totp(&server).await;
    let (status, me) = client.get("/api/v1/me").await;
    assert_eq!(
        (status, me["two_factor"]["enabled"].as_bool()),
        (StatusCode::OK, Some(true))
    );

    // Administrators are not forced by the client setting.
    server.full_admin("ivy").await;
    assert_eq!(server.client().login("admin", "ivy").await.1["status"], "authenticated");
}

async fn disabling_own_two_factor_needs_the_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("gina").await;
    let client = server.client();
    client.login("client", "gina").await;
    client.enrol_totp(&server).await;

    let wrong = client
        .post("/api/v1/me/two-factor/disable", json!({"password": "not the password"}))
        .await;
    assert_eq!(error_code(&wrong), "invalid_credentials");
    assert_eq!(wrong.1["error"]["message"], "The password is incorrect.");
    assert_eq!(client.get("/api/v1/me").await.1["two_factor"]["enabled"], true);
    let (status, _) = client
        .post("/api/v1/me/two-factor/disable", json!({"password": PASSWORD}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/api/v1/me").await.1["two_factor"]["enabled"], false);
    // Logging in again takes the password only.
    assert_eq!(
        server.client().login("client", "gina").await.1["status"],
        "authenticated"
    );
}

async fn full_admin_disables_a_clients_two_factor_from_the_list(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let client_id = server.client_account("hank").await;
    {
        let client = server.client();
        client.login("client", "hank").await;
        client.enrol_totp(&server).await;
    }
    let admin = server.client();
    admin.login("admin", "root").await;
    let (status, list) = admin.get("/api/v1/admin/accounts?kind=client").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["username"], "hank");
    assert_eq!(list[0]["two_factor_enabled"], true);
    assert_eq!(list[0]["two_factor_service"], "totp");

    let path = format!("/api/v1/admin/accounts/{client_id}/two-factor/disable");
    assert_eq!(admin.post_empty(&path).await.0, StatusCode::NO_CONTENT);
    let (_, list) = admin.get("/api/v1/admin/accounts?kind=client").await;
    assert_eq!(list[0]["two_factor_enabled"], false);
    assert_eq!(error_code(&admin.post_empty(&path).await), "conflict");
    assert_eq!(
        error_code(&admin.post_empty("/api/v1/admin/accounts/999/two-factor/disable").await),
        "not_found"
    );
    assert_eq!(
        server.client().login("client", "hank").await.1["status"],
        "authenticated"
    );
}

async fn settings_are_validated_and_show_the_server_time(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    assert_eq!(settings["server_time_utc"], "2027-01-15T08:00:10Z");
    assert_eq!(settings["services"]["totp"]["active"], true);
    assert_eq!(settings["services"]["totp"]["clients"], true);
    assert_eq!(settings["services"]["totp"]["admins"], true);
    assert_eq!(settings["services"]["totp"]["settings"]["window"], 1);

    let mut bad = settings.clone();
    bad.as_object_mut().unwrap().remove("server_time_utc");
    bad["services"]["totp"]["settings"]["window"] = json!(9);
    let answer = admin.put("/api/v1/admin/two-factor/settings", bad.clone()).await;
    assert_eq!(
        (answer.0, error_code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
    );
    bad["services"]["totp"]["settings"]["window"] = json!(1);
    bad["surprise"] = json!(true);
    let answer = admin.put("/api/v1/admin/two-factor/settings", bad).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        admin.get("/api/v1/admin/two-factor/settings").await.1["services"]["totp"]["settings"]["window"],
        1
    );

    // The document GET answers is accepted by PUT as it is (the server time is ignored).
    let (status, saved) = admin.put("/api/v1/admin/two-factor/settings", settings.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let mut changed = settings.clone();
    changed["services"]["totp"]["settings"]["window"] = json!(2);
    changed["force_admins"] = json!(true);
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", changed).await.0,
        StatusCode::OK
    );
    // The audit names the fields that changed, not their values.
    let events = server.app.store.audit_events(None, 100).await.unwrap();
    let details: Vec<String> = events
        .iter()
        .filter(|e| e.event == "settings_changed")
        .map(|e| e.detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        details,
        [
            "changed: force_admins, services.totp.settings.window",
            "nothing changed"
        ],
        "newest first"
    );
}

async fn window_zero_accepts_only_the_current_step(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let (secret, _) = enrolled_client(&server, "ida").await;
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["services"]["totp"]["settings"]["window"] = json!(0);
    settings["services"]["totp"]["settings"]["max_drift"] = json!(0);
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", settings).await.0,
        StatusCode::OK
    );

    server.next_step();
    let client = server.client();
    client.login("client", "ida").await;
    let late = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, -1)}))
        .await;
    assert_eq!(error_code(&late), "invalid_code");
    let now = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(now.0, StatusCode::OK);
}

async fn password_change_checks_the_current_one_and_ends_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("jane").await;
    let (first, second) = (server.client(), server.client());
    first.login("client", "jane").await;
    second.login("client", "jane").await;

    let wrong = first
        .post(
            "/api/v1/me/password",
            json!({"current_password": "nope nope nope", "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(error_code(&wrong), "invalid_credentials");
    let short = first
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        (short.0, error_code(&short)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
    );
    let done = first
        .post(
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(done.0, StatusCode::NO_CONTENT);

    assert_eq!(first.get("/api/v1/me").await.0, StatusCode::OK);
    assert_eq!(error_code(&second.get("/api/v1/me").await), "unauthenticated");
    assert_eq!(
        error_code(&server.client().login("client", "jane").await),
        "invalid_credentials"
    );
    let (_, login) = server
        .client()
        .login_with("client", "JANE", "a brand new password")
        .await;
    assert_eq!(login["status"], "authenticated");
}

async fn first_start_setup_takes_the_one_time_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let path = server.app.prepare_setup_token().await.unwrap().unwrap();
    let token = std::fs::read_to_string(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let anyone = server.client();
    let body = |token: &str| json!({"setup_token": token, "username": "boss", "password": PASSWORD});
    assert_eq!(
        error_code(&anyone.post("/api/v1/setup", body("guess")).await),
        "forbidden"
    );
    let (status, _) = anyone.post("/api/v1/setup", body(&token)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!path.exists(), "the token is single-use");
    assert_eq!(
        anyone.post("/api/v1/setup", body(&token)).await.0,
        StatusCode::FORBIDDEN
    );

    let (_, login) = anyone.login("admin", "boss").await;
    assert_eq!(login["status"], "authenticated");
    assert_eq!(anyone.get("/api/v1/me").await.1["role"], "full");
    assert_eq!(server.app.prepare_setup_token().await.unwrap(), None);
}

async fn openapi_document_describes_the_contract(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, doc) = server.client().get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/login",
        "/api/v1/login/second-factor",
        "/api/v1/login/backup-code",
        "/api/v1/logout",
        "/api/v1/me",
        "/api/v1/me/two-factor",
        "/api/v1/me/two-factor/services",
        "/api/v1/me/two-factor/{service}/enrollment",
        "/api/v1/me/two-factor/{service}/enrollment/confirm",
        "/api/v1/me/two-factor/credentials/{id}",
        "/api/v1/me/two-factor/credentials/{id}/remove",
        "/api/v1/me/two-factor/disable",
        "/api/v1/me/password",
        "/api/v1/admin/two-factor/settings",
        "/api/v1/admin/accounts",
        "/api/v1/admin/accounts/{id}/two-factor/disable",
        "/api/v1/admin/accounts/{id}/unlock",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/api/v1/admin/two-factor/settings"]["put"].is_object());
}

/// What has expired is deleted: sessions, and audit events beyond the retention (in
/// batches); what has not stays.
async fn expired_sessions_challenges_and_old_audit_events_are_purged(backend: Backend) {
    use twofold::store::AuditEvent;
    let server = TestServer::start_with(backend, |config| config.audit_retention_days = 30).await;
    let (store, now) = (&server.app.store, server.now());
    server.client_account("ola").await;
    let client = server.client();
    assert_eq!(client.login("client", "ola").await.0, StatusCode::OK);
    let day = 86_400;
    for age in [31, 31, 31, 31, 31, 31, 31, 29, 29] {
        let event = AuditEvent {
            at: now - age * day,
            account_id: None,
            event: format!("aged_{age}"),
            outcome: "test".into(),
            remote_addr: None,
            detail: None,
        };
        store.record_audit(&event).await.unwrap();
    }
    let count = |name: &'static str| {
        let store = store.clone();
        async move {
            let events = store.audit_events(None, 1000).await.unwrap();
            events.iter().filter(|e| e.event == name).count()
        }
    };
    // One batch deletes at most its size, the oldest first.
    assert_eq!(
        store
            .purge_batch(twofold::store::Purge::AuditEvents, now - 30 * day, 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(count("aged_31").await, 4);

    // An enrolment started and left: an hour later the purge takes its expired challenge
    // (the session lives on) and the old events.
    let (status, _) = client.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    assert_eq!(status, StatusCode::OK);
    server.clock.advance(3600);
    let [sessions, challenges, _, _, events, _, _] = server.app.purge_expired().await.unwrap();
    assert_eq!((sessions, challenges, events), (0, 1, 4));
    assert_eq!((count("aged_31").await, count("aged_29").await), (0, 2));
    assert_eq!(client.get("/api/v1/me").await.0, StatusCode::OK);

    // Eight hours later the session has expired, and goes.
    server.clock.advance(8 * 3600);
    let [sessions, ..] = server.app.purge_expired().await.unwrap();
    assert_eq!(sessions, 1);
    assert_eq!(client.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.app.purge_expired().await.unwrap(), [0; 7], "nothing twice");
}

on_both_backends!(
    expired_sessions_challenges_and_old_audit_events_are_purged,
    admin_enrols_in_totp_and_then_needs_both_factors,
    codes_are_single_use_and_old_codes_are_out_of_sync,
    out_of_sync_is_said_only_on_a_second_code_at_the_same_offset,
    a_drifting_phone_keeps_working_within_the_bound,
    backup_code_logs_in_once_and_is_replaced,
    forced_client_must_enrol_before_anything_else,
    disabling_own_two_factor_needs_the_password,
    full_admin_disables_a_clients_two_factor_from_the_list,
    settings_are_validated_and_show_the_server_time,
    window_zero_accepts_only_the_current_step,
    password_change_checks_the_current_one_and_ends_other_sessions,
    first_start_setup_takes_the_one_time_token,
    openapi_document_describes_the_contract,
);

/// Every batch of the purge finds its rows by index, on both databases: with a million
/// sessions or ten million audit events, a batch that scanned its table would hold every
/// login behind it on the one writer. (PostgreSQL is asked to avoid sequential scans, so
/// that it shows an index when it has one, whatever the size of the test's tables.)
async fn the_purge_finds_its_rows_by_index(backend: Backend) {
    use sqlx::Connection;
    use twofold::store::Purge;
    let server = TestServer::start(backend).await;
    for what in Purge::ALL {
        let explain = format!("{} {}", "EXPLAIN", what.statement());
        let plan: Vec<String> = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", server.dir.path().join("twofold.db").display());
                let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(&explain.replace("EXPLAIN", "EXPLAIN QUERY PLAN"))
                        .bind(0_i64)
                        .bind(10_i64)
                        .fetch_all(&mut connection)
                        .await
                        .unwrap();
                rows.into_iter().map(|row| row.3).collect()
            }
            Backend::Postgres => {
                let url = server.config_database_url().unwrap();
                let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query("SET enable_seqscan = off")
                    .execute(&mut connection)
                    .await
                    .unwrap();
                sqlx::query_scalar(&explain)
                    .bind(0_i64)
                    .bind(10_i64)
                    .fetch_all(&mut connection)
                    .await
                    .unwrap()
            }
        };
        let scans: Vec<&String> = plan
            .iter()
            .filter(|line| line.starts_with("SCAN ") || line.contains("Seq Scan"))
            .collect();
        assert!(scans.is_empty(), "{what:?} scans a table: {plan:#?}");
    }
}

on_both_backends!(the_purge_finds_its_rows_by_index);
