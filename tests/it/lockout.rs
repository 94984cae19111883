//! Adversarial tests of lockout: counted per account and per address, atomically, surviving
//! a restart; unknown names locked out alike; waits that grow; the hard lock.

use std::sync::atomic::Ordering;

use futures_like::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::flows::wrong_code;
use crate::support::*;

mod futures_like {
    /// Runs the futures concurrently on the runtime and collects their outputs in order.
    pub async fn join_all<T: Send + 'static>(
        futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut outputs = Vec::with_capacity(handles.len());
        for handle in handles {
            outputs.push(handle.await.unwrap());
        }
        outputs
    }
}

async fn a_thousand_wrong_codes_never_succeed_and_lock_the_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "kim").await;
    let attacker = server.client();
    attacker.login("client", "kim").await;
    let wrong = wrong_code(&server, &secret);

    let mut answers = Vec::new();
    for _batch in 0..20 {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                let (attacker, wrong) = (attacker.clone(), wrong.clone());
                async move {
                    attacker
                        .post("/api/v1/login/second-factor", json!({"code": wrong}))
                        .await
                }
            })
            .collect();
        answers.extend(join_all(batch).await);
    }
    assert_eq!(answers.len(), 1000);
    assert_eq!(answers.iter().filter(|a| a.0 == StatusCode::OK).count(), 0);
    let checked = answers.iter().filter(|a| error_code(a) == "invalid_code").count();
    assert_eq!(checked, 5, "exactly the allowed attempts were checked");
    let locked: Vec<_> = answers
        .iter()
        .filter(|a| a.0 == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(locked.len(), 995);
    assert!(locked.iter().all(|a| error_code(a) == "locked_out"));

    // While locked, even the right code is refused, and does not reset the count.
    let right = attacker
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&right), "locked_out");
    assert!(right.1["error"]["message"].as_str().unwrap().contains("Try again in"));
    let backup = attacker
        .post(
            "/api/v1/login/backup-code",
            json!({"backup_code": "0000-0000-0000-0000"}),
        )
        .await;
    assert_eq!(error_code(&backup), "locked_out");
    assert_eq!(error_code(&attacker.get("/api/v1/me").await), "second_factor_required");

    // When the window is over, the owner gets in with the right code (the half-logged-in
    // session itself has expired by then: the login starts again).
    server.clock.advance(15 * 60);
    assert_eq!(error_code(&attacker.get("/api/v1/me").await), "unauthenticated");
    attacker.login("client", "kim").await;
    let owner = attacker
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(owner.0, StatusCode::OK, "{}", owner.1);
}

async fn locked_out_answers_say_when_to_retry_and_never_say_already_used(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "lee").await;
    let client = server.client();
    client.login("client", "lee").await;
    let used = server.code(&secret, 0);
    assert_eq!(
        client
            .post("/api/v1/login/second-factor", json!({"code": used}))
            .await
            .0,
        StatusCode::OK
    );

    let attacker = server.client();
    attacker.login("client", "lee").await;
    for _ in 0..5 {
        let replay = attacker
            .post("/api/v1/login/second-factor", json!({"code": used}))
            .await;
        assert_eq!(error_code(&replay), "code_already_used", "a replay counts as a failure");
    }
    let response = attacker
        .http
        .post(format!("{}/api/v1/login/second-factor", attacker.base))
        .json(&json!({"code": used}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "locked_out");
}

async fn password_failures_count_per_account_whatever_name_was_typed(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("bob").await;
    let attacker = server.client();
    for name in ["Bob", "bob", "BOB", "bob@example.com", "Bob@Example.com"] {
        let answer = attacker.login_with("client", name, "wrong password!").await;
        assert_eq!(error_code(&answer), "invalid_credentials", "{name}");
    }
    let locked = attacker.login("client", "bob").await;
    assert_eq!(
        (locked.0, error_code(&locked)),
        (StatusCode::TOO_MANY_REQUESTS, "locked_out")
    );

    // The count lives in the database: a restarted server still refuses.
    let server = server.restart().await;
    let locked = server.client().login("client", "bob").await;
    assert_eq!(error_code(&locked), "locked_out");

    // A full administrator lifts it.
    server.full_admin("root").await;
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, clients) = admin.get("/api/v1/admin/accounts?kind=client").await;
    assert_eq!(clients[0]["locked"], true);
    let id = clients[0]["id"].as_i64().unwrap();
    assert_eq!(
        admin.post_empty(&format!("/api/v1/admin/accounts/{id}/unlock")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server.client().login("client", "bob").await.1["status"],
        "authenticated"
    );
}

