//! Adversarial tests: half-logged-in sessions, races, roles, and the API's own rules.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

async fn a_password_only_session_can_call_nothing_else(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, _) = enrolled_client(&server, "nina").await;
    let half = server.client();
    assert_eq!(half.login("client", "nina").await.1["status"], "second_factor_required");

    let gets = [
        "/api/v1/me",
        "/api/v1/me/two-factor/services",
        "/api/v1/admin/two-factor/settings",
        "/api/v1/admin/accounts?kind=client",
    ];
    for path in gets {
        let answer = half.get(path).await;
        assert_eq!(
            (answer.0, error_code(&answer)),
            (StatusCode::UNAUTHORIZED, "second_factor_required"),
            "{path}"
        );
    }
    let posts = [
        ("/api/v1/me/two-factor/totp/enrollment", json!({})),
        (
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            json!({"code": "123456"}),
        ),
        ("/api/v1/me/two-factor/disable", json!({"password": PASSWORD})),
        (
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "something much longer"}),
        ),
        ("/api/v1/admin/accounts/1/two-factor/disable", json!({})),
    ];
    for (path, body) in posts {
        let answer = half.post(path, body).await;
        assert_eq!(
            (answer.0, error_code(&answer)),
            (StatusCode::UNAUTHORIZED, "second_factor_required"),
            "{path}"
        );
    }

    // The same token presented another way is no session at all.
    let cookie = half_session_cookie(&server, "nina").await;
    let raw = reqwest::Client::new();
    for header in [
        ("authorization", format!("Bearer {cookie}")),
        ("cookie", format!("session={cookie}")),
    ] {
        let response = raw
            .get(format!("{}/api/v1/me", server.base))
            .header(header.0, &header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    let response = raw
        .get(format!("{}/api/v1/me", server.base))
        .header("cookie", format!("twofold_session={cookie}"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "second_factor_required");
}

/// Logs in with the password only and returns the raw session token from `Set-Cookie`.
async fn half_session_cookie(server: &TestServer, username: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"username": username, "password": PASSWORD, "area": "client"}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: no Secure flag");
    cookie
        .trim_start_matches("twofold_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn the_same_code_raced_twenty_times_succeeds_once(backend: Backend) {
    // Lockout is raised so that all twenty reach the code check: this test is about the
    // compare-and-set on the used step, not about lockout.
    let server = TestServer::start_with(backend, raised_lockout).await;
    let (secret, _) = enrolled_client(&server, "olga").await;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        let client = server.client();
        assert_eq!(
            client.login("client", "olga").await.1["status"],
            "second_factor_required"
        );
        sessions.push(client);
    }
    let code = server.code(&secret, 0);
    let answers = race(sessions, "/api/v1/login/second-factor", json!({"code": code})).await;
    assert_single_use(&answers);
}

async fn one_backup_code_raced_twice_logs_in_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, backup) = enrolled_client(&server, "pia").await;
    let (first, second) = (server.client(), server.client());
    first.login("client", "pia").await;
    second.login("client", "pia").await;
    let body = json!({"backup_code": backup});
    let (a, b) = tokio::join!(
        first.post("/api/v1/login/backup-code", body.clone()),
        second.post("/api/v1/login/backup-code", body)
    );
    let successes = [&a, &b].iter().filter(|answer| answer.0 == StatusCode::OK).count();
    assert_eq!(successes, 1, "{a:?} {b:?}");
}

