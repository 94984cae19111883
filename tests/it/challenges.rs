//! `challenge` and its transactions, over HTTP on both databases, against the Duo test
//! double (`duo_double`, proven right by Duo's own client in `duo`): an application pushes
//! through Duo and polls until the user answers; each transaction ends once, is only its
//! application's, expires, and is counted against the login page's lockout.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::applications::{audit, registered};
use crate::duo::duo;
use crate::duo_double::{DuoUser, Failure, IKEY, SKEY};
use crate::duo_login::{duo_peer, duo_server, enrolled};
use crate::support::{change_settings, enrolled_client, error_code, Answer, Backend, TestServer};

on_both_backends!(
    an_application_pushes_through_duo_and_polls_until_the_user_approves,
    denied_timed_out_and_expired_transactions_end_once,
    racing_polls_accept_a_transaction_once,
    challenges_are_scoped_counted_and_refused_as_check_is,
);

/// An application of client accounts that may check codes and start challenges; its key.
async fn pusher(server: &TestServer, name: &str) -> String {
    let body = json!({"name": name, "kinds": "client", "scopes": ["check", "challenge"]});
    registered(server, body).await.2
}

async fn challenge(server: &TestServer, key: &str, user: &str) -> Answer {
    challenge_with(server, key, json!({"user": user, "kind": "client", "method": "duo"})).await
}

async fn challenge_with(server: &TestServer, key: &str, body: Value) -> Answer {
    let client = server.client();
    let request = client
        .http
        .post(format!("{}/api/v1/validate/challenge", server.base))
        .bearer_auth(key)
        .json(&body);
    client.send(request).await
}

async fn poll(server: &TestServer, key: &str, id: &str) -> Answer {
    let client = server.client();
    let request = client
        .http
        .get(format!("{}/api/v1/validate/transactions/{id}", server.base))
        .bearer_auth(key);
    client.send(request).await
}

