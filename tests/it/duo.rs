//! Twofold's HTTPS client of Duo's Auth API against the Duo test double (`duo_double`),
//! and the double proven right by Duo's own client, duo_client.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use twofold::core::duo_api::{diagnosis, ActivationStatus, AuthResult, Capability, DuoFailure, Preauth};
use twofold::outbound::duo::{AuthFactor, AuthStarted, DuoApi, Integration};

use crate::duo_client::run_python;
use crate::duo_double::{real_now, DuoDouble, DuoUser, Failure, IKEY, SKEY};

/// Twofold's client of Duo, trusting the double's certificate authority.
fn client_of(double: &DuoDouble) -> DuoApi {
    DuoApi::new(Some(&double.ca_file), Duration::from_secs(5)).unwrap()
}

/// The double's Auth API application, as Twofold is configured with it.
fn integration_of<'a>(double: &'a DuoDouble, secret_key: &'a SecretString) -> Integration<'a> {
    Integration {
        api_hostname: &double.host,
        integration_key: IKEY,
        secret_key,
    }
}

fn duo_client_check(double: &DuoDouble, skey: &str) -> serde_json::Value {
    run_python(
        "duo_check.py",
        &json!({"host": "127.0.0.1", "port": double.port, "ikey": IKEY, "skey": skey,
                "ca_file": double.ca_file}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_client_is_accepted_by_the_double_and_a_wrong_key_is_refused() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let accepted = duo_client_check(&double, SKEY);
    assert!(
        (accepted["time"].as_i64().unwrap() - real_now()).abs() < 60,
        "{accepted}"
    );
    assert_eq!(double.seen().last().unwrap().signature_version, Some(5));

    let refused = duo_client_check(&double, &SKEY.replace('Z', "Y"));
    assert!(
        refused["error"].as_str().unwrap().contains("Invalid signature"),
        "{refused}"
    );
    double.set_skew(600);
    let stale = duo_client_check(&double, SKEY);
    assert!(
        stale["error"].as_str().unwrap().contains("Bad request timestamp"),
        "{stale}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twofold_checks_an_integration_and_names_what_duo_refused() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let api = client_of(&double);
    let skey = SecretString::from(SKEY);
    let integration = integration_of(&double, &skey);
    let time = api.check(&integration, real_now()).await.unwrap();
    assert!((time - real_now()).abs() < 60);
    let seen = double.seen().pop().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str(), seen.signature_version),
        ("GET", "/auth/v2/check", Some(5)),
        "signed as version 5"
    );

    let refusal = |result: Result<i64, DuoFailure>| {
        let failure = result.unwrap_err();
        let code = match &failure {
            DuoFailure::Refused { code, .. } => *code,
            other => panic!("not a refusal: {other:?}"),
        };
        (code, diagnosis(&failure).unwrap())
    };
    let wrong_secret = SecretString::from(SKEY.replace('Z', "Y"));
    let wrong = Integration {
        secret_key: &wrong_secret,
        ..integration
    };
    let (code, said) = refusal(api.check(&wrong, real_now()).await);
    assert_eq!(code, 40103);
    assert!(said.contains("secret key"), "{said}");
    let unknown = Integration {
        integration_key: "DIXXXXXXXXXXXXXXXXXX",
        ..integration
    };
    let (code, said) = refusal(api.check(&unknown, real_now()).await);
    assert_eq!(code, 40102);
    assert!(said.contains("integration key"), "{said}");

    // Duo's clock ten minutes ahead: the signature is refused for its date, and ping shows
    // the offset an administrator must fix.
    double.set_skew(600);
    let (code, said) = refusal(api.check(&integration, real_now()).await);
    assert_eq!(code, 40105);
    assert!(said.contains("NTP"), "{said}");
    let duo_time = api.ping(&double.host).await.unwrap();
    assert!((duo_time - real_now() - 600).abs() < 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_untrusted_duo_is_never_an_answer() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let skey = SecretString::from(SKEY);
    let integration = integration_of(&double, &skey);
    // Without the double's certificate authority, its certificate is not trusted.
    let untrusting = DuoApi::new(None, Duration::from_secs(5)).unwrap();
    let failure = untrusting.check(&integration, real_now()).await.unwrap_err();
    assert!(
        matches!(&failure, DuoFailure::Unreachable(why) if why.contains("certificate")),
        "{failure:?}"
    );
    // Nobody listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = client_of(&double);
    let nobody = Integration {
        api_hostname: &format!("127.0.0.1:{closed}"),
        ..integration
    };
    assert!(matches!(
        api.check(&nobody, real_now()).await,
        Err(DuoFailure::Unreachable(_))
    ));
    // A Duo that accepts the connection and never answers: the call ends when its time is up.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_host = hung.local_addr().unwrap().to_string();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            held.push(stream);
        }
    });
    let quick = DuoApi::new(Some(&double.ca_file), Duration::from_secs(1)).unwrap();
    let hanging = Integration {
        api_hostname: &hung_host,
        ..integration
    };
    let failure = quick.check(&hanging, real_now()).await.unwrap_err();
    assert!(
        matches!(&failure, DuoFailure::Unreachable(why) if why.contains("in time")),
        "{failure:?}"
    );
    // A CA file that holds no certificate is refused at start, by name.
    let empty = double.ca_file.with_file_name("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let error = DuoApi::new(Some(&empty), Duration::from_secs(1)).err().unwrap();
    assert!(error.contains("empty.pem"), "{error}");
}

