//! Applications and the validate API over HTTP, on both databases: keys shown once, stored
//! hashed, checked on every call (revoked, expired, suspended, outside the networks), and
//! `check` sharing the login page's single use and lockout.

use reqwest::StatusCode;
use serde_json::{json, Value};
use twofold::core::policy::{AccountKind, Role};

use crate::support::{enrolled_client, error_code, raised_lockout, Answer, Backend, Client, TestServer};

on_both_backends!(
    an_application_key_is_shown_once_stored_hashed_and_checked_on_every_call,
    check_uses_a_code_once_and_across_the_login_page,
    checks_and_the_login_page_share_one_lockout,
    a_backup_code_through_check_is_used_once_and_its_successor_shown_once,
);

/// A full administrator logged in, who registers `body` as an application; its first key.
pub(crate) async fn registered(server: &TestServer, body: Value) -> (Client, i64, String) {
    if server
        .app
        .store
        .find_account(AccountKind::Admin, "boss")
        .await
        .unwrap()
        .is_none()
    {
        server.full_admin("boss").await;
    }
    let admin = server.client();
    admin.login("admin", "boss").await;
    let (status, created) = admin.post("/api/v1/admin/applications", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"]["key"].as_str().unwrap().to_string();
    (admin, created["id"].as_i64().unwrap(), key)
}

/// `POST /api/v1/validate/check` with `authorization` (a whole header value, if any).
async fn check(server: &TestServer, authorization: Option<&str>, body: Value) -> Answer {
    let client = server.client();
    let mut request = client
        .http
        .post(format!("{}/api/v1/validate/check", server.base))
        .json(&body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    client.send(request).await
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

pub(crate) async fn audit(server: &TestServer) -> String {
    format!("{:?}", server.app.store.audit_events(None, 200).await.unwrap())
}

/// Keys are shown once, kept as keyed hashes, and checked on every call: Bearer or Basic;
/// a wrong, expired or revoked key, a suspended application, a call from outside its
/// networks are refused at once; only full administrators manage them.
async fn an_application_key_is_shown_once_stored_hashed_and_checked_on_every_call(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (admin, id, key) = registered(&server, json!({"name": "Shop", "kinds": "client", "scopes": ["check"]})).await;
    let (key_id, secret) = key.strip_prefix("tfk_").unwrap().split_once('_').unwrap();
    assert_eq!(key_id.len(), 12);
    let (_, list) = admin.get("/api/v1/admin/applications").await;
    assert_eq!(list[0]["name"], "Shop");
    assert_eq!(list[0]["keys"][0]["key_id"], key_id);
    assert!(!list.to_string().contains(secret), "never shown again: {list}");
    let stored = server.app.store.application_key(key_id).await.unwrap().unwrap();
    assert_eq!(stored.secret_hash.len(), 32);
    assert!(!stored
        .secret_hash
        .windows(8)
        .any(|w| secret.as_bytes().windows(8).any(|s| s == w)));
    let taken = admin
        .post(
            "/api/v1/admin/applications",
            json!({"name": "Shop", "kinds": "client", "scopes": ["check"]}),
        )
        .await;
    assert_eq!(taken.0, StatusCode::CONFLICT);

    // Only full administrators manage applications.
    server
        .create_account(AccountKind::Admin, Some(Role::Staff), "sam")
        .await;
    let staff = server.client();
    staff.login("admin", "sam").await;
    assert_eq!(staff.get("/api/v1/admin/applications").await.0, StatusCode::FORBIDDEN);

    let body = json!({"user": "nobody", "kind": "client", "code": "123456"});
    let ok = |answer: &Answer| answer.0 == StatusCode::OK;
    assert!(ok(&check(&server, Some(&bearer(&key)), body.clone()).await));
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{key_id}:{secret}").as_bytes())
    );
    assert!(
        ok(&check(&server, Some(&basic), body.clone()).await),
        "HTTP Basic works too"
    );
    let wrong_secret = format!(
        "tfk_{key_id}_{}",
        secret.replace(|c: char| c.is_ascii_alphabetic(), "x")
    );
    for refused in [None, Some("Bearer nonsense".to_string()), Some(bearer(&wrong_secret))] {
        let answer = check(&server, refused.as_deref(), body.clone()).await;
        assert_eq!(
            (answer.0, error_code(&answer)),
            (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            "{refused:?}"
        );
    }

    // A second key, expiring: rotation, then expiry and revocation, each at once.
    let (status, second) = admin
        .post(
            &format!("/api/v1/admin/applications/{id}/keys"),
            json!({"expires_in_days": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = second["key"].as_str().unwrap().to_string();
    assert!(ok(&check(&server, Some(&bearer(&second)), body.clone()).await));
    server.clock.advance(86_401);
    assert_eq!(
        check(&server, Some(&bearer(&second)), body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        ok(&check(&server, Some(&bearer(&key)), body.clone()).await),
        "the first still works"
    );
    admin.login("admin", "boss").await; // a day later: the administrator's session ended
    let revoked = admin
        .post_empty(&format!("/api/v1/admin/applications/{id}/keys/{key_id}/revoke"))
        .await;
    assert_eq!(revoked.0, StatusCode::NO_CONTENT);
    assert_eq!(
        check(&server, Some(&bearer(&key)), body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let audited = audit(&server).await;
    assert!(audited.contains("revoked") && audited.contains("expired"), "{audited}");
    assert!(!audited.contains(secret), "never audited");

    // Suspended, then active again; and an application limited to other networks.
    let (_, _, third) = registered(
        &server,
        json!({"name": "VPN", "kinds": "both", "scopes": ["check"], "networks": ["10.0.0.0/8"]}),
    )
    .await;
    let outside = check(&server, Some(&bearer(&third)), body.clone()).await;
    assert_eq!(outside.0, StatusCode::FORBIDDEN, "{outside:?}");
    let (_, shop, fresh) = registered(
        &server,
        json!({"name": "Shop 2", "kinds": "client", "scopes": ["check"]}),
    )
    .await;
    let suspend = |active: bool| {
        let admin = &admin;
        async move {
            admin
                .patch(&format!("/api/v1/admin/applications/{shop}"), json!({"active": active}))
                .await
        }
    };
    assert_eq!(suspend(false).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        check(&server, Some(&bearer(&fresh)), body.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    suspend(true).await;
    assert!(ok(&check(&server, Some(&bearer(&fresh)), body.clone()).await));
}

/// A right code is accepted once, whether through the API or at the login page; wrong
/// codes and unknown users get the same answer; scopes hold.
async fn check_uses_a_code_once_and_across_the_login_page(backend: Backend) {
    let server = TestServer::start_with(backend, raised_lockout).await;
    let (secret, _) = enrolled_client(&server, "cara").await;
    let (_, _, key) = registered(&server, json!({"name": "Shop", "kinds": "client", "scopes": ["check"]})).await;
    let auth = bearer(&key);
    let checking = |code: String| json!({"user": "cara", "kind": "client", "code": code, "client_ip": "192.0.2.10"});

    let (_, wrong) = check(&server, Some(&auth), checking("000000".into())).await;
    assert_eq!(wrong, json!({"result": "reject"}));
    let (_, unknown) = check(
        &server,
        Some(&auth),
        json!({"user": "nobody", "kind": "client", "code": "000000"}),
    )
    .await;
    assert_eq!(unknown, wrong, "an unknown user gets the same answer");
    let spoofed = check(
        &server,
        Some(&auth),
        json!({"user": "cara", "kind": "client", "code": "000000", "client_ip": "10.0.0.1; drop"}),
    )
    .await;
    assert_eq!(
        error_code(&spoofed),
        "validation_error",
        "client_ip is an address or nothing"
    );
    let code = server.code(&secret, 0);
    let (_, accepted) = check(&server, Some(&auth), checking(code.clone())).await;
    assert_eq!(
        accepted,
        json!({"result": "accept", "method": "totp", "backup_codes_left": 1})
    );
    let (_, replayed) = check(&server, Some(&auth), checking(code.clone())).await;
    assert_eq!(replayed, json!({"result": "reject"}), "single use");
    // The same code at the login page: already used.
    let client = server.client();
    client.login("client", "cara").await;
    let at_page = client.post("/api/v1/login/second-factor", json!({"code": code})).await;
    assert_eq!(error_code(&at_page), "code_already_used");
    // An application for clients cannot check an administrator's code.
    let scoped = check(
        &server,
        Some(&auth),
        json!({"user": "boss", "kind": "admin", "code": "000000"}),
    )
    .await;
    assert_eq!(scoped.0, StatusCode::FORBIDDEN);

    // Twenty checks of one code at once: one accept.
    server.next_step();
    let code = server.code(&secret, 0);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, auth, body, barrier) = (
                server.client().http,
                format!("{}/api/v1/validate/check", server.base),
                auth.clone(),
                checking(code.clone()),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let response = http.post(url).header("authorization", auth).json(&body).send().await;
                response.unwrap().json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut accepts = 0;
    for task in tasks {
        accepts += usize::from(task.await.unwrap()["result"] == "accept");
    }
    assert_eq!(accepts, 1);
    assert!(audit(&server).await.contains("validate_check"));
}

/// Wrong codes through the API and at the login page count together, from the user's
/// address as the application reports it: the sixth attempt is locked out either way.
async fn checks_and_the_login_page_share_one_lockout(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "cara").await;
    let (_, _, key) = registered(&server, json!({"name": "Shop", "kinds": "client", "scopes": ["check"]})).await;
    let auth = bearer(&key);
    let client = server.client();
    client.login("client", "cara").await;
    for _ in 0..3 {
        let wrong = client
            .post("/api/v1/login/second-factor", json!({"code": "000000"}))
            .await;
        assert_eq!(error_code(&wrong), "invalid_code");
    }
    // The test client's address is 127.0.0.1: the application reports the same user.
    let checking = |code: &str| json!({"user": "cara", "kind": "client", "code": code, "client_ip": "127.0.0.1"});
    for _ in 0..2 {
        let (_, wrong) = check(&server, Some(&auth), checking("000000")).await;
        assert_eq!(wrong["result"], "reject");
    }
    let locked = check(&server, Some(&auth), checking(&server.code(&secret, 0))).await;
    assert_eq!(
        (locked.0, &locked.1["result"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("locked")),
        "{locked:?}"
    );
    assert!(locked.1["retry_after"].as_i64().unwrap() > 0, "{locked:?}");
    let at_page = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(&secret, 0)}))
        .await;
    assert_eq!(error_code(&at_page), "locked_out");
}

/// A backup code through `check` is accepted once, as at the login page, and the next one is
/// in the answer for the application to show: the old one is refused everywhere, the new one
/// works at the login page.
async fn a_backup_code_through_check_is_used_once_and_its_successor_shown_once(backend: Backend) {
    let server = TestServer::start_with(backend, raised_lockout).await;
    let (_, backup) = enrolled_client(&server, "cara").await;
    let (_, _, key) = registered(&server, json!({"name": "Shop", "kinds": "client", "scopes": ["check"]})).await;
    let auth = bearer(&key);
    let checking = |code: &str| json!({"user": "cara", "kind": "client", "code": code});

    let (status, accepted) = check(&server, Some(&auth), checking(&backup.to_lowercase())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&accepted["result"], &accepted["method"], &accepted["backup_codes_left"]),
        (&json!("accept"), &json!("backup_code"), &json!(1)),
        "{accepted}"
    );
    let next = accepted["backup_code"].as_str().unwrap().to_string();
    assert_ne!(next, backup);
    assert_eq!(
        check(&server, Some(&auth), checking(&backup)).await.1,
        json!({"result": "reject"})
    );

    // The successor is the account's one backup code now: it works at the login page, once.
    let client = server.client();
    client.login("client", "cara").await;
    let (status, used) = client
        .post("/api/v1/login/backup-code", json!({"backup_code": next}))
        .await;
    assert_eq!(status, StatusCode::OK, "{used}");
    let (_, replayed) = check(&server, Some(&auth), checking(&next)).await;
    assert_eq!(replayed, json!({"result": "reject"}), "used at the login page");
    let audited = audit(&server).await;
    assert!(audited.contains("accept backup_code"), "{audited}");
    assert!(!audited.contains(&next) && !audited.contains(&backup), "never audited");
}
