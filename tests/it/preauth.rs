//! `preauth` and enrolment links, over HTTP on both databases: what an application is told
//! to do with each user, and a link that enrols once, without a password, and opens nothing
//! else.

use reqwest::StatusCode;
use serde_json::{json, Value};
use twofold::core::policy::AccountKind;

use crate::applications::{audit, registered};
use crate::pages::Browser;
use crate::support::{change_settings, enrolled_client, error_code, Answer, Backend, TestServer};

on_both_backends!(
    preauth_says_auth_enroll_allow_or_deny,
    an_enrolment_link_enrols_its_account_once_without_a_password_and_opens_nothing_else,
    enrolment_links_expire_are_single_use_under_a_race_and_die_with_their_application,
    an_application_makes_accounts_and_names_them_by_its_own_id,
);

/// `POST /api/v1/validate/<call>` with `key`.
async fn validate(server: &TestServer, key: &str, call: &str, body: Value) -> Answer {
    let client = server.client();
    let request = client
        .http
        .post(format!("{}/api/v1/validate/{call}", server.base))
        .bearer_auth(key)
        .json(&body);
    client.send(request).await
}

async fn preauth(server: &TestServer, key: &str, body: Value) -> Answer {
    validate(server, key, "preauth", body).await
}

fn client_named(user: &str) -> Value {
    json!({"user": user, "kind": "client"})
}

/// The path of an `enroll_url` (no `public_url` is configured: it is a path already).
fn link_of(answer: &Answer) -> String {
    assert_eq!(answer.1["result"], "enroll", "{answer:?}");
    answer.1["enroll_url"].as_str().unwrap().to_string()
}

/// `auth` with the account's methods; `enroll` (a link only with the `accounts` scope);
/// `allow` only by the application's explicit policy, and never for a user Twofold forces
/// to enrol; `deny` for an unknown user, or when no second factor can be set up.
async fn preauth_says_auth_enroll_allow_or_deny(backend: Backend) {
    let server = TestServer::start(backend).await;
    enrolled_client(&server, "cara").await;
    server.client_account("dan").await;
    let (admin, checker_id, checker) =
        registered(&server, json!({"name": "Shop", "kinds": "client", "scopes": ["check"]})).await;
    let (_, _, linker) = registered(
        &server,
        json!({"name": "Portal", "kinds": "both", "scopes": ["check", "accounts"]}),
    )
    .await;

    let (status, cara) = preauth(&server, &checker, client_named("cara")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cara, json!({"result": "auth", "methods": ["totp", "backup_code"]}));
    let (_, dan) = preauth(&server, &checker, client_named("dan")).await;
    assert_eq!(dan, json!({"result": "enroll"}), "no link without the accounts scope");
    let (_, nobody) = preauth(&server, &checker, client_named("nobody")).await;
    assert_eq!(nobody, json!({"result": "deny", "reason": "no such user"}));
    let out_of_scope = preauth(&server, &checker, json!({"user": "boss", "kind": "admin"})).await;
    assert_eq!(out_of_scope.0, StatusCode::FORBIDDEN);
    let with_link = preauth(&server, &linker, client_named("dan")).await;
    assert!(link_of(&with_link).starts_with("/enroll/"), "{with_link:?}");
    assert_eq!(with_link.1["expires_at"], json!(server.now() + 600));

    // The application's policy lets unenrolled users pass: explicit, and audited.
    let changed = admin
        .patch(
            &format!("/api/v1/admin/applications/{checker_id}"),
            json!({"allow_unenrolled": true}),
        )
        .await;
    assert_eq!(changed.0, StatusCode::NO_CONTENT, "{changed:?}");
    let (_, dan) = preauth(&server, &checker, client_named("dan")).await;
    assert_eq!(dan, json!({"result": "allow"}));
    let (_, cara) = preauth(&server, &checker, client_named("cara")).await;
    assert_eq!(cara["result"], "auth", "an enrolled user still gives the code");
    let audited = audit(&server).await;
    assert!(
        audited.contains("unenrolled users may pass") && audited.contains("allow: no second factor"),
        "{audited}"
    );
    // ... but not for a user Twofold itself makes enrol.
    assert_eq!(
        change_settings(&admin, |s| s["force_clients"] = json!(true)).await.0,
        StatusCode::OK
    );
    let (_, dan) = preauth(&server, &checker, client_named("dan")).await;
    assert_eq!(dan, json!({"result": "enroll"}));

    // No second factor offered to administrators: an unenrolled one cannot be sent to enrol.
    server
        .create_account(AccountKind::Admin, Some(twofold::core::policy::Role::Staff), "sam")
        .await;
    assert_eq!(
        change_settings(&admin, |s| s["services"]["totp"]["admins"] = json!(false))
            .await
            .0,
        StatusCode::OK
    );
    let (_, sam) = preauth(&server, &linker, json!({"user": "sam", "kind": "admin"})).await;
    assert_eq!(sam["result"], "deny", "{sam}");
    let bad_address = preauth(
        &server,
        &checker,
        json!({"user": "dan", "kind": "client", "client_ip": "nowhere"}),
    )
    .await;
    assert_eq!(error_code(&bad_address), "validation_error");
}