async fn second_factor_lockout_survives_a_restart_and_an_admin_can_clear_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let (secret, _) = enrolled_client(&server, "max").await;
    let attacker = server.client();
    attacker.login("client", "max").await;
    for _ in 0..6 {
        attacker
            .post(
                "/api/v1/login/second-factor",
                json!({"code": wrong_code(&server, &secret)}),
            )
            .await;
    }
    let server = server.restart().await;
    let owner = server.client();
    owner.login("client", "max").await;
    let refused = owner
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&refused), "locked_out");

    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, clients) = admin.get("/api/v1/admin/accounts?kind=client").await;
    let id = clients[0]["id"].as_i64().unwrap();
    admin.post_empty(&format!("/api/v1/admin/accounts/{id}/unlock")).await;
    // Unlocking ended the account's sessions (an attacker's too): the owner logs in again.
    let ended = owner
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&ended), "unauthenticated");
    owner.login("client", "max").await;
    let accepted = owner
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(accepted.0, StatusCode::OK);

    let audit = server.app.store.audit_events(Some(id), 100).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.event == "unlocked" && e.detail.as_deref().unwrap_or("").contains("administrator")));
    assert!(audit
        .iter()
        .any(|e| e.event == "second_factor_attempt" && e.outcome == "locked_out"));
    assert!(audit.iter().any(|e| e.event == "login_totp" && e.outcome == "failure"));
    assert!(audit.iter().any(|e| e.event == "login_totp" && e.outcome == "success"));
}

async fn wrong_codes_at_enrolment_count_towards_the_same_lockout(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("ned").await;
    let client = server.client();
    client.login("client", "ned").await;
    let (_, enrolment) = client.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    let wrong = wrong_code(&server, &secret);
    for _ in 0..5 {
        let answer = client
            .post("/api/v1/me/two-factor/totp/enrollment/confirm", json!({"code": wrong}))
            .await;
        assert_eq!(error_code(&answer), "invalid_code");
    }
    let right = client
        .post(
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            json!({"code": server.code(&secret, 0)}),
        )
        .await;
    assert_eq!(error_code(&right), "locked_out");
    assert_eq!(client.get("/api/v1/me").await.1["two_factor"]["enabled"], false);
}

const ATTACKER: &str = "203.0.113.9";
const OWNER: &str = "198.51.100.7";

/// A client's password login, forwarded from `address`.
async fn password_from(client: &Client, address: &str, username: &str, password: &str) -> Answer {
    let body = json!({"username": username, "password": password, "area": "client"});
    client.post_from(address, "/api/v1/login", body).await
}

/// A second-factor code, forwarded from `address`.
async fn second_factor_from(client: &Client, address: &str, code: &str) -> Answer {
    client
        .post_from(address, "/api/v1/login/second-factor", json!({"code": code}))
        .await
}

async fn unknown_names_answer_and_lock_out_as_real_names_do(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("bob").await;
    let mut seen = Vec::new();
    for name in ["bob", "nobody"] {
        let attacker = server.client();
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(attacker.login_with("client", name, "wrong password!").await);
        }
        let hashed = server.app.password_checks.load(Ordering::Relaxed);
        answers.push(attacker.login_with("client", name, "wrong password!").await);
        assert_eq!(
            server.app.password_checks.load(Ordering::Relaxed),
            hashed,
            "a locked-out attempt is not checked, for {name} as for any name"
        );
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1], "a real name and an unknown one answer alike");
    assert_eq!(error_code(&seen[1][4]), "invalid_credentials");
    assert_eq!(
        (seen[1][5].0, error_code(&seen[1][5])),
        (StatusCode::TOO_MANY_REQUESTS, "locked_out")
    );
    // The unknown name's lockout is audited with no account.
    let audit = server.app.store.audit_events(None, 100).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.account_id.is_none() && e.event == "password_attempt" && e.outcome == "locked_out"));
}