/// The same walk through the Auth API as `tests/python/duo_auth.py`, with Twofold's client,
/// in the same shape.
async fn twofold_walk(api: &DuoApi, integration: &Integration<'_>, user: &str, new_user: &str) -> serde_json::Value {
    let now = real_now;
    let result_name = |result: &AuthResult| match result {
        AuthResult::Allow => "allow".to_string(),
        AuthResult::Deny { .. } => "deny".to_string(),
        AuthResult::Waiting { .. } => "waiting".to_string(),
    };
    let status_name = |result: &AuthResult| match result {
        AuthResult::Allow => "allow".to_string(),
        AuthResult::Deny { status, .. } | AuthResult::Waiting { status, .. } => status.clone(),
    };
    let Preauth::Auth { devices } = api.preauth(integration, user, Some("192.0.2.7"), now()).await.unwrap() else {
        panic!("{user} is enrolled at Duo")
    };
    let devices: Vec<_> = devices
        .iter()
        .map(|d| {
            let mut capabilities: Vec<&str> = d
                .capabilities
                .iter()
                .map(|c| match c {
                    Capability::Push => "push",
                    Capability::Phone => "phone",
                    Capability::Sms => "sms",
                    Capability::MobileOtp => "mobile_otp",
                })
                .collect();
            capabilities.sort();
            json!({"id": d.id, "capabilities": capabilities})
        })
        .collect();
    let unknown = match api.preauth(integration, new_user, None, now()).await.unwrap() {
        Preauth::Enroll { .. } => "enroll",
        other => panic!("{other:?}"),
    };
    let push = AuthFactor::Push { device: "auto" };
    let AuthStarted::Transaction(txid) = api.auth(integration, user, &push, None, now()).await.unwrap() else {
        panic!("a push is asynchronous")
    };
    let mut polled = Vec::new();
    loop {
        let status = api.auth_status(integration, &txid, now()).await.unwrap();
        polled.push(status_name(&status));
        if !matches!(status, AuthResult::Waiting { .. }) {
            break;
        }
    }
    let at_once = |factor: AuthFactor<'static>| async move {
        match api.auth(integration, user, &factor, None, now()).await.unwrap() {
            AuthStarted::Done(result) => result,
            other => panic!("{other:?}"),
        }
    };
    let right = result_name(&at_once(AuthFactor::Passcode("123456")).await);
    let wrong = result_name(&at_once(AuthFactor::Passcode("000000")).await);
    let sms = status_name(&at_once(AuthFactor::Sms { device: "auto" }).await);
    let activation = api.enroll(integration, new_user, 600, now()).await.unwrap();
    let mut statuses = Vec::new();
    loop {
        let status = api
            .enroll_status(integration, &activation.user_id, &activation.activation_code, now())
            .await
            .unwrap();
        statuses.push(match status {
            ActivationStatus::Success => "success",
            ActivationStatus::Waiting => "waiting",
            ActivationStatus::Invalid => "invalid",
        });
        if status != ActivationStatus::Waiting {
            break;
        }
    }
    let after = match api.preauth(integration, new_user, None, now()).await.unwrap() {
        Preauth::Auth { .. } => "auth",
        other => panic!("{other:?}"),
    };
    json!({"preauth": "auth", "devices": devices, "unknown": unknown, "push": polled,
           "passcode_right": right, "passcode_wrong": wrong, "sms": sms,
           "activation": statuses, "after_activation": after})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twofold_walks_the_auth_api_as_duo_client_does() {
    let skey = SecretString::from(SKEY);
    let mut walks = Vec::new();
    for by_duo_client in [true, false] {
        // A fresh double for each client, with the same script.
        let double = DuoDouble::start(IKEY, SKEY).await;
        double.add_user("kim", DuoUser::default());
        let walk = if by_duo_client {
            run_python(
                "duo_auth.py",
                &json!({"host": "127.0.0.1", "port": double.port, "ikey": IKEY, "skey": SKEY,
                        "ca_file": double.ca_file, "username": "kim", "new_username": "newbie"}),
            )
        } else {
            let api = client_of(&double);
            let integration = integration_of(&double, &skey);
            twofold_walk(&api, &integration, "kim", "newbie").await
        };
        assert!(
            double.seen().iter().all(|seen| seen.signature_version == Some(5)),
            "every call signed with version 5: {:?}",
            double.seen()
        );
        walks.push(walk);
    }
    assert_eq!(walks[0], walks[1], "duo_client and Twofold see the same Duo");
    assert_eq!(walks[1]["push"], json!(["pushed", "pushed", "allow"]));
    assert_eq!(walks[1]["activation"], json!(["waiting", "success"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_an_outage_and_garbage_are_told_apart() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    let api = client_of(&double);
    let skey = SecretString::from(SKEY);
    let integration = integration_of(&double, &skey);
    let check_with = |failure: Failure| {
        double.fail_next(failure);
        api.check(&integration, real_now())
    };
    let limited = check_with(Failure {
        status: 429,
        retry_after: Some("7"),
        body: "",
    })
    .await;
    assert_eq!(
        limited,
        Err(DuoFailure::RateLimited {
            retry_after_secs: Some(7)
        })
    );
    let down = check_with(Failure {
        status: 503,
        retry_after: None,
        body: "<html>Service Unavailable</html>",
    })
    .await;
    assert_eq!(down, Err(DuoFailure::Unavailable { status: 503 }));
    let garbage = check_with(Failure {
        status: 200,
        retry_after: None,
        body: "{\"stat\": \"OK\"",
    })
    .await;
    assert!(matches!(garbage, Err(DuoFailure::Garbled(_))), "{garbage:?}");
    // And the next call is answered again.
    assert!(api.check(&integration, real_now()).await.is_ok());
}

fn duo_universal_walk(double: &DuoDouble, secret: &str, username: &str) -> serde_json::Value {
    run_python(
        "duo_prompt.py",
        &json!({"host": double.host, "client_id": IKEY, "client_secret": secret,
                "ca_file": double.ca_file, "username": username}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_universal_completes_its_flow_against_the_double() {
    let double = DuoDouble::start(IKEY, SKEY).await;
    double.add_user("kim", DuoUser::default());
    let walk = duo_universal_walk(&double, SKEY, "kim");
    assert_eq!(
        walk,
        json!({"health": "OK", "state_came_back": true, "preferred_username": "kim", "auth_result": "allow"})
    );
    let wrong = duo_universal_walk(&double, &SKEY.replace('Z', "Y"), "kim");
    assert!(wrong["error"].as_str().unwrap().contains("invalid_client"), "{wrong}");
    // With Duo's clock two minutes ahead, duo_universal refuses the id_token (issued in
    // its future), as the protocol reference observed of the real client.
    double.set_skew(120);
    let ahead = duo_universal_walk(&double, SKEY, "kim");
    assert!(ahead.get("error").is_some(), "{ahead}");
    assert_eq!(ahead["health"], "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twofold_completes_the_universal_prompt_and_checks_what_comes_back() {
    use twofold::core::duo_oidc::OidcError;
    use twofold::outbound::duo::WebSdk;
    let double = DuoDouble::start(IKEY, SKEY).await;
    double.add_user("kim", DuoUser::default());
    double.add_user(
        "lou",
        DuoUser {
            outcome: "deny",
            ..DuoUser::default()
        },
    );
    let api = client_of(&double);
    let secret = SecretString::from(SKEY);
    let app = WebSdk {
        api_hostname: &double.host,
        client_id: IKEY,
        client_secret: &secret,
    };
    let oidc = twofold::core::duo_oidc::Client {
        client_id: IKEY,
        client_secret: SKEY,
        api_host: &double.host,
    };
    let timestamp = api.health_check(&app, real_now()).await.unwrap();
    assert!((timestamp - real_now()).abs() < 60);

    // The browser's round trip through Duo's prompt: the double answers the redirect back.
    let browser = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&double.ca_file).unwrap()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect_uri = "https://twofold.example/login/duo/callback";
    let prompt = |username: &'static str| {
        let (browser, oidc) = (&browser, &oidc);
        async move {
            let (state, nonce) = ("s".repeat(36), "n".repeat(36));
            let url = oidc
                .authorize_url(username, &state, &nonce, redirect_uri, real_now())
                .unwrap();
            let back = browser.get(url).send().await.unwrap();
            let location = back.headers()["location"].to_str().unwrap().to_string();
            let query: std::collections::HashMap<String, String> =
                url::Url::parse(&location).unwrap().query_pairs().into_owned().collect();
            assert_eq!(query["state"], state, "the state comes back");
            (query["duo_code"].clone(), nonce)
        }
    };
    let (code, nonce) = prompt("kim").await;
    let id_token = api.exchange_code(&app, &code, redirect_uri, real_now()).await.unwrap();
    let checked = oidc.check_id_token(&id_token, "kim", &nonce, real_now()).unwrap();
    assert_eq!(checked.preferred_username, "kim");
    // A code is exchanged once.
    let replayed = api.exchange_code(&app, &code, redirect_uri, real_now()).await;
    assert!(
        matches!(&replayed, Err(DuoFailure::Refused { message, .. }) if message == "invalid_grant"),
        "{replayed:?}"
    );
    // Another user's token, a wrong nonce, a denial: none of them logs "kim" in.
    assert_eq!(
        oidc.check_id_token(&id_token, "kimberly", &nonce, real_now()),
        Err(OidcError::Username)
    );
    let (code, _) = prompt("kim").await;
    let id_token = api.exchange_code(&app, &code, redirect_uri, real_now()).await.unwrap();
    assert_eq!(
        oidc.check_id_token(&id_token, "kim", &"x".repeat(36), real_now()),
        Err(OidcError::Nonce)
    );
    let (code, nonce) = prompt("lou").await;
    let id_token = api.exchange_code(&app, &code, redirect_uri, real_now()).await.unwrap();
    assert_eq!(
        oidc.check_id_token(&id_token, "lou", &nonce, real_now()),
        Err(OidcError::NotAllowed("deny".into()))
    );
    // A wrong secret: the health check says so, before any user is sent to Duo.
    let wrong_secret = SecretString::from(SKEY.replace('Z', "Y"));
    let wrong = WebSdk {
        client_secret: &wrong_secret,
        ..app
    };
    let refused = api.health_check(&wrong, real_now()).await;
    assert!(
        matches!(&refused, Err(DuoFailure::Refused { code: 40002, message, .. }) if message == "invalid_client"),
        "{refused:?}"
    );
}

// ---- System Settings > Duo Security over HTTP, on both databases ------------------------

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{error_code, Backend, Client, START_TIME};

on_both_backends!(saving_duo_settings_checks_the_integration_with_duo);

/// The settings document with Duo's part replaced.
async fn with_duo(admin: &Client, duo: Value) -> Value {
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["services"]["duo"] = duo;
    settings
}

/// Duo's part of the settings document (inactive, enabled for both kinds of account).
pub(crate) fn duo(mode: &str, ikey: &str, skey: Value, host: &str) -> Value {
    json!({"active": false, "clients": true, "admins": true,
           "settings": {"mode": mode, "integration_key": ikey, "secret_key": skey,
                        "api_hostname": host, "username": "username", "failmode": "closed"}})
}

/// Saving checks the integration with Duo (the double): each part Duo rejects is named, and
/// nothing is saved; a server whose clock is off from Duo's is told so on every admin page;
/// a good integration is saved with its Secret Key write-only.
async fn saving_duo_settings_checks_the_integration_with_duo(backend: Backend) {
    let (double, server, admin) = crate::duo_login::duo_peer(backend, false).await;
    let save = |settings: Value| {
        let admin = &admin;
        async move { admin.put("/api/v1/admin/two-factor/settings", settings).await }
    };
    let message = |answer: &crate::support::Answer| answer.1["error"]["message"].as_str().unwrap_or("").to_string();

    let unknown = save(
        with_duo(
            &admin,
            duo("auth_api", "DIXXXXXXXXXXXXXXXXXX", json!(SKEY), &double.host),
        )
        .await,
    )
    .await;
    assert_eq!(
        (unknown.0, error_code(&unknown)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
    );
    assert!(
        message(&unknown).contains("Invalid Integration: Duo does not know the integration key."),
        "{unknown:?}"
    );
    let wrong_secret = "Xh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
    let refused = save(with_duo(&admin, duo("auth_api", IKEY, json!(wrong_secret), &double.host)).await).await;
    assert!(
        message(&refused).contains("check the secret key and the API hostname"),
        "{refused:?}"
    );
    let bad_host = save(with_duo(&admin, duo("auth_api", IKEY, json!(SKEY), "https://api.example.com/")).await).await;
    assert!(message(&bad_host).contains("duo.api_hostname"), "{bad_host:?}");
    let (_, settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    assert_eq!(
        settings["services"]["duo"]["settings"]["integration_key"], "",
        "nothing was saved"
    );
    assert!(server.app.store.setting_secrets_set().await.unwrap().is_empty());

    let good = save(with_duo(&admin, duo("auth_api", IKEY, json!(SKEY), &double.host)).await).await;
    assert_eq!(good.0, StatusCode::OK, "{good:?}");
    let (_, settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    assert_eq!(
        settings["services"]["duo"]["settings"]["secret_key"],
        json!({"set": true})
    );
    assert!(!settings.to_string().contains(SKEY));
    let (_, page) = admin.get("/admin").await;
    assert!(!page.as_str().unwrap().contains("clock-warning"));
    // The same application as a Web SDK one: the Universal Prompt's health check.
    let prompt = save(
        with_duo(
            &admin,
            duo("universal_prompt", IKEY, json!({"set": true}), &double.host),
        )
        .await,
    )
    .await;
    assert_eq!(prompt.0, StatusCode::OK, "{prompt:?}");

    // Duo's clock two minutes ahead: Duo still accepts it, but every admin page says so.
    let banner_says = |offset: &'static str| {
        let admin = &admin;
        async move {
            for path in ["/admin", "/admin/clients"] {
                let (_, page) = admin.get(path).await;
                let page = page.as_str().unwrap().replace("&#39;", "'");
                assert!(page.contains(&format!("off from Duo's by {offset}")), "{path}: {page}");
                assert!(page.contains("synchronise this server with NTP"), "{path}");
            }
        }
    };
    double.set_skew(START_TIME - real_now() + 120);
    let ahead = save(with_duo(&admin, duo("auth_api", IKEY, json!(SKEY), &double.host)).await).await;
    assert_eq!(ahead.0, StatusCode::OK, "{ahead:?}");
    banner_says("12").await;
    // Ten minutes: Duo refuses the request's time; the page says why, and the banner stays.
    double.set_skew(START_TIME - real_now() + 600);
    let late = save(with_duo(&admin, duo("auth_api", IKEY, json!(SKEY), &double.host)).await).await;
    assert_eq!(late.0, StatusCode::UNPROCESSABLE_ENTITY, "{late:?}");
    assert!(
        message(&late).contains("this server's clock is off from Duo's"),
        "{late:?}"
    );
    banner_says("60").await;

    // Active: the Auth API at once; the Universal Prompt only with a public_url to send
    // the browser back to (this server has none).
    double.set_skew(START_TIME - real_now());
    let mut active = duo("auth_api", IKEY, json!({"set": true}), &double.host);
    active["active"] = json!(true);
    let saved = save(with_duo(&admin, active.clone()).await).await;
    assert_eq!(saved.0, StatusCode::OK, "{saved:?}");
    active["settings"]["mode"] = json!("universal_prompt");
    let refused = save(with_duo(&admin, active).await).await;
    assert!(message(&refused).contains("set public_url"), "{refused:?}");
}