/// The link's page names the account and the application; only its button uses it, with
/// the page's CSRF token; the session it opens may only enrol, and ends when it has; the
/// account then passes through `check`; the link never works again.
async fn an_enrolment_link_enrols_its_account_once_without_a_password_and_opens_nothing_else(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("dan").await;
    let (_, _, key) = registered(
        &server,
        json!({"name": "Portal", "kinds": "client", "scopes": ["check", "accounts"]}),
    )
    .await;
    let link = link_of(&preauth(&server, &key, client_named("dan")).await);

    let browser = Browser::new(&server);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains("dan") && page.html.contains("Portal"),
        "{}",
        page.html
    );
    assert_eq!(
        browser.get(&link).await.status,
        StatusCode::OK,
        "looking does not use it"
    );
    let forged = browser.post(&link, &[("csrf", "made-up")]).await;
    assert_ne!(forged.status, StatusCode::SEE_OTHER, "a form from elsewhere is refused");
    assert_eq!(browser.get(&link).await.status, StatusCode::OK, "and did not use it");

    let used = browser.post(&link, &[("csrf", &page.csrf())]).await;
    assert_eq!(used.location.as_deref(), Some("/account"), "{}", used.html);
    let account = browser.get("/account").await;
    assert!(account.html.contains("go back to the application"), "{}", account.html);
    // Nothing but enrolment: other pages send it back, the API refuses it.
    assert_eq!(browser.get("/").await.location.as_deref(), Some("/account"));
    assert_eq!(browser.get("/admin").await.location.as_deref(), Some("/admin/login"));
    assert_eq!(browser.get("/login/code").await.location.as_deref(), Some("/account"));
    let me = browser
        .http
        .get(format!("{}/api/v1/me", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::FORBIDDEN);
    assert!(me.text().await.unwrap().contains("enrollment_required"));

    let csrf = account.csrf();
    let started = browser
        .post(
            "/account/two-factor/start",
            &[("csrf", &csrf), ("enable", "on"), ("service", "totp")],
        )
        .await;
    assert_eq!(started.location.as_deref(), Some("/account/two-factor/totp"));
    let secret = browser.get("/account/two-factor/totp").await.totp_secret();
    let done = browser
        .post(
            "/account/two-factor/confirm",
            &[("csrf", &csrf), ("code", &server.code(&secret, 0))],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(
        done.html.contains("Record the Backup Code") && done.html.contains("go back to the application"),
        "{}",
        done.html
    );
    // The session ended with the enrolment: no way into the client area.
    assert_eq!(browser.get("/account").await.location.as_deref(), Some("/login"));
    assert_eq!(browser.get(&link).await.status, StatusCode::NOT_FOUND, "used");
    let again = Browser::new(&server);
    let csrf = again.get("/login").await.csrf();
    let reused = again.post(&link, &[("csrf", &csrf)]).await;
    assert_eq!(reused.status, StatusCode::NOT_FOUND);

    // The application now asks for the code, and the code works.
    let (_, dan) = preauth(&server, &key, client_named("dan")).await;
    assert_eq!(dan["result"], "auth");
    server.next_step();
    let checked = validate(
        &server,
        &key,
        "check",
        json!({"user": "dan", "kind": "client", "code": server.code(&secret, 0)}),
    )
    .await;
    assert_eq!(checked.1["result"], "accept", "{checked:?}");
    let audited = audit(&server).await;
    assert!(audited.contains("enrolment_link_used"), "{audited}");
    assert!(!audited.contains(link.trim_start_matches("/enroll/")), "never audited");
}

/// A link works until it expires, once even when used twice at the same instant, only for
/// its own account, and not once its application is suspended.
async fn enrolment_links_expire_are_single_use_under_a_race_and_die_with_their_application(backend: Backend) {
    let server = TestServer::start(backend).await;
    for name in ["dan", "erin", "fay"] {
        server.client_account(name).await;
    }
    let (admin, id, key) = registered(
        &server,
        json!({"name": "Portal", "kinds": "client", "scopes": ["check", "accounts"]}),
    )
    .await;
    let browser = Browser::new(&server);
    let csrf = browser.get("/login").await.csrf();

    let expiring = link_of(&preauth(&server, &key, client_named("dan")).await);
    server.clock.advance(601);
    assert_eq!(browser.get(&expiring).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        browser.post(&expiring, &[("csrf", &csrf)]).await.status,
        StatusCode::NOT_FOUND
    );

    // Two uses of one link at once: one session.
    let raced = link_of(&preauth(&server, &key, client_named("erin")).await);
    let (one, two) = (Browser::new(&server), Browser::new(&server));
    let (csrf_one, csrf_two) = (one.get("/login").await.csrf(), two.get("/login").await.csrf());
    let (form_one, form_two) = ([("csrf", csrf_one.as_str())], [("csrf", csrf_two.as_str())]);
    let (first, second) = tokio::join!(one.post(&raced, &form_one), two.post(&raced, &form_two));
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::NOT_FOUND]);
    // The link's session is erin's, whoever else is logged in in that browser.
    let winner = if first.status == StatusCode::SEE_OTHER {
        &one
    } else {
        &two
    };
    let account = winner.get("/account").await;
    assert!(
        account.html.contains("erin") && !account.html.contains("dan"),
        "{}",
        account.html
    );

    // Suspending the application ends its links.
    let suspended_link = link_of(&preauth(&server, &key, client_named("fay")).await);
    admin
        .patch(&format!("/api/v1/admin/applications/{id}"), json!({"active": false}))
        .await;
    assert_eq!(browser.get(&suspended_link).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        browser.post(&suspended_link, &[("csrf", &csrf)]).await.status,
        StatusCode::NOT_FOUND
    );

    // Expired links are purged.
    server.clock.advance(601);
    let purged = server.app.purge_expired().await.unwrap();
    assert_eq!(purged[5], 3, "{purged:?}");
}