async fn one_address_is_locked_out_and_the_owner_elsewhere_is_not(backend: Backend) {
    let server = TestServer::start_with(backend, trusting_loopback_proxies).await;
    let (secret, _) = enrolled_client(&server, "ada").await;
    let attacker = server.client();
    let half = password_from(&attacker, ATTACKER, "ada", PASSWORD).await;
    assert_eq!(half.1["status"], "second_factor_required");
    let wrong = wrong_code(&server, &secret);
    let guesses: Vec<_> = (0..200)
        .map(|_| {
            let (attacker, wrong) = (attacker.clone(), wrong.clone());
            async move { second_factor_from(&attacker, ATTACKER, &wrong).await }
        })
        .collect();
    let answers = join_all(guesses).await;
    assert_eq!(answers.iter().filter(|a| error_code(a) == "invalid_code").count(), 5);
    assert_eq!(answers.iter().filter(|a| error_code(a) == "locked_out").count(), 195);

    // The owner, from another address, is not kept out by them.
    let owner = server.client();
    password_from(&owner, OWNER, "ada", PASSWORD).await;
    let accepted = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(accepted.0, StatusCode::OK, "{}", accepted.1);
    // ... and the owner's success does not free the guesser's address.
    let still = second_factor_from(&attacker, ATTACKER, &wrong).await;
    assert_eq!(error_code(&still), "locked_out");

    let id = server.client_id("ada").await;
    let audit = server.app.store.audit_events(Some(id), 500).await.unwrap();
    assert!(audit.iter().any(|e| e.event == "second_factor_attempt"
        && e.outcome == "locked_out"
        && e.remote_addr.as_deref() == Some(ATTACKER)));
    assert!(audit
        .iter()
        .any(|e| e.event == "login_totp" && e.outcome == "success" && e.remote_addr.as_deref() == Some(OWNER)));
}

async fn waits_grow_for_an_address_that_keeps_guessing(backend: Backend) {
    let server = TestServer::start_with(backend, trusting_loopback_proxies).await;
    server.client_account("cy").await;
    let attacker = server.client();
    let guess = || password_from(&attacker, ATTACKER, "cy", "wrong password!");
    for minutes in [15, 30, 60, 120] {
        for _ in 0..5 {
            assert_eq!(error_code(&guess().await), "invalid_credentials");
        }
        let locked = guess().await;
        assert_eq!(error_code(&locked), "locked_out");
        let message = locked.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("Try again in {minutes} minute(s)")),
            "{message}"
        );
        // Never the owner, from elsewhere.
        let owner = password_from(&server.client(), OWNER, "cy", PASSWORD).await;
        assert_eq!(owner.1["status"], "authenticated");
        server.clock.advance(minutes * 60);
    }
    // After a quiet day the address starts afresh.
    server.clock.advance(24 * 3600);
    for _ in 0..5 {
        assert_eq!(error_code(&guess().await), "invalid_credentials");
    }
    let message = guess().await.1["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("Try again in 15 minute(s)"), "{message}");
}

async fn the_account_as_a_whole_locks_after_failures_from_many_addresses(backend: Backend) {
    let server = TestServer::start_with(backend, trusting_loopback_proxies).await;
    server.full_admin("root").await;
    let (secret, _) = enrolled_client(&server, "eve").await;
    let attacker = server.client();
    password_from(&attacker, ATTACKER, "eve", PASSWORD).await;
    let wrong = wrong_code(&server, &secret);
    for address in 1..=10 {
        for _ in 0..5 {
            let answer = second_factor_from(&attacker, &format!("10.0.0.{address}"), &wrong).await;
            assert_eq!(error_code(&answer), "invalid_code");
        }
    }
    // Fifty failures from ten addresses: the account as a whole now waits, the owner too.
    let owner = server.client();
    password_from(&owner, OWNER, "eve", PASSWORD).await;
    let refused = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(error_code(&refused), "locked_out");
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, clients) = admin.get("/api/v1/admin/accounts?kind=client").await;
    assert_eq!(clients[0]["locked"], true);

    // When the window ends, the owner gets in.
    server.clock.advance(15 * 60);
    password_from(&owner, OWNER, "eve", PASSWORD).await;
    let accepted = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(accepted.0, StatusCode::OK, "{}", accepted.1);
}