async fn staff_administrators_cannot_change_settings_or_others_two_factor(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .create_account(
            twofold::core::policy::AccountKind::Admin,
            Some(twofold::core::policy::Role::Staff),
            "sam",
        )
        .await;
    let client_id = server.client_account("quinn").await;
    let staff = server.client();
    assert_eq!(staff.login("admin", "sam").await.1["status"], "authenticated");
    assert_eq!(staff.get("/api/v1/me").await.1["role"], "staff");

    let answer = staff.get("/api/v1/admin/two-factor/settings").await;
    assert_eq!((answer.0, error_code(&answer)), (StatusCode::FORBIDDEN, "forbidden"));
    let settings = serde_json::to_value(twofold::core::policy::TwoFactorSettings {
        force_admins: true,
        ..Default::default()
    })
    .unwrap();
    let answer = staff.put("/api/v1/admin/two-factor/settings", settings).await;
    assert_eq!((answer.0, error_code(&answer)), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(
        !server.app.two_factor_settings().await.unwrap().force_admins,
        "nothing was saved"
    );
    for path in [
        format!("/api/v1/admin/accounts/{client_id}/two-factor/disable"),
        format!("/api/v1/admin/accounts/{client_id}/unlock"),
    ] {
        assert_eq!(error_code(&staff.post_empty(&path).await), "forbidden", "{path}");
    }
    // Clients are not administrators at all.
    let client = server.client();
    client.login("client", "quinn").await;
    assert_eq!(
        error_code(&client.get("/api/v1/admin/accounts?kind=client").await),
        "forbidden"
    );
    // And an administrator's credentials do not open the client area.
    assert_eq!(
        error_code(&server.client().login("client", "sam").await),
        "invalid_credentials"
    );
}

async fn the_api_takes_only_same_origin_json(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("rita").await;
    let raw = reqwest::Client::new();
    let url = format!("{}/api/v1/login", server.base);
    let body = r#"{"username":"rita","password":"correct horse battery staple","area":"client"}"#;

    let form = raw
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = raw
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    let body_json: serde_json::Value = broken.json().await.unwrap();
    assert_eq!(body_json["error"]["code"], "invalid_request");
    let missing = raw
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"username":"rita"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let response = raw
            .post(&url)
            .header("content-type", "application/json")
            .header(name, value)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(
            response.headers().get("set-cookie").is_none(),
            "no session for a cross-site call"
        );
    }
    let same = raw
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", server.base.clone())
        .header("sec-fetch-site", "same-origin")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);
    let headers = same.headers();
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");

    let unknown = raw
        .get(format!("{}/api/v1/nothing-here", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

async fn behind_tls_cookies_are_secure_and_only_the_public_origin_may_post(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.public_url = Some("https://2fa.example.com".into())
    })
    .await;
    server.client_account("uli").await;
    let raw = reqwest::Client::new();
    let login = |origin: &'static str| {
        raw.post(format!("{}/api/v1/login", server.base))
            .header("origin", origin)
            .json(&json!({"username": "uli", "password": PASSWORD, "area": "client"}))
            .send()
    };
    let refused = login("http://2fa.example.com").await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "same host, other scheme: another origin"
    );
    let accepted = login("https://2fa.example.com").await.unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(
        accepted.headers()["strict-transport-security"],
        "max-age=63072000",
        "over TLS, browsers are told to stay on TLS"
    );
    let cookie = accepted.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-twofold_session=")
            && cookie.contains("; Path=/;")
            && cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Domain="),
        "{cookie}"
    );
    // The prefixed cookie is the session; one without the prefix (which a sibling domain
    // could plant) is not looked at.
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let me = |cookie: String| {
        raw.get(format!("{}/api/v1/me", server.base))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(
        me(format!("__Host-twofold_session={token}")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        me(format!("twofold_session={token}")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The login form's CSRF cookie is Secure and prefixed too.
    let form = raw.get(format!("{}/login", server.base)).send().await.unwrap();
    let csrf = form.headers()["set-cookie"].to_str().unwrap();
    assert!(
        csrf.starts_with("__Host-twofold_csrf=") && csrf.contains("; Secure"),
        "{csrf}"
    );
}

/// DNS rebinding: without `public_url`, a request addressed to another name (a page on an
/// attacker's site whose name now resolves here) is refused; loopback names are served.
async fn without_a_public_url_only_local_host_names_are_answered(backend: Backend) {
    let server = TestServer::start(backend).await;
    let raw = reqwest::Client::new();
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let get = |host: String, path: &'static str| raw.get(format!("{}{path}", server.base)).header("host", host).send();
    for host in ["evil.example", "evil.example:80", "10.1.2.3", "localhost.evil.example"] {
        let refused = get(host.to_string(), "/login").await.unwrap();
        assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unknown_host");
        assert_eq!(
            get(host.to_string(), "/api/v1/me").await.unwrap().status(),
            StatusCode::MISDIRECTED_REQUEST
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_string(),
        "app.localhost".to_string(),
    ] {
        assert_eq!(
            get(host.clone(), "/login").await.unwrap().status(),
            StatusCode::OK,
            "{host}"
        );
    }
    assert_eq!(
        get("evil.example".into(), "/healthz").await.unwrap().status(),
        StatusCode::OK
    );
    let csrf = raw.get(format!("{}/login", server.base)).send().await.unwrap();
    let cookie = csrf.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("twofold_csrf=") && !cookie.contains("Secure"),
        "plain HTTP: {cookie}"
    );
    assert!(csrf.headers().get("strict-transport-security").is_none());
}

async fn unknown_users_and_wrong_passwords_look_the_same(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("sara").await;
    let checks = || server.app.password_checks.load(std::sync::atomic::Ordering::Relaxed);
    let before = checks();
    let unknown = server.client().login("client", "nobody").await;
    assert_eq!(checks(), before + 1, "an unknown name costs a real password hash");
    let wrong = server.client().login_with("client", "sara", "wrong password!").await;
    assert_eq!(checks(), before + 2);
    assert_eq!(unknown, wrong);
    assert_eq!(error_code(&unknown), "invalid_credentials");
}

/// No input reaches the database that it cannot store: a NUL byte (which PostgreSQL refuses
/// in text) or another control character in a name is any wrong name, never a 500.
async fn control_characters_in_names_are_wrong_names_not_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("root").await;
    let unknown = server.client().login("client", "nobody").await;
    for name in ["ro\0ot", "root\0", "\0", "root\n", "ro\u{1b}ot", "root\u{7f}"] {
        let answer = server.client().login("client", name).await;
        assert_eq!(answer, unknown, "{name:?}");
    }
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    for (username, email) in [("new\0user", "new@example.org"), ("newuser", "new\0@example.org")] {
        let (status, body) = admin
            .post(
                "/api/v1/admin/accounts",
                json!({"kind": "client", "username": username, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{username:?} {email:?}: {body}"
        );
    }
    // And the server still answers everything else normally.
    assert_eq!(server.client().login("client", "root").await.0, StatusCode::OK);
}

/// A username equal to another account's e-mail address would take that owner's e-mail login.
async fn a_username_cannot_be_another_accounts_email(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    let create = |kind: &'static str, username: &'static str, email: Option<&'static str>| {
        let admin = &admin;
        async move {
            admin
                .post(
                    "/api/v1/admin/accounts",
                    json!({"kind": kind, "username": username, "email": email, "password": PASSWORD}),
                )
                .await
        }
    };
    assert_eq!(
        create("client", "alice", Some("Alice@Example.org")).await.0,
        StatusCode::CREATED
    );
    let taken = create("client", "alice@example.org", None).await;
    assert_eq!((taken.0, error_code(&taken)), (StatusCode::CONFLICT, "conflict"));
    let taken = create("client", "bob", Some("ALICE@example.org")).await;
    assert_eq!(taken.0, StatusCode::CONFLICT);
    assert_eq!(create("client", "carol@example.org", None).await.0, StatusCode::CREATED);
    let taken = create("client", "dave", Some("carol@example.org")).await;
    assert_eq!(
        taken.0,
        StatusCode::CONFLICT,
        "an e-mail address that is another's username"
    );
    // Logins are by kind: an administrator may bear the name.
    assert_eq!(create("admin", "alice@example.org", None).await.0, StatusCode::CREATED);
    // Alice still logs in with her e-mail address.
    let (status, _) = server.client().login("client", "alice@example.org").await;
    assert_eq!(status, StatusCode::OK);
    let listed = admin.get("/api/v1/admin/accounts?kind=client").await.1;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

/// Turning a user's 2FA off (by the user or an administrator) and unlocking a user end the
/// user's other sessions, full and half-logged-in alike; the actor's own session stays.
async fn turning_two_factor_off_or_unlocking_ends_the_users_other_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, _) = enrolled_client(&server, "ursula").await;
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    let id = server.client_id("ursula").await;
    let half_session = || async {
        let client = server.client();
        assert_eq!(
            client.login("client", "ursula").await.1["status"],
            "second_factor_required"
        );
        client
    };
    let ended = |answer: Answer| {
        (answer.0, error_code(&answer).to_string()) == (StatusCode::UNAUTHORIZED, "unauthenticated".to_string())
    };

    // Unlocking: the sessions that were open end.
    let (a, b) = (
        full_session_with(&server, "ursula", &secret).await,
        half_session().await,
    );
    assert_eq!(
        admin.post_empty(&format!("/api/v1/admin/accounts/{id}/unlock")).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(ended(a.get("/api/v1/me").await) && ended(b.get("/api/v1/me").await));
    assert_eq!(
        admin.get("/api/v1/me").await.0,
        StatusCode::OK,
        "the administrator's own session stays"
    );

    // The user turning 2FA off ends the user's other sessions, not the one used.
    let mine = full_session_with(&server, "ursula", &secret).await;
    let other = full_session_with(&server, "ursula", &secret).await;
    let half = half_session().await;
    let (status, _) = mine
        .post("/api/v1/me/two-factor/disable", json!({"password": PASSWORD}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(ended(other.get("/api/v1/me").await) && ended(half.get("/api/v1/me").await));
    assert_eq!(mine.get("/api/v1/me").await.0, StatusCode::OK);

    // An administrator turning it off ends every session of the user.
    let secret = mine.enrol_totp(&server).await.0;
    let (a, b) = (
        full_session_with(&server, "ursula", &secret).await,
        half_session().await,
    );
    assert_eq!(
        admin
            .post_empty(&format!("/api/v1/admin/accounts/{id}/two-factor/disable"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    for client in [&mine, &a, &b] {
        assert!(ended(client.get("/api/v1/me").await));
    }
    assert_eq!(admin.get("/api/v1/me").await.0, StatusCode::OK);
}

/// A new session of the user through both steps, with the next step's code.
async fn full_session_with(server: &TestServer, username: &str, secret: &str) -> Client {
    server.next_step();
    let client = server.client();
    client.login("client", username).await;
    let (status, body) = client
        .post("/api/v1/login/second-factor", json!({"code": server.code(secret, 0)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    client
}

/// Sends a JSON request with exactly this `Cookie` header (no cookie store); returns the
/// answer and the session token the answer sets, if any.
async fn with_cookie(server: &TestServer, path: &str, cookie: &str, body: Option<Value>) -> (Answer, Option<String>) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", server.base);
    let request = match body {
        Some(body) => http.post(url).json(&body),
        None => http.get(url),
    };
    let response = request.header("cookie", cookie).send().await.unwrap();
    let token = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("twofold_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .filter(|v| !v.is_empty());
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    ((status, body), token)
}

/// The password step from a client without a cookie store: the half-logged-in token.
async fn half_token(server: &TestServer, area: &str, username: &str) -> String {
    let body = json!({"username": username, "password": PASSWORD, "area": area});
    let (answer, token) = with_cookie(server, "/api/v1/login", "", Some(body)).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    token.unwrap()
}

/// After a login completed: the half-logged-in token is refused, the renewed one works.
async fn only_the_renewed_token_works(server: &TestServer, planted: &str, renewed: &str) {
    let cookie = |token: &str| format!("twofold_session={token}");
    assert_eq!(
        with_cookie(server, "/api/v1/me", &cookie(planted), None).await.0 .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie(server, "/api/v1/me", &cookie(renewed), None).await.0 .0,
        StatusCode::OK
    );
}

/// ASVS 5.0 §7.2.4: a token someone else holds while the login is half done (copied,
/// leaked, planted) must not become a signed-in session when the owner completes it.
async fn the_session_token_is_renewed_when_the_login_completes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, backup) = enrolled_client(&server, "rita").await;
    let cookie = |token: &str| format!("twofold_session={token}");

    // With a code.
    server.next_step();
    let planted = half_token(&server, "client", "rita").await;
    let code = json!({"code": server.code(&secret, 0)});
    let (done, renewed) = with_cookie(&server, "/api/v1/login/second-factor", &cookie(&planted), Some(code)).await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    let renewed = renewed.expect("a new session cookie");
    assert_ne!(renewed, planted);
    let (stale, _) = with_cookie(&server, "/api/v1/me", &cookie(&planted), None).await;
    assert_eq!(
        (stale.0, error_code(&stale)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert_eq!(
        with_cookie(&server, "/api/v1/me", &cookie(&renewed), None).await.0 .0,
        StatusCode::OK
    );

    // With the backup code.
    let planted = half_token(&server, "client", "rita").await;
    let body = json!({"backup_code": backup});
    let (done, renewed) = with_cookie(&server, "/api/v1/login/backup-code", &cookie(&planted), Some(body)).await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    let renewed = renewed.expect("a new session cookie");
    assert_ne!(renewed, planted);
    only_the_renewed_token_works(&server, &planted, &renewed).await;

    // A forced user's enrolment, which completes the login.
    let mut settings = server.app.two_factor_settings().await.unwrap();
    settings.force_clients = true;
    let document = serde_json::to_string(&settings).unwrap();
    server
        .app
        .store
        .put_setting("two_factor", &document, server.now())
        .await
        .unwrap();
    server.client_account("fred").await;
    let planted = half_token(&server, "client", "fred").await;
    let (setup, _) = with_cookie(
        &server,
        "/api/v1/me/two-factor/totp/enrollment",
        &cookie(&planted),
        Some(json!({})),
    )
    .await;
    assert_eq!(setup.0, StatusCode::OK, "{}", setup.1);
    let code = json!({"code": server.code(setup.1["secret"].as_str().unwrap(), 0)});
    let path = "/api/v1/me/two-factor/totp/enrollment/confirm";
    let (done, renewed) = with_cookie(&server, path, &cookie(&planted), Some(code)).await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    let renewed = renewed.expect("a new session cookie");
    only_the_renewed_token_works(&server, &planted, &renewed).await;
}

/// Two session cookies (one planted from a sibling domain, say) are refused, never resolved
/// by picking one.
async fn a_request_with_two_session_cookies_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("sam").await;
    let (answer, token) = with_cookie(
        &server,
        "/api/v1/login",
        "",
        Some(json!({"username": "sam", "password": PASSWORD, "area": "client"})),
    )
    .await;
    assert_eq!(answer.1["status"], "authenticated");
    let mine = token.unwrap();
    let other = half_token(&server, "client", "sam").await;
    for cookie in [
        format!("twofold_session={other}; twofold_session={mine}"),
        format!("twofold_session={mine}; other=1; twofold_session={other}"),
    ] {
        let (refused, _) = with_cookie(&server, "/api/v1/me", &cookie, None).await;
        assert_eq!(
            (refused.0, error_code(&refused)),
            (StatusCode::BAD_REQUEST, "ambiguous_session")
        );
        let page = reqwest::Client::new()
            .get(format!("{}/account", server.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        assert!(page.text().await.unwrap().contains("two sessions for this site"));
    }
    let alone = format!("twofold_session={mine}");
    assert_eq!(
        with_cookie(&server, "/api/v1/me", &alone, None).await.0 .0,
        StatusCode::OK
    );
}

/// Sudo mode: what lowers security (turning off an administrator's 2FA, creating a full
/// administrator) needs a login of the last ten minutes, and the admin endpoint never turns
/// off one's own 2FA. A session left open, or taken, is not enough.
async fn what_lowers_security_needs_a_recent_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let boss_id = server.full_admin("boss").await;
    let boss = server.client();
    boss.login("admin", "boss").await;
    let ada = server.full_admin("ada").await;
    let ada_client = server.client();
    ada_client.login("admin", "ada").await;
    ada_client.enrol_totp(&server).await;
    let (_, _) = enrolled_client(&server, "cy").await;
    let cy = server.client_id("cy").await;
    let disable = |client: &Client, id: i64| {
        let client = client.clone();
        async move {
            client
                .post_empty(&format!("/api/v1/admin/accounts/{id}/two-factor/disable"))
                .await
        }
    };
    let create = |client: &Client, username: &'static str, role: &'static str| {
        let client = client.clone();
        async move {
            client
                .post(
                    "/api/v1/admin/accounts",
                    json!({"kind": "admin", "role": role, "username": username, "password": PASSWORD}),
                )
                .await
        }
    };

    let own = disable(&boss, boss_id).await;
    assert_eq!((own.0, error_code(&own)), (StatusCode::CONFLICT, "conflict"));

    // Eleven minutes later the session is still open, but no longer enough.
    server.clock.advance(11 * 60);
    let refused = disable(&boss, ada).await;
    assert_eq!(
        (refused.0, error_code(&refused)),
        (StatusCode::FORBIDDEN, "reauthentication_required")
    );
    let refused = create(&boss, "root2", "full").await;
    assert_eq!(error_code(&refused), "reauthentication_required");
    // What does not lower security goes on.
    assert_eq!(create(&boss, "helper", "staff").await.0, StatusCode::CREATED);
    assert_eq!(disable(&boss, cy).await.0, StatusCode::NO_CONTENT);
    let audit = server.app.store.audit_events(Some(boss_id), 100).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.outcome == "reauthentication_required")
            .count(),
        2,
        "each refusal is audited"
    );
    assert_eq!(
        server.app.store.credentials(ada).await.unwrap().len(),
        1,
        "nothing changed"
    );

    // After a new login, it is allowed.
    let fresh = server.client();
    fresh.login("admin", "boss").await;
    assert_eq!(create(&fresh, "root2", "full").await.0, StatusCode::CREATED);
    assert_eq!(disable(&fresh, ada).await.0, StatusCode::NO_CONTENT);
}

/// The audit (and, later, the lockout by source) needs the client's real address: it is read
/// from `X-Forwarded-For` only when the peer is a trusted proxy, and only from the entries
/// the trusted proxies appended.
async fn the_client_address_comes_from_trusted_proxies_only(backend: Backend) {
    async fn seen_as(server: &TestServer, forwarded: &str) -> String {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.base))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "pia", "password": "a wrong password", "area": "client"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let events = server.app.store.audit_events(None, 1).await.unwrap();
        events[0].remote_addr.clone().unwrap_or_default()
    }
    let direct = TestServer::start(backend).await;
    direct.client_account("pia").await;
    assert_eq!(
        seen_as(&direct, "203.0.113.9").await,
        "127.0.0.1",
        "no proxy is trusted: the peer"
    );

    let proxied = TestServer::start_with(backend, |config| {
        config.trusted_proxies = vec!["127.0.0.0/8".into(), "192.0.2.10".into()]
    })
    .await;
    proxied.client_account("pia").await;
    for (forwarded, client) in [
        ("203.0.113.9", "203.0.113.9"),
        // The client wrote the first entry itself: only what the proxies appended counts.
        ("198.51.100.1, 203.0.113.9", "203.0.113.9"),
        // Two trusted hops.
        ("203.0.113.9, 192.0.2.10", "203.0.113.9"),
        ("not an address", "127.0.0.1"),
    ] {
        assert_eq!(seen_as(&proxied, forwarded).await, client, "{forwarded}");
    }
}

async fn secrets_are_sealed_at_rest_and_never_logged_in_the_audit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (secret, backup) = enrolled_client(&server, "tina").await;
    let raw_secret = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
    let needles = [
        secret.as_bytes().to_vec(),
        raw_secret,
        backup.as_bytes().to_vec(),
        backup.replace('-', "").into_bytes(),
    ];
    let contains = |haystack: &[u8]| {
        needles
            .iter()
            .any(|n| haystack.windows(n.len()).any(|w| w == n.as_slice()))
    };
    // What the store holds for the account: a sealed credential and a hash.
    let (_, _, sealed) = server.app.store.any_sealed_credential().await.unwrap().unwrap();
    let account = server
        .app
        .store
        .find_account(twofold::core::policy::AccountKind::Client, "tina")
        .await
        .unwrap()
        .unwrap();
    let (hash, _) = server.app.store.backup_code(account.id).await.unwrap().unwrap();
    assert!(!contains(&sealed) && !contains(&hash), "a secret is stored in clear");
    if backend == Backend::Sqlite {
        // And nowhere in the database files.
        for file in ["twofold.db", "twofold.db-wal"] {
            let bytes = std::fs::read(server.dir.path().join(file)).unwrap_or_default();
            assert!(!contains(&bytes), "a secret is in {file} in clear");
        }
    }
    let audit = server.app.store.audit_events(None, 1000).await.unwrap();
    let text = format!("{audit:?}");
    assert!(!text.contains(&secret) && !text.contains(&backup));
}

async fn a_backup_code_is_not_spent_unless_the_login_completes(backend: Backend) {
    use twofold::core::backup_codes::BackupCode;
    use twofold::store::{Consumption, SessionUpgrade, Settled, Stage};
    let server = TestServer::start(backend).await;
    let (_, backup) = enrolled_client(&server, "vera").await;
    let account = server
        .app
        .store
        .find_account(twofold::core::policy::AccountKind::Client, "vera")
        .await
        .unwrap()
        .unwrap();
    let used = BackupCode::parse(&backup).unwrap().hash(&server.app.backup_code_key);
    // The session to complete has gone (logged out, expired) between the check and the write.
    let gone = SessionUpgrade {
        token_hash: b"a session that no longer exists",
        new_token_hash: b"its renewal",
        from: Stage::SecondFactor,
        expires_at: server.now() + 60,
        verified_at: server.now(),
    };
    let consumption = Consumption::BackupCode {
        used: &used,
        next: &[7; 32],
    };
    let settled = settle_right_answer(&server.app.store, account.id, consumption, gone, server.now()).await;
    assert_eq!(settled, Settled::SessionGone);
    // Nothing was spent: the code still logs in once.
    let client = server.client();
    client.login("client", "vera").await;
    assert_eq!(
        client
            .post("/api/v1/login/backup-code", json!({"backup_code": backup}))
            .await
            .0,
        StatusCode::OK
    );
}

on_both_backends!(
    control_characters_in_names_are_wrong_names_not_errors,
    a_username_cannot_be_another_accounts_email,
    turning_two_factor_off_or_unlocking_ends_the_users_other_sessions,
    the_session_token_is_renewed_when_the_login_completes,
    a_request_with_two_session_cookies_is_refused,
    without_a_public_url_only_local_host_names_are_answered,
    what_lowers_security_needs_a_recent_login,
    the_client_address_comes_from_trusted_proxies_only,
    a_backup_code_is_not_spent_unless_the_login_completes,
    a_password_only_session_can_call_nothing_else,
    the_same_code_raced_twenty_times_succeeds_once,
    one_backup_code_raced_twice_logs_in_once,
    staff_administrators_cannot_change_settings_or_others_two_factor,
    the_api_takes_only_same_origin_json,
    unknown_users_and_wrong_passwords_look_the_same,
    behind_tls_cookies_are_secure_and_only_the_public_origin_may_post,
    secrets_are_sealed_at_rest_and_never_logged_in_the_audit,
);

mod slow_clients {
    //! A slow or stalled client cannot hold the server's connections (issue 15, item 8).
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::support::*;

    fn address(server: &TestServer) -> String {
        server.base.trim_start_matches("http://").to_string()
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the server still holds the connection after 20 s");
        String::from_utf8_lossy(&answer).to_string()
    }

    async fn headers_or_body_sent_too_slowly_end_the_connection(backend: Backend) {
        let server = TestServer::start_with(backend, |config| config.http_read_timeout_secs = 1).await;
        // Headers that never end.
        let mut stalled = TcpStream::connect(address(&server)).await.unwrap();
        stalled
            .write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        until_closed(&mut stalled).await;
        // A body that never comes: the request is refused (408) and the connection ends.
        let mut stalled = TcpStream::connect(address(&server)).await.unwrap();
        let head = "POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user";
        stalled.write_all(head.as_bytes()).await.unwrap();
        let answer = until_closed(&mut stalled).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        // Nothing else was disturbed.
        assert_eq!(
            reqwest::get(format!("{}/healthz", server.base)).await.unwrap().status(),
            200
        );
    }

    async fn connections_beyond_the_limit_wait_for_a_free_one(backend: Backend) {
        let server = TestServer::start_with(backend, |config| {
            config.http_max_connections = 2;
            config.http_read_timeout_secs = 60;
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(address(&server)).await.unwrap();
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            held.push(stream);
        }
        let waiting = tokio::spawn(reqwest::get(format!("{}/healthz", server.base)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiting.is_finished(),
            "a third connection was served beside two held ones"
        );
        drop(held);
        let answer = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(answer.status(), 200, "served once a connection was free");
    }

    on_both_backends!(
        headers_or_body_sent_too_slowly_end_the_connection,
        connections_beyond_the_limit_wait_for_a_free_one,
    );
}
