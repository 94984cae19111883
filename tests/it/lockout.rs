//! Adversarial tests of lockout: counted per account, atomically, surviving a restart.

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

on_both_backends!(
    wrong_codes_at_enrolment_count_towards_the_same_lockout,
    a_thousand_wrong_codes_never_succeed_and_lock_the_account,
    locked_out_answers_say_when_to_retry_and_never_say_already_used,
    password_failures_count_per_account_whatever_name_was_typed,
    second_factor_lockout_survives_a_restart_and_an_admin_can_clear_it,
);