/// One hundred wrong second factors from twenty addresses (each within its own limit; the
/// limit of all addresses raised so that they fit in one window).
async fn hundred_wrong_codes(server: &TestServer, username: &str, secret: &str) {
    let attacker = server.client();
    password_from(&attacker, ATTACKER, username, PASSWORD).await;
    let wrong = wrong_code(server, secret);
    for guess in 0..100 {
        let address = format!("10.1.0.{}", guess / 5);
        let answer = second_factor_from(&attacker, &address, &wrong).await;
        assert_eq!(error_code(&answer), "invalid_code", "guess {guess}");
    }
}

async fn a_hundred_wrong_codes_in_a_row_lock_the_second_factor_until_the_backup_code_or_an_admin(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        trusting_loopback_proxies(config);
        config.lockout.account_max_failures = 1_000;
    })
    .await;
    server.full_admin("root").await;
    let (secret, backup) = enrolled_client(&server, "fay").await;
    hundred_wrong_codes(&server, "fay", &secret).await;

    // The 101st is refused, the right code from a new address included, and waiting does
    // not lift it.
    let owner = server.client();
    let login = || password_from(&owner, OWNER, "fay", PASSWORD);
    assert_eq!(login().await.1["status"], "second_factor_required");
    let refused = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(
        (refused.0, error_code(&refused)),
        (StatusCode::TOO_MANY_REQUESTS, "second_factor_locked")
    );
    server.clock.advance(3 * 24 * 3600);
    server.app.purge_expired().await.unwrap();
    assert_eq!(login().await.1["status"], "second_factor_required");
    let refused = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(error_code(&refused), "second_factor_locked");
    let admin = server.client();
    admin.login("admin", "root").await;
    let (_, clients) = admin.get("/api/v1/admin/accounts?kind=client").await;
    assert_eq!(clients[0]["locked"], true);

    // The backup code gets the owner in, and lifts the lock.
    let (status, used) = owner
        .post_from(OWNER, "/api/v1/login/backup-code", json!({"backup_code": backup}))
        .await;
    assert_eq!(status, StatusCode::OK, "{used}");
    owner.post_empty("/api/v1/logout").await;
    assert_eq!(login().await.1["status"], "second_factor_required");
    let accepted = second_factor_from(&owner, OWNER, &server.code(&secret, 1)).await;
    assert_eq!(accepted.0, StatusCode::OK, "{}", accepted.1);

    // Again, and an administrator lifts it.
    server.clock.advance(60);
    hundred_wrong_codes(&server, "fay", &secret).await;
    let owner = server.client();
    password_from(&owner, OWNER, "fay", PASSWORD).await;
    let refused = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(error_code(&refused), "second_factor_locked");
    let id = clients[0]["id"].as_i64().unwrap();
    let admin = server.client();
    admin.login("admin", "root").await;
    assert_eq!(
        admin.post_empty(&format!("/api/v1/admin/accounts/{id}/unlock")).await.0,
        StatusCode::NO_CONTENT
    );
    password_from(&owner, OWNER, "fay", PASSWORD).await;
    let accepted = second_factor_from(&owner, OWNER, &server.code(&secret, 0)).await;
    assert_eq!(accepted.0, StatusCode::OK, "{}", accepted.1);
}

on_both_backends!(
    wrong_codes_at_enrolment_count_towards_the_same_lockout,
    a_thousand_wrong_codes_never_succeed_and_lock_the_account,
    locked_out_answers_say_when_to_retry_and_never_say_already_used,
    password_failures_count_per_account_whatever_name_was_typed,
    second_factor_lockout_survives_a_restart_and_an_admin_can_clear_it,
    unknown_names_answer_and_lock_out_as_real_names_do,
    one_address_is_locked_out_and_the_owner_elsewhere_is_not,
    waits_grow_for_an_address_that_keeps_guessing,
    the_account_as_a_whole_locks_after_failures_from_many_addresses,
    a_hundred_wrong_codes_in_a_row_lock_the_second_factor_until_the_backup_code_or_an_admin,
);