/// The transaction id of a `pending` answer.
fn transaction_of(answer: &Answer) -> String {
    assert_eq!(
        (answer.0, answer.1["result"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{answer:?}"
    );
    answer.1["transaction_id"].as_str().unwrap().to_string()
}

/// Every audit event's details, a line each.
async fn details(server: &TestServer) -> String {
    let events = server.app.store.audit_events(None, 200).await.unwrap();
    events
        .iter()
        .filter_map(|e| e.detail.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls (at most ten times) until the transaction is no longer pending.
async fn until_decided(server: &TestServer, key: &str, id: &str) -> Answer {
    for _ in 0..10 {
        let answer = poll(server, key, id).await;
        if answer.1["result"] != "pending" {
            return answer;
        }
    }
    panic!("still pending after ten polls");
}

/// A push reaches the user's phone; the application polls `pending` until the user
/// approves, then `accept` once; the transaction is then gone, it was never another
/// application's to poll, and neither Duo's transaction id nor ours is in the audit.
async fn an_application_pushes_through_duo_and_polls_until_the_user_approves(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    let key = pusher(&server, "Shop").await;
    let other = pusher(&server, "Other shop").await;

    let user_at = json!({"user": "alice", "kind": "client", "method": "duo", "client_ip": "198.51.100.7"});
    let started = challenge_with(&server, &key, user_at).await;
    let id = transaction_of(&started);
    assert!(
        started.1["prompt"].as_str().unwrap().contains("iOS (XXX-XXX-0100)"),
        "{started:?}"
    );
    assert_eq!(
        started.1["expires_at"].as_i64(),
        Some(server.now() + 600),
        "{started:?}"
    );
    let txids = double.txids();
    assert_eq!(txids.len(), 2, "the enrolment's push and this one");
    assert!(txids.iter().all(|txid| !started.1.to_string().contains(txid.as_str())));

    // Duo's user has not answered yet (the double waits two polls).
    let (status, first) = poll(&server, &key, &id).await;
    assert_eq!(
        (status, &first["result"]),
        (StatusCode::OK, &json!("pending")),
        "{first}"
    );
    // Another application cannot see it, nor can a caller without a key.
    let theirs = poll(&server, &other, &id).await;
    assert_eq!(
        (theirs.0, error_code(&theirs)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{theirs:?}"
    );
    let anonymous = server
        .client()
        .get(&format!("/api/v1/validate/transactions/{id}"))
        .await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED, "{anonymous:?}");

    let (status, accepted) = until_decided(&server, &key, &id).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(
        accepted,
        json!({"result": "accept", "method": "duo", "backup_codes_left": 1})
    );
    // Said once: the transaction has ended.
    let again = poll(&server, &key, &id).await;
    assert_eq!(again.0, StatusCode::NOT_FOUND, "{again:?}");

    // The poll's audit (and the lockout counter its success clears) is the user's address.
    let events = server.app.store.audit_events(None, 200).await.unwrap();
    let polled: Vec<_> = events
        .iter()
        .filter(|e| ["validate_duo", "validate_transaction"].contains(&e.event.as_str()))
        .collect();
    assert_eq!(polled.len(), 2, "{events:?}");
    assert!(
        polled.iter().all(|e| e.remote_addr.as_deref() == Some("198.51.100.7")),
        "{polled:?}"
    );
    let audit = audit(&server).await;
    assert!(audit.contains("Shop") && audit.contains("accept"), "{audit}");
    assert!(!audit.contains(&id), "the transaction id is in the audit");
    for txid in double.txids() {
        assert!(!audit.contains(&txid), "Duo's transaction id is in the audit");
    }
    // `preauth` names Duo among the user's methods.
    let client = server.client();
    let request = client
        .http
        .post(format!("{}/api/v1/validate/preauth", server.base))
        .bearer_auth(&key)
        .json(&json!({"user": "alice", "kind": "client"}));
    let (_, preauth) = client.send(request).await;
    assert_eq!(preauth["methods"], json!(["duo", "backup_code"]), "{preauth}");
}

/// A push the user denies is `reject`, one nobody answers is `expired` (Duo's timeout, or
/// Twofold's own when the application stops polling): each said once, then gone; an
/// abandoned transaction is purged.
async fn denied_timed_out_and_expired_transactions_end_once(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    for name in ["dora", "tim", "slow"] {
        enrolled(&double, &server, name, DuoUser::default()).await;
    }
    let key = pusher(&server, "Shop").await;
    let script = |outcome, waits| DuoUser {
        outcome,
        waits,
        ..DuoUser::default()
    };
    double.add_user("dora", script("deny", 1));
    double.add_user("tim", script("timeout", 0));
    double.add_user("slow", script("allow", 1000));

    let dora = transaction_of(&challenge(&server, &key, "dora").await);
    assert_eq!(until_decided(&server, &key, &dora).await.1, json!({"result": "reject"}));
    assert_eq!(poll(&server, &key, &dora).await.0, StatusCode::NOT_FOUND);
    // Each challenge counts once against the lockout (a denial is not counted again): four
    // more denied pushes fill dora's five attempts from this address; the sixth is refused.
    for _ in 0..4 {
        let id = transaction_of(&challenge(&server, &key, "dora").await);
        assert_eq!(until_decided(&server, &key, &id).await.1, json!({"result": "reject"}));
    }
    let (status, locked) = challenge(&server, &key, "dora").await;
    assert_eq!(
        (status, &locked["result"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("locked")),
        "{locked}"
    );

    let tim = transaction_of(&challenge(&server, &key, "tim").await);
    assert_eq!(poll(&server, &key, &tim).await.1, json!({"result": "expired"}));
    assert_eq!(poll(&server, &key, &tim).await.0, StatusCode::NOT_FOUND);

    // The application stops polling; ten minutes later the transaction has expired.
    let slow = transaction_of(&challenge(&server, &key, "slow").await);
    let abandoned = transaction_of(&challenge(&server, &key, "slow").await);
    assert_eq!(poll(&server, &key, &slow).await.1["result"], "pending");
    server.clock.advance(600);
    assert_eq!(poll(&server, &key, &slow).await.1, json!({"result": "expired"}));
    assert_eq!(poll(&server, &key, &slow).await.0, StatusCode::NOT_FOUND);
    let purged = server.app.purge_expired().await.unwrap();
    assert_eq!(purged[6], 1, "the abandoned transaction is purged: {purged:?}");
    assert_eq!(poll(&server, &key, &abandoned).await.0, StatusCode::NOT_FOUND);

    let details = details(&server).await;
    for said in ["\"dora\": reject", "\"tim\": expired", "\"slow\": expired"] {
        assert!(details.contains(said), "{said}: {details}");
    }
}

/// Ten polls of an approved push at once: one `accept`, every other one `404`.
async fn racing_polls_accept_a_transaction_once(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    double.add_user(
        "alice",
        DuoUser {
            waits: 0,
            ..DuoUser::default()
        },
    );
    let key = pusher(&server, "Shop").await;
    let id = transaction_of(&challenge(&server, &key, "alice").await);
    let url = format!("{}/api/v1/validate/transactions/{id}", server.base);
    let polls: Vec<_> = (0..10)
        .map(|_| {
            let (client, url, key) = (server.client(), url.clone(), key.clone());
            tokio::spawn(async move { client.send(client.http.get(url).bearer_auth(key)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for poll in polls {
        answers.push(poll.await.unwrap());
    }
    let accepted = answers.iter().filter(|a| a.1["result"] == "accept").count();
    let gone = answers.iter().filter(|a| a.0 == StatusCode::NOT_FOUND).count();
    assert_eq!((accepted, gone), (1, 9), "{answers:?}");
}

/// Scopes and kinds as for `check`; only Duo needs a challenge; unknown users, users
/// without Duo and users Duo refuses are `reject`; Duo's outage is the application's `503`
/// and locks nobody out; each challenge counts against the login page's lockout (a locked
/// account is `429` without Duo being asked); Duo's bypass is `accept` at once; the
/// Universal Prompt, which needs a browser, is refused.
async fn challenges_are_scoped_counted_and_refused_as_check_is(backend: Backend) {
    let (double, server, admin) = duo_peer(backend, true).await;
    let (status, saved) = change_settings(&admin, |settings| {
        settings["services"]["duo"] = duo("auth_api", IKEY, json!(SKEY), &double.host);
        settings["services"]["duo"]["active"] = json!(true);
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    enrolled(&double, &server, "barred", DuoUser::default()).await;
    enrolled(&double, &server, "vip", DuoUser::default()).await;
    double.add_user(
        "barred",
        DuoUser {
            preauth: "deny",
            ..DuoUser::default()
        },
    );
    double.add_user(
        "vip",
        DuoUser {
            preauth: "allow",
            ..DuoUser::default()
        },
    );
    enrolled_client(&server, "tess").await;
    let key = pusher(&server, "Shop").await;

    let (_, _, checker) = registered(
        &server,
        json!({"name": "Checker", "kinds": "client", "scopes": ["check"]}),
    )
    .await;
    assert_eq!(challenge(&server, &checker, "alice").await.0, StatusCode::FORBIDDEN);
    let (_, _, admins) = registered(
        &server,
        json!({"name": "Staff", "kinds": "admin", "scopes": ["challenge"]}),
    )
    .await;
    assert_eq!(challenge(&server, &admins, "alice").await.0, StatusCode::FORBIDDEN);
    let totp = challenge_with(
        &server,
        &key,
        json!({"user": "tess", "kind": "client", "method": "totp"}),
    )
    .await;
    assert_eq!(totp.0, StatusCode::UNPROCESSABLE_ENTITY, "{totp:?}");
    let unknown_field = challenge_with(
        &server,
        &key,
        json!({"user": "alice", "kind": "client", "method": "duo", "txid": "x"}),
    )
    .await;
    assert_eq!(unknown_field.0, StatusCode::BAD_REQUEST, "{unknown_field:?}");

    for user in ["nobody", "tess", "barred"] {
        let answer = challenge(&server, &key, user).await;
        assert_eq!(answer, (StatusCode::OK, json!({"result": "reject"})), "{user}");
    }
    let bypass = challenge(&server, &key, "vip").await;
    assert_eq!(
        bypass.1,
        json!({"result": "accept", "method": "duo", "backup_codes_left": 1})
    );
    assert!(audit(&server).await.contains("Duo bypass"));

    // Duo down: the application is told, and the attempt is taken back.
    let outage = Failure {
        status: 503,
        retry_after: None,
        body: "<html>down</html>",
    };
    for _ in 0..6 {
        double.fail_next(outage.clone());
        let down = challenge(&server, &key, "alice").await;
        assert_eq!(
            (down.0, error_code(&down)),
            (StatusCode::SERVICE_UNAVAILABLE, "second_factor_service_unreachable"),
            "{down:?}"
        );
    }
    let started = challenge(&server, &key, "alice").await;
    transaction_of(&started);

    // Five attempts from one address: the sixth is refused before Duo is asked.
    let from = |ip: &str| json!({"user": "alice", "kind": "client", "method": "duo", "client_ip": ip});
    for _ in 0..4 {
        transaction_of(&challenge_with(&server, &key, from("203.0.113.9")).await);
    }
    let wrong_code = json!({"user": "alice", "kind": "client", "code": "000000", "client_ip": "203.0.113.9"});
    let client = server.client();
    let request = client
        .http
        .post(format!("{}/api/v1/validate/check", server.base))
        .bearer_auth(&key)
        .json(&wrong_code);
    assert_eq!(client.send(request).await.1["result"], "reject");
    let asked = double.seen().len();
    let (status, locked) = challenge_with(&server, &key, from("203.0.113.9")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{locked}");
    assert_eq!(locked["result"], "locked", "{locked}");
    assert!(locked["retry_after"].as_i64().unwrap() > 0, "{locked}");
    assert_eq!(double.seen().len(), asked, "Duo was asked for a locked-out account");
    transaction_of(&challenge_with(&server, &key, from("198.51.100.4")).await);

    // The Universal Prompt needs the user's browser.
    let (status, saved) = change_settings(&admin, |settings| {
        settings["services"]["duo"]["settings"]["mode"] = json!("universal_prompt");
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // Five times over: the settings' doing is not counted against the user.
    for _ in 0..5 {
        let prompt = challenge(&server, &key, "alice").await;
        assert_eq!(prompt.0, StatusCode::UNPROCESSABLE_ENTITY, "{prompt:?}");
        assert!(
            error_code(&prompt) == "validation_error" && prompt.1.to_string().contains("Auth API"),
            "{prompt:?}"
        );
    }
}
