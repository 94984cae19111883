//! Duo's Universal Prompt end to end over HTTP, on both databases, against the Duo test
//! double's Web SDK endpoints (proven right by Duo's own `duo_universal` in `duo`). The
//! double's authorize endpoint stands for the user at Duo's page: it sends the browser
//! straight back with a code, as the user's script says.

use reqwest::StatusCode;
use serde_json::json;

use crate::duo::duo;
use crate::duo_double::{real_now, DuoDouble, DuoUser};
use crate::duo_login::{duo_peer, signed_in};
use crate::support::{change_settings, error_code, Backend, Client, TestServer, START_TIME};

/// The double's Web SDK application has the same keys as its Auth API one.
use crate::duo_double::{IKEY as CLIENT_ID, SKEY as CLIENT_SECRET};

on_both_backends!(
    the_prompt_enrols_and_logs_in_through_the_browsers_round_trip,
    the_prompts_state_is_this_sessions_once_and_for_five_minutes,
);

/// The double, and a server at its public address using it through the Universal Prompt.
async fn prompt_server(backend: Backend) -> (DuoDouble, TestServer) {
    let (double, server, admin) = duo_peer(backend, true).await;
    let (status, saved) = change_settings(&admin, |settings| {
        settings["services"]["duo"] = duo("universal_prompt", CLIENT_ID, json!(CLIENT_SECRET), &double.host);
        settings["services"]["duo"]["active"] = json!(true);
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    (double, server)
}

/// The browser at Duo's prompt: where Duo sends it back (the callback URL with `state` and
/// `duo_code`).
async fn at_duo(double: &DuoDouble, url: &str) -> String {
    assert!(
        url.starts_with(&format!("https://{}/oauth/v1/authorize?", double.host)),
        "{url}"
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&double.ca_file).unwrap()).unwrap();
    let browser = reqwest::Client::builder()
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    response.headers()["location"].to_str().unwrap().to_string()
}

/// The browser back at Twofold with its cookies, following redirects: the status, the
/// path it ends on, and the page.
async fn back_at(client: &Client, callback: &str) -> (StatusCode, String, String) {
    let response = client.http.get(callback).send().await.unwrap();
    let path = response.url().path().to_string();
    (response.status(), path, response.text().await.unwrap())
}

/// A new client known to Duo as `username` starts enrolling through the prompt; its
/// session, and where Duo sends its browser back.
async fn enrolling(double: &DuoDouble, server: &TestServer, username: &str) -> (Client, String) {
    double.add_user(username, DuoUser::default());
    server.client_account(username).await;
    let client = server.client();
    client.login("client", username).await;
    let (_, started) = client.post("/api/v1/me/two-factor/duo/enrollment", json!({})).await;
    assert_eq!(started["challenge"]["type"], "redirect", "{started}");
    let callback = at_duo(double, started["challenge"]["url"].as_str().unwrap()).await;
    (client, callback)
}

/// A password login that stops at the second step: where the prompt is.
async fn prompt_url(server: &TestServer, username: &str) -> (Client, String) {
    let client = server.client();
    let (_, login) = client.login("client", username).await;
    assert_eq!(login["status"], "second_factor_required", "{login}");
    let challenge = &login["services"][0]["challenge"];
    assert_eq!(challenge["type"], "redirect", "{login}");
    (client, challenge["url"].as_str().unwrap().to_string())
}

/// Enrolment is one round trip through the prompt; a login is another, completed by the
/// callback in the browser or, for an API client, by sending the callback's parameters.
async fn the_prompt_enrols_and_logs_in_through_the_browsers_round_trip(backend: Backend) {
    let (double, server) = prompt_server(backend).await;
    let (client, callback) = enrolling(&double, &server, "uma").await;
    assert!(
        callback.starts_with(&format!("{}/login/duo/callback?state=", server.base)),
        "{callback}"
    );
    let (status, _, page) = back_at(&client, &callback).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Duo Security will ask you every time you log in"),
        "{page}"
    );
    client.post_empty("/api/v1/logout").await;

    // A login in the browser: back from Duo, the session is signed in.
    let (client, url) = prompt_url(&server, "uma").await;
    let (status, path, _) = back_at(&client, &at_duo(&double, &url).await).await;
    assert_eq!((status, path.as_str()), (StatusCode::OK, "/account"));
    assert!(signed_in(&client).await);

    // An API client sends what the browser came back with.
    let (client, url) = prompt_url(&server, "uma").await;
    let callback = url::Url::parse(&at_duo(&double, &url).await).unwrap();
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).unwrap().1.to_string();
    let (status, done) = client
        .post(
            "/api/v1/login/second-factor",
            json!({"service": "duo", "type": "callback", "state": param("state"), "code": param("duo_code")}),
        )
        .await;
    assert_eq!(
        (status, &done["status"]),
        (StatusCode::OK, &json!("authenticated")),
        "{done}"
    );

    // Duo denies: "incorrect", and the session stays at the second step.
    double.add_user(
        "uma",
        DuoUser {
            outcome: "deny",
            ..DuoUser::default()
        },
    );
    let (client, url) = prompt_url(&server, "uma").await;
    let (status, _, page) = back_at(&client, &at_duo(&double, &url).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("The second factor you supplied was incorrect."), "{page}");
    assert!(!signed_in(&client).await);
    let tokens = double.seen().iter().filter(|s| s.path == "/oauth/v1/token").count();
    assert_eq!(tokens, 4, "every callback's code was exchanged once");
}

/// The state Duo brings back must be the one kept for this very session: another
/// session's, an earlier login's, or one older than five minutes completes nothing, and
/// its code is never exchanged.
async fn the_prompts_state_is_this_sessions_once_and_for_five_minutes(backend: Backend) {
    let (double, server) = prompt_server(backend).await;
    let (client, callback) = enrolling(&double, &server, "uma").await;
    back_at(&client, &callback).await;
    client.post_empty("/api/v1/logout").await;
    let exchanged = || double.seen().iter().filter(|s| s.path == "/oauth/v1/token").count();

    let (first, first_url) = prompt_url(&server, "uma").await;
    let (other, _) = prompt_url(&server, "uma").await;
    let first_callback = at_duo(&double, &first_url).await;
    let before = exchanged();
    let (status, _, page) = back_at(&other, &first_callback).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("not for this login"), "{page}");
    assert!(!signed_in(&other).await);
    assert_eq!(exchanged(), before, "refused before the code was exchanged");
    // Its own session still completes with it.
    back_at(&first, &first_callback).await;
    assert!(signed_in(&first).await);

    // An earlier login's callback, replayed into a new login of the same browser.
    first.post_empty("/api/v1/logout").await;
    first.login("client", "uma").await;
    let (status, _, _) = back_at(&first, &first_callback).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!signed_in(&first).await);

    // Five minutes on, the prompt's state is no longer good.
    let (late, url) = prompt_url(&server, "uma").await;
    let callback = at_duo(&double, &url).await;
    server.clock.advance(301);
    double.set_skew(START_TIME + 301 - real_now());
    let answer = late
        .post(
            "/api/v1/login/second-factor",
            json!({"service": "duo", "type": "callback",
                   "state": url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1,
                   "code": "x"}),
        )
        .await;
    assert_eq!(error_code(&answer), "conflict", "{answer:?}");
    assert!(!signed_in(&late).await);
}