/// Enrols through a link as a user does, on the pages; returns the TOTP secret.
async fn enrol_by_link(server: &TestServer, link: &str) -> String {
    let browser = Browser::new(server);
    let page = browser.get(link).await;
    let used = browser.post(link, &[("csrf", &page.csrf())]).await;
    assert_eq!(used.location.as_deref(), Some("/account"), "{}", used.html);
    let csrf = browser.get("/account").await.csrf();
    browser
        .post(
            "/account/two-factor/start",
            &[("csrf", &csrf), ("enable", "on"), ("service", "totp")],
        )
        .await;
    let secret = browser.get("/account/two-factor/totp").await.totp_secret();
    let done = browser
        .post(
            "/account/two-factor/confirm",
            &[("csrf", &csrf), ("code", &server.code(&secret, 0))],
        )
        .await;
    assert!(done.html.contains("Record the Backup Code"), "{}", done.html);
    secret
}

/// `accounts` makes an account without a Twofold password (no login to Twofold's areas,
/// whatever is typed), named afterwards by the application's own id, which no other
/// application can use; duplicates and other scopes are refused.
async fn an_application_makes_accounts_and_names_them_by_its_own_id(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (admin, _, key) = registered(
        &server,
        json!({"name": "Portal", "kinds": "client", "scopes": ["check", "accounts"]}),
    )
    .await;
    let (_, _, other) = registered(
        &server,
        json!({"name": "Other", "kinds": "client", "scopes": ["check", "accounts"]}),
    )
    .await;
    let (_, _, checker) = registered(&server, json!({"name": "Shop", "kinds": "client", "scopes": ["check"]})).await;
    let nina = json!({"kind": "client", "username": "nina", "email": "nina@example.com", "external_id": "crm-1"});

    let (status, created) = validate(&server, &key, "accounts", nina.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (&created["username"], &created["external_id"]),
        (&json!("nina"), &json!("crm-1"))
    );
    for taken in [
        json!({"kind": "client", "username": "nina2", "external_id": "crm-1"}),
        json!({"kind": "client", "username": "nina", "external_id": "crm-2"}),
    ] {
        let answer = validate(&server, &key, "accounts", taken).await;
        assert_eq!(answer.0, StatusCode::CONFLICT, "{answer:?}");
    }
    let refused = [
        (&checker, nina.clone(), StatusCode::FORBIDDEN),
        (
            &key,
            json!({"kind": "admin", "username": "root2", "external_id": "x"}),
            StatusCode::FORBIDDEN,
        ),
        (
            &key,
            json!({"kind": "client", "username": "ok", "external_id": " padded"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &key,
            json!({"kind": "client", "username": "bad name", "external_id": "y"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (with, body, status) in refused {
        let answer = validate(&server, with, "accounts", body.clone()).await;
        assert_eq!(answer.0, status, "{body} {answer:?}");
    }

    // No password: no login to Twofold's areas, whatever is typed.
    for password in ["", "!no-password", crate::support::PASSWORD] {
        let login = server.client().login_with("client", "nina", password).await;
        assert_eq!(error_code(&login), "invalid_credentials", "{password:?}: {login:?}");
    }

    // Named by its id, by this application only.
    let by_id = json!({"external_id": "crm-1", "kind": "client"});
    let link = link_of(&preauth(&server, &key, by_id.clone()).await);
    let (_, elsewhere) = preauth(&server, &other, by_id.clone()).await;
    assert_eq!(elsewhere["result"], "deny", "{elsewhere}");
    for ambiguous in [
        json!({"user": "nina", "external_id": "crm-1", "kind": "client"}),
        json!({"kind": "client"}),
    ] {
        let answer = preauth(&server, &key, ambiguous).await;
        assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{answer:?}");
    }

    let secret = enrol_by_link(&server, &link).await;
    server.next_step();
    let code = server.code(&secret, 0);
    let mut check = json!({"external_id": "crm-1", "kind": "client", "code": code});
    let (_, other_says) = validate(&server, &other, "check", check.clone()).await;
    assert_eq!(other_says, json!({"result": "reject"}));
    let (_, accepted) = validate(&server, &key, "check", check.clone()).await;
    assert_eq!(accepted["result"], "accept", "{accepted}");
    check["external_id"] = json!("crm-404");
    assert_eq!(validate(&server, &key, "check", check).await.1["result"], "reject");

    // Administrators see and manage it as any other client.
    let (_, clients) = admin.get("/api/v1/admin/accounts?kind=client").await;
    let listed = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["username"] == "nina")
        .unwrap();
    assert_eq!(listed["two_factor_enabled"], true, "{listed}");
    let audited = audit(&server).await;
    assert!(
        audited.contains("external_id \\\"crm-1\\\", without a password"),
        "{audited}"
    );
}
