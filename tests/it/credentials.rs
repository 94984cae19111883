//! Several second-factor credentials per account: adding one (with the password), logging
//! in with any of them (each code once), renaming and removing them, and what each change
//! does to the account's other sessions. Also the one replay rule for tokens and kept
//! challenges, at the store, where every factor meets it.

use reqwest::StatusCode;
use serde_json::json;
use twofold::core::policy::{AccountKind, TwoFactorSettings};
use twofold::store::{Consumption, Kept, Purpose, ReplayGuard, SessionUpgrade, Settled, Stage, StoredChallenge};

use crate::support::*;

async fn audit_details(server: &TestServer, event: &str) -> Vec<String> {
    let events = server.app.store.audit_events(None, 1000).await.unwrap();
    events
        .into_iter()
        .filter(|e| e.event == event)
        .map(|e| e.detail.unwrap_or_default())
        .collect()
}

async fn a_second_authenticator_needs_the_password_and_either_logs_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("dora").await;
    let owner = server.client();
    owner.login("client", "dora").await;
    let (phone_secret, _) = owner.enrol_totp(&server).await;
    let (status, mine) = owner.get("/api/v1/me/two-factor").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["enabled"], true);
    assert_eq!(mine["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(mine["credentials"][0]["label"], "Time-Based Tokens");
    assert_eq!(mine["credentials"][0]["service"], "totp");
    assert!(mine["credentials"][0]["last_used_at"].is_null());
    assert!(mine["backup_code"]["issued_at"].is_string());
    let phone_id = mine["credentials"][0]["id"].as_i64().unwrap();

    // A session opened before the new credential will be ended by it.
    let elsewhere = server.client();
    elsewhere.login("client", "dora").await;
    server.next_step();
    elsewhere
        .post(
            "/api/v1/login/second-factor",
            json!({"code": server.code(&phone_secret, 0)}),
        )
        .await;
    assert_eq!(elsewhere.get("/api/v1/me").await.0, StatusCode::OK);

    // Adding another takes the password: missing is 422, wrong is 401.
    let missing = owner
        .post("/api/v1/me/two-factor/totp/enrollment", json!({"label": "Tablet"}))
        .await;
    assert_eq!(
        (missing.0, error_code(&missing)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
    );
    let no_body = owner.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    assert_eq!(no_body.0, StatusCode::UNPROCESSABLE_ENTITY, "{no_body:?}");
    let wrong = owner
        .post(
            "/api/v1/me/two-factor/totp/enrollment",
            json!({"label": "Tablet", "password": "not the password"}),
        )
        .await;
    assert_eq!(
        (wrong.0, error_code(&wrong)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    let (tablet_id, tablet_secret) = owner.add_totp(&server, "Tablet").await;
    assert_ne!(tablet_id, phone_id);
    let (_, mine) = owner.get("/api/v1/me/two-factor").await;
    let labels: Vec<&str> = mine["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Time-Based Tokens", "Tablet"]);
    assert!(
        mine["credentials"][0]["last_used_at"].is_string(),
        "the phone logged in"
    );
    // The enrolling session stays; the other one ended.
    assert_eq!(owner.get("/api/v1/me").await.0, StatusCode::OK);
    assert_eq!(elsewhere.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    let added = audit_details(&server, "credential_added").await;
    assert!(
        added
            .iter()
            .any(|d| d.contains(&format!("credential {tablet_id}")) && d.contains("\"Tablet\"")),
        "{added:?}"
    );

    // The login lists both; the tablet's code works, once; the phone's works too.
    server.next_step();
    let login = server.client();
    let (_, answer) = login.login("client", "dora").await;
    assert_eq!(answer["status"], "second_factor_required");
    let methods: Vec<(i64, &str)> = answer["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["credential_id"].as_i64().unwrap(), m["label"].as_str().unwrap()))
        .collect();
    assert_eq!(methods, [(phone_id, "Time-Based Tokens"), (tablet_id, "Tablet")]);
    let tablet_code = server.code(&tablet_secret, 0);
    let ok = login
        .post(
            "/api/v1/login/second-factor",
            json!({"type": "code", "code": tablet_code, "service": "totp"}),
        )
        .await;
    assert_eq!(ok.0, StatusCode::OK, "{ok:?}");
    let again = server.client();
    again.login("client", "dora").await;
    let replay = again
        .post("/api/v1/login/second-factor", json!({"code": tablet_code}))
        .await;
    assert_eq!(error_code(&replay), "code_already_used");
    let phone = again
        .post(
            "/api/v1/login/second-factor",
            json!({"code": server.code(&phone_secret, 0)}),
        )
        .await;
    assert_eq!(phone.0, StatusCode::OK, "{phone:?}");
}

async fn credentials_are_renamed_and_removed_and_the_last_turns_two_factor_off(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("fay").await;
    let fay = server.client();
    fay.login("client", "fay").await;
    fay.enrol_totp(&server).await;
    let (second, _) = fay.add_totp(&server, "Backup phone").await;
    let (_, mine) = fay.get("/api/v1/me/two-factor").await;
    let first = mine["credentials"][0]["id"].as_i64().unwrap();

    let renamed = fay
        .patch(
            &format!("/api/v1/me/two-factor/credentials/{second}"),
            json!({"label": "Old phone"}),
        )
        .await;
    assert_eq!(renamed.0, StatusCode::NO_CONTENT, "{renamed:?}");
    let bad = fay
        .patch(
            &format!("/api/v1/me/two-factor/credentials/{second}"),
            json!({"label": "tab\u{7}"}),
        )
        .await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, mine) = fay.get("/api/v1/me/two-factor").await;
    assert_eq!(mine["credentials"][1]["label"], "Old phone");
    let renames = audit_details(&server, "credential_renamed").await;
    assert!(
        renames
            .iter()
            .any(|d| d.contains(&format!("credential {second} \"Old phone\"")) && d.contains("was \"Backup phone\"")),
        "{renames:?}"
    );

    // A session of Fay's elsewhere ends when a credential is removed.
    let elsewhere = server.client();
    elsewhere.login("client", "fay").await;
    let remove = format!("/api/v1/me/two-factor/credentials/{second}/remove");
    let wrong = fay.post(&remove, json!({"password": "not the password"})).await;
    assert_eq!(error_code(&wrong), "invalid_credentials");
    let removed = fay.post(&remove, json!({"password": PASSWORD})).await;
    assert_eq!(removed.0, StatusCode::NO_CONTENT, "{removed:?}");
    assert_eq!(elsewhere.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    assert!(audit_details(&server, "credential_removed")
        .await
        .iter()
        .any(|d| d.contains(&format!("credential {second} \"Old phone\""))));
    let gone = fay.post(&remove, json!({"password": PASSWORD})).await;
    assert_eq!(gone.0, StatusCode::NOT_FOUND);
    let (_, mine) = fay.get("/api/v1/me/two-factor").await;
    assert_eq!(mine["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(mine["enabled"], true);

    // Removing the last one turns 2FA off, as disabling does.
    let last = fay
        .post(
            &format!("/api/v1/me/two-factor/credentials/{first}/remove"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(last.0, StatusCode::NO_CONTENT);
    let (_, mine) = fay.get("/api/v1/me/two-factor").await;
    assert_eq!(mine, json!({"enabled": false, "credentials": [], "backup_code": null}));
    assert_eq!(
        server.client().login("client", "fay").await.1["status"],
        "authenticated"
    );
}

async fn another_accounts_credential_is_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("gus").await;
    let gus = server.client();
    gus.login("client", "gus").await;
    gus.enrol_totp(&server).await;
    let (_, mine) = gus.get("/api/v1/me/two-factor").await;
    let gus_credential = mine["credentials"][0]["id"].as_i64().unwrap();

    server.client_account("hal").await;
    let hal = server.client();
    hal.login("client", "hal").await;
    let rename = hal
        .patch(
            &format!("/api/v1/me/two-factor/credentials/{gus_credential}"),
            json!({"label": "mine"}),
        )
        .await;
    assert_eq!((rename.0, error_code(&rename)), (StatusCode::NOT_FOUND, "not_found"));
    let remove = hal
        .post(
            &format!("/api/v1/me/two-factor/credentials/{gus_credential}/remove"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!((remove.0, error_code(&remove)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, mine) = gus.get("/api/v1/me/two-factor").await;
    assert_eq!(mine["credentials"][0]["label"], "Time-Based Tokens");
}

async fn a_forced_account_keeps_its_last_credential(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("ida").await;
    let ida = server.client();
    ida.login("client", "ida").await;
    ida.enrol_totp(&server).await;
    let settings = TwoFactorSettings {
        force_clients: true,
        ..TwoFactorSettings::default()
    };
    server
        .app
        .store
        .put_setting("two_factor", &serde_json::to_string(&settings).unwrap(), server.now())
        .await
        .unwrap();
    let (_, mine) = ida.get("/api/v1/me/two-factor").await;
    let only = mine["credentials"][0]["id"].as_i64().unwrap();
    let refused = ida
        .post(
            &format!("/api/v1/me/two-factor/credentials/{only}/remove"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!((refused.0, error_code(&refused)), (StatusCode::CONFLICT, "conflict"));
    let (_, mine) = ida.get("/api/v1/me/two-factor").await;
    assert_eq!(mine["enabled"], true);
}

async fn turning_two_factor_on_ends_the_accounts_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("jan").await;
    let before = server.client();
    assert_eq!(before.login("client", "jan").await.1["status"], "authenticated");
    let enrolling = server.client();
    enrolling.login("client", "jan").await;
    enrolling.enrol_totp(&server).await;
    // The password-only session opened before enrolment does not survive it.
    assert_eq!(before.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(enrolling.get("/api/v1/me").await.0, StatusCode::OK);
}

async fn an_enrolment_belongs_to_the_session_that_started_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("kim").await;
    let owner = server.client();
    owner.login("client", "kim").await;
    let other = server.client();
    other.login("client", "kim").await;
    let (status, started) = owner.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    assert_eq!(status, StatusCode::OK);
    let secret = started["secret"].as_str().unwrap().to_string();
    // Another session of the same account cannot complete it, even with the right code.
    let stolen = other
        .post(
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            json!({"code": server.code(&secret, 0)}),
        )
        .await;
    assert_eq!((stolen.0, error_code(&stolen)), (StatusCode::CONFLICT, "conflict"));
    // Nor replace it: its own enrolment is its own.
    let (_, replaced) = other.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    assert_ne!(replaced["secret"], started["secret"]);
    let confirmed = owner
        .post(
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            json!({"code": server.code(&secret, 0)}),
        )
        .await;
    assert_eq!(confirmed.0, StatusCode::OK, "{confirmed:?}");
    assert!(confirmed.1["backup_code"].is_string());
}

async fn an_account_holds_at_most_ten_credentials(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("lee").await;
    let lee = server.client();
    lee.login("client", "lee").await;
    lee.enrol_totp(&server).await;
    for n in 2..=10 {
        lee.add_totp(&server, &format!("Key {n}")).await;
    }
    let (_, mine) = lee.get("/api/v1/me/two-factor").await;
    assert_eq!(mine["credentials"].as_array().unwrap().len(), 10);
    let eleventh = lee
        .post(
            "/api/v1/me/two-factor/totp/enrollment",
            json!({"password": PASSWORD, "label": "one too many"}),
        )
        .await;
    assert_eq!((eleventh.0, error_code(&eleventh)), (StatusCode::CONFLICT, "conflict"));
}

/// A single-use token (how Duo's transaction ids and Universal Prompt states are guarded)
/// and a kept login challenge (WebAuthn's) complete at most one login, even raced.
async fn single_use_tokens_and_kept_challenges_complete_one_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    enrolled_client(&server, "max").await;
    let account = server
        .app
        .store
        .find_account(AccountKind::Client, "max")
        .await
        .unwrap()
        .unwrap();
    let credential_id = server.app.store.credentials(account.id).await.unwrap()[0].id;
    let (store, now, account_id) = (&server.app.store, server.now(), account.id);
    let half_logged_in = |n: u8| twofold::store::Session {
        token_hash: vec![n; 32],
        account_id,
        stage: Stage::SecondFactor,
        csrf_token: String::new(),
        expires_at: now + 600,
        verified_at: None,
    };
    let complete = move |session: twofold::store::Session, guard: ReplayGuard, challenge: bool| async move {
        let renewed: Vec<u8> = session.token_hash.iter().map(|b| b ^ 0xff).collect();
        let upgrade = SessionUpgrade {
            token_hash: &session.token_hash,
            new_token_hash: &renewed,
            from: Stage::SecondFactor,
            expires_at: now + 3600,
            verified_at: now,
        };
        let consumption = Consumption::Credential {
            id: credential_id,
            service: "totp",
            guard: &guard,
            kept: challenge.then_some(Kept::Session(&session.token_hash)),
        };
        settle_right_answer(store, account_id, consumption, upgrade, now).await
    };

    // The same token, raced from two sessions: one login completes.
    let token = ReplayGuard::Token {
        token_hash: vec![1; 32],
        expires_at: now + 600,
    };
    for n in [10, 11] {
        store.create_session(&half_logged_in(n), now).await.unwrap();
    }
    let (a, b) = tokio::join!(
        complete(half_logged_in(10), token.clone(), false),
        complete(half_logged_in(11), token.clone(), false)
    );
    let mut outcomes = [a, b];
    outcomes.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(outcomes, [Settled::AlreadyUsed, Settled::Completed]);

    // A kept challenge is consumed by the login it completes, and by nothing else.
    let session = half_logged_in(12);
    store.create_session(&session, now).await.unwrap();
    let kept = StoredChallenge {
        service: "totp".into(),
        label: None,
        sealed: vec![5; 40],
    };
    store
        .put_challenge(&session.token_hash, Purpose::Login, &kept, now + 60)
        .await
        .unwrap();
    let without_one = half_logged_in(13);
    store.create_session(&without_one, now).await.unwrap();
    assert_eq!(
        complete(without_one, ReplayGuard::ChallengeOnly, true).await,
        Settled::AlreadyUsed,
        "a session that was given no challenge cannot claim one"
    );
    assert_eq!(
        complete(session.clone(), ReplayGuard::ChallengeOnly, true).await,
        Settled::Completed
    );
    assert!(store
        .challenge(&session.token_hash, Purpose::Login, now)
        .await
        .unwrap()
        .is_none());
}

on_both_backends!(
    a_second_authenticator_needs_the_password_and_either_logs_in,
    credentials_are_renamed_and_removed_and_the_last_turns_two_factor_off,
    another_accounts_credential_is_not_found,
    a_forced_account_keeps_its_last_credential,
    turning_two_factor_on_ends_the_accounts_other_sessions,
    an_enrolment_belongs_to_the_session_that_started_it,
    an_account_holds_at_most_ten_credentials,
    single_use_tokens_and_kept_challenges_complete_one_login,
);
