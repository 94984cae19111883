//! Duo Security's Auth API end to end over HTTP, on both databases, against the Duo test
//! double (`duo_double`, proven right by Duo's own client in `duo`): enrolment with a push,
//! with Duo Mobile's activation, login with a push, a call, text-message passcodes and a
//! passcode; the transaction id kept by the server; Duo's refusals and outages.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::duo::duo;
use crate::duo_double::{real_now, DuoDouble, DuoUser, Failure, IKEY, SKEY};
use crate::support::{change_settings, error_code, Answer, Backend, Client, TestServer, START_TIME};

const INCORRECT: &str = "The second factor you supplied was incorrect. Please try again.";

/// Duo refusing the request's signature (a wrong secret key or host), as Duo answers it.
const SIGNATURE_REFUSED: Failure = Failure {
    status: 401,
    retry_after: None,
    body: r#"{"stat": "FAIL", "code": 40103, "message": "Invalid signature in request credentials"}"#,
};

on_both_backends!(
    a_client_enrols_duo_with_a_push_and_logs_in_each_way,
    a_user_new_to_duo_activates_duo_mobile_then_proves_it_once,
    a_push_completes_one_login_and_its_transaction_never_leaves_the_server,
    duos_refusals_and_outages_are_never_a_wrong_code,
    failing_open_lets_in_and_audits_it,
    pushes_per_login_step_are_limited_and_counted,
    duos_clock_is_watched_and_named_when_a_code_is_refused,
    forced_enrolment_admin_disable_and_what_the_admin_sees_of_duos_trouble,
);

/// Duo's test double (its Auth API and Web SDK applications both `IKEY` and `SKEY`)
/// keeping the test server's (manual) time, a server trusting it (listening at its
/// `public_url` if `public`), and a full administrator logged in.
pub(crate) async fn duo_peer(backend: Backend, public: bool) -> (DuoDouble, TestServer, Client) {
    let double = DuoDouble::start(IKEY, SKEY).await;
    double.set_skew(START_TIME - real_now());
    let ca_file = double.ca_file.clone();
    let trusting = |config: &mut twofold::config::Config| config.tls_ca_file = Some(ca_file);
    let server = match public {
        true => TestServer::start_public(backend, trusting).await,
        false => TestServer::start_with(backend, trusting).await,
    };
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    (double, server, admin)
}

/// [`duo_peer`] with Duo's Auth API active for both kinds of account (its settings
/// adjusted by `adjust`).
pub(crate) async fn duo_server(backend: Backend, adjust: impl FnOnce(&mut Value)) -> (DuoDouble, TestServer, Client) {
    let (double, server, admin) = duo_peer(backend, false).await;
    let (status, saved) = change_settings(&admin, |settings| {
        settings["services"]["duo"] = duo("auth_api", IKEY, json!(SKEY), &double.host);
        settings["services"]["duo"]["active"] = json!(true);
        adjust(&mut settings["services"]["duo"]["settings"]);
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    (double, server, admin)
}

/// A client account known to the double's Duo as `user`, enrolled in Duo with one approved
/// push; returns its backup code.
pub(crate) async fn enrolled(double: &DuoDouble, server: &TestServer, username: &str, user: DuoUser) -> String {
    double.add_user(username, user);
    server.client_account(username).await;
    let client = server.client();
    let (_, login) = client.login("client", username).await;
    assert!(
        ["authenticated", "enrollment_required"].contains(&login["status"].as_str().unwrap()),
        "{login}"
    );
    let (status, started) = client.post("/api/v1/me/two-factor/duo/enrollment", json!({})).await;
    assert_eq!(
        (status, &started["type"]),
        (StatusCode::OK, &json!("challenge")),
        "{started}"
    );
    let (_, pushed) = confirm(&client, json!({"type": "choose", "option": "push:0"})).await;
    assert_eq!(pushed["challenge"]["type"], "approval", "{pushed}");
    let done = until_decided(|| confirm(&client, json!({"type": "poll"}))).await;
    assert_eq!(done.0, StatusCode::OK, "{done:?}");
    assert_eq!(done.1["status"], "enabled", "{done:?}");
    done.1["backup_code"].as_str().unwrap().to_string()
}

async fn confirm(client: &Client, answer: Value) -> Answer {
    client
        .post("/api/v1/me/two-factor/duo/enrollment/confirm", answer)
        .await
}

async fn second_factor(client: &Client, mut answer: Value) -> Answer {
    answer["service"] = json!("duo");
    client.post("/api/v1/login/second-factor", answer).await
}

/// Polls (at most ten times) until the answer is no longer pending.
async fn until_decided<F: std::future::Future<Output = Answer>>(poll: impl Fn() -> F) -> Answer {
    for _ in 0..10 {
        let answer = poll().await;
        if answer.0 != StatusCode::OK || (answer.1["pending"] != true && answer.1["status"] != "pending") {
            return answer;
        }
    }
    panic!("still pending after ten polls");
}

/// A password login of `username` that stops at the second step; its first answer.
async fn at_second_step(server: &TestServer, username: &str) -> (Client, Value) {
    let client = server.client();
    let (_, login) = client.login("client", username).await;
    assert_eq!(login["status"], "second_factor_required", "{login}");
    (client, login["services"][0].clone())
}

fn message(answer: &Answer) -> &str {
    answer.1["error"]["message"].as_str().unwrap_or("")
}

async fn audit_details(server: &TestServer) -> Vec<String> {
    let events = server.app.store.audit_events(None, 200).await.unwrap();
    events
        .iter()
        .map(|e| format!("{} {} {}", e.event, e.outcome, e.detail.clone().unwrap_or_default()))
        .collect()
}

/// Enrolment offers what the user's Duo device can do and is done after one approved push;
/// the login then takes a passcode, a push, a call, and text-message passcodes.
async fn a_client_enrols_duo_with_a_push_and_logs_in_each_way(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    double.add_user("alice", DuoUser::default());
    server.client_account("alice").await;
    let client = server.client();
    client.login("client", "alice").await;
    let (status, started) = client.post("/api/v1/me/two-factor/duo/enrollment", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let choice = &started["challenge"];
    assert_eq!(choice["type"], "choose", "{started}");
    let options: Vec<&str> = choice["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["push:0", "phone:0", "sms:0"], "{started}");
    assert_eq!(choice["options"][0]["label"], "Send Me a Push");
    assert_eq!(choice["options"][0]["device"], "iOS (XXX-XXX-0100)");
    assert_eq!(choice["passcode"], true);
    // Not enrolled before Duo said yes: the push waits two polls.
    let (_, pushed) = confirm(&client, json!({"type": "choose", "option": "push:0"})).await;
    assert!(
        pushed["challenge"]["prompt"].as_str().unwrap().contains("iOS"),
        "{pushed}"
    );
    let (_, waiting) = confirm(&client, json!({"type": "poll"})).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    let (_, me) = client.get("/api/v1/me").await;
    assert_eq!(me["two_factor"]["enabled"], false, "{me}");
    let done = until_decided(|| confirm(&client, json!({"type": "poll"}))).await;
    assert_eq!(done.1["status"], "enabled", "{done:?}");
    assert!(done.1["backup_code"].is_string());
    client.post_empty("/api/v1/logout").await;

    // A passcode: a wrong one is Duo's "incorrect", the right one logs in.
    let (client, service) = at_second_step(&server, "alice").await;
    assert_eq!(service["id"], "duo");
    assert_eq!(service["challenge"]["type"], "choose", "{service}");
    let wrong = second_factor(&client, json!({"type": "code", "code": "000000"})).await;
    assert_eq!(
        (wrong.0, error_code(&wrong)),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );
    assert_eq!(message(&wrong), INCORRECT);
    let malformed = second_factor(&client, json!({"type": "code", "code": "12ab"})).await;
    assert_eq!(error_code(&malformed), "invalid_code_format", "{malformed:?}");
    let right = second_factor(&client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!(right.1["status"], "authenticated", "{right:?}");
    client.post_empty("/api/v1/logout").await;

    // A push, and a call: asynchronous, polled until Duo says yes.
    for option in ["push:0", "phone:0"] {
        let (client, _) = at_second_step(&server, "alice").await;
        let (status, started) = second_factor(&client, json!({"type": "choose", "option": option})).await;
        assert_eq!(status, StatusCode::OK, "{started}");
        assert_eq!(started["status"], "second_factor_required");
        assert_eq!(started["challenge"]["type"], "approval", "{started}");
        let (_, first) = second_factor(&client, json!({"type": "poll"})).await;
        assert_eq!(first["pending"], true, "{first}");
        let done = until_decided(|| second_factor(&client, json!({"type": "poll"}))).await;
        assert_eq!(done.1["status"], "authenticated", "{option}: {done:?}");
        let (status, _) = client.get("/api/v1/me").await;
        assert_eq!(status, StatusCode::OK);
    }

    // Text Me Passcodes: Duo sends them; the user types one.
    let (client, _) = at_second_step(&server, "alice").await;
    let (_, sent) = second_factor(&client, json!({"type": "choose", "option": "sms:0"})).await;
    assert_eq!(sent["challenge"]["type"], "choose", "{sent}");
    assert!(
        sent["challenge"]["notice"].as_str().unwrap().contains("text message"),
        "{sent}"
    );
    let right = second_factor(&client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!(right.1["status"], "authenticated", "{right:?}");
    // Only offered ways are taken.
    let (client, _) = at_second_step(&server, "alice").await;
    let forged = second_factor(&client, json!({"type": "choose", "option": "push:7"})).await;
    assert_eq!(forged.0, StatusCode::UNPROCESSABLE_ENTITY, "{forged:?}");

    let signed: Vec<_> = double
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/auth/v2/"))
        .collect();
    assert!(signed.iter().all(|s| s.signature_version == Some(5)), "{signed:?}");
    let audit = audit_details(&server).await;
    assert!(audit.iter().any(|a| a.starts_with("login_duo success")), "{audit:?}");
    assert!(
        audit.iter().any(|a| a.starts_with("two_factor_enabled success duo")),
        "{audit:?}"
    );
}

/// A user Duo does not know gets Duo Mobile's activation (a QR code and link), then proves
/// the new device once with a passcode before anything is enabled.
async fn a_user_new_to_duo_activates_duo_mobile_then_proves_it_once(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    server.client_account("newcomer").await;
    let client = server.client();
    client.login("client", "newcomer").await;
    let (_, started) = client.post("/api/v1/me/two-factor/duo/enrollment", json!({})).await;
    assert_eq!(started["challenge"]["type"], "activate", "{started}");
    assert!(
        started["challenge"]["link"].as_str().unwrap().starts_with("duo://"),
        "{started}"
    );
    // A passcode before the activation is refused as out of turn, and nothing is enabled.
    let early = confirm(&client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!(early.0, StatusCode::UNPROCESSABLE_ENTITY, "{early:?}");
    let (_, waiting) = confirm(&client, json!({"type": "poll"})).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    let (_, activated) = confirm(&client, json!({"type": "poll"})).await;
    assert_eq!(activated["challenge"]["type"], "choose", "{activated}");
    assert!(activated["challenge"]["notice"].as_str().unwrap().contains("activated"));
    let (_, me) = client.get("/api/v1/me").await;
    assert_eq!(me["two_factor"]["enabled"], false, "activated is not yet proved: {me}");
    let wrong = confirm(&client, json!({"type": "code", "code": "999999"})).await;
    assert_eq!(message(&wrong), INCORRECT, "{wrong:?}");
    let (status, done) = confirm(&client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!((status, &done["status"]), (StatusCode::OK, &json!("enabled")), "{done}");
    assert!(double.seen().iter().any(|s| s.path == "/auth/v2/enroll_status"));
}

/// A push's transaction id is never sent to the client and completes one login only: a
/// second session of the same user cannot ride on it, and the session it completed is
/// replaced.
async fn a_push_completes_one_login_and_its_transaction_never_leaves_the_server(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    let (first, _) = at_second_step(&server, "alice").await;
    let (other, _) = at_second_step(&server, "alice").await;
    let (_, pushed) = second_factor(&first, json!({"type": "choose", "option": "push:0"})).await;
    let txids = double.txids();
    assert!(!txids.is_empty());
    assert!(
        txids.iter().all(|txid| !pushed.to_string().contains(txid.as_str())),
        "{pushed}"
    );
    // The other session has no push of its own: its polls and any transaction it names
    // are refused, whatever the first session's push does.
    let polled = second_factor(&other, json!({"type": "poll"})).await;
    assert_eq!(polled.0, StatusCode::UNPROCESSABLE_ENTITY, "{polled:?}");
    let named = second_factor(&other, json!({"type": "callback", "state": txids[0], "code": txids[0]})).await;
    assert_ne!(named.1["status"], "authenticated", "{named:?}");
    let done = until_decided(|| second_factor(&first, json!({"type": "poll"}))).await;
    assert_eq!(done.1["status"], "authenticated", "{done:?}");
    let after = until_decided(|| second_factor(&other, json!({"type": "poll"}))).await;
    assert_ne!(after.1["status"], "authenticated", "{after:?}");
    let (status, _) = other.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The completed login's half-logged-in session is gone: polling it again is refused.
    let again = second_factor(&first, json!({"type": "poll"})).await;
    assert_eq!(again.0, StatusCode::CONFLICT, "already logged in: {again:?}");
}

/// Duo's refusal of the user (deny), of the configuration (a signature error, an unknown
/// integration key), its outages and a push it timed out are told apart: the user can still
/// use the backup code or another way, the audit names the cause, and nothing counts as a
/// wrong code.
async fn duos_refusals_and_outages_are_never_a_wrong_code(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    let backup_code = enrolled(&double, &server, "alice", DuoUser::default()).await;

    double.fail_next(Failure {
        status: 503,
        retry_after: None,
        body: "<html>down</html>",
    });
    let (client, service) = at_second_step(&server, "alice").await;
    assert_eq!(
        service["unavailable"]["code"], "second_factor_service_unreachable",
        "{service}"
    );
    let (status, used) = client
        .post("/api/v1/login/backup-code", json!({"backup_code": backup_code}))
        .await;
    assert_eq!(status, StatusCode::OK, "the backup code still works: {used}");

    double.fail_next(SIGNATURE_REFUSED);
    let (_, service) = at_second_step(&server, "alice").await;
    assert_eq!(
        service["unavailable"]["code"], "second_factor_service_misconfigured",
        "{service}"
    );
    assert!(!service.to_string().contains(INCORRECT), "{service}");

    // Down in the middle of a login: the poll is not judged, and the next one is.
    let (client, _) = at_second_step(&server, "alice").await;
    second_factor(&client, json!({"type": "choose", "option": "push:0"})).await;
    double.fail_next(Failure {
        status: 429,
        retry_after: Some("30"),
        body: "",
    });
    let limited = second_factor(&client, json!({"type": "poll"})).await;
    assert_eq!(
        (limited.0, error_code(&limited)),
        (StatusCode::SERVICE_UNAVAILABLE, "second_factor_service_unreachable")
    );
    let done = until_decided(|| second_factor(&client, json!({"type": "poll"}))).await;
    assert_eq!(done.1["status"], "authenticated", "{done:?}");

    // A push nobody answers: Duo's timeout ends the wait, and the step goes on.
    double.add_user(
        "alice",
        DuoUser {
            waits: 0,
            outcome: "timeout",
            ..DuoUser::default()
        },
    );
    let (client, _) = at_second_step(&server, "alice").await;
    second_factor(&client, json!({"type": "choose", "option": "push:0"})).await;
    let timed_out = second_factor(&client, json!({"type": "poll"})).await;
    assert!(message(&timed_out).contains("no answer in time"), "{timed_out:?}");
    let passcode = second_factor(&client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!(passcode.1["status"], "authenticated", "{passcode:?}");

    // Duo not knowing the integration key: the administrator's to fix.
    double.fail_next(Failure {
        status: 401,
        retry_after: None,
        body: r#"{"stat": "FAIL", "code": 40102, "message": "Invalid integration key in request credentials"}"#,
    });
    let (_, service) = at_second_step(&server, "alice").await;
    assert_eq!(
        service["unavailable"]["code"], "second_factor_service_misconfigured",
        "{service}"
    );

    // Duo denies a user, or does not know them: refused with Duo's words, before any choice.
    double.add_user(
        "alice",
        DuoUser {
            preauth: "deny",
            ..DuoUser::default()
        },
    );
    let (_, service) = at_second_step(&server, "alice").await;
    assert_eq!(service["unavailable"]["code"], "second_factor_denied", "{service}");
    assert!(service["unavailable"]["message"]
        .as_str()
        .unwrap()
        .contains("Your account is disabled"));

    let audit = audit_details(&server).await;
    for cause in ["HTTP 503", "40103", "retry after", "40102 Invalid integration key"] {
        assert!(
            audit
                .iter()
                .any(|a| a.starts_with("login_duo failure") && a.contains(cause)),
            "{cause}: {audit:?}"
        );
    }
    // None of it was counted, nor taken back from the count: five wrong passcodes are
    // still allowed, and the sixth attempt is locked out.
    double.add_user("alice", DuoUser::default());
    let (client, _) = at_second_step(&server, "alice").await;
    assert_locked_after(&client, 5).await;
}

/// `wrong` wrong passcodes are judged, and the next attempt is locked out.
async fn assert_locked_after(client: &Client, wrong: usize) {
    for n in 0..wrong {
        let answer = second_factor(client, json!({"type": "code", "code": "000000"})).await;
        assert_eq!(error_code(&answer), "invalid_code", "wrong passcode {n}: {answer:?}");
    }
    let locked = second_factor(client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!(error_code(&locked), "locked_out", "{locked:?}");
}

/// With `failmode: open`, a login Duo cannot judge is let in, and the audit says so; Duo's
/// bypass users are let in too, audited as bypass.
async fn failing_open_lets_in_and_audits_it(backend: Backend) {
    let (double, server, _) = duo_server(backend, |duo| duo["failmode"] = json!("open")).await;
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    double.fail_next(Failure {
        status: 502,
        retry_after: None,
        body: "",
    });
    let (client, service) = at_second_step(&server, "alice").await;
    assert_eq!(service["challenge"]["type"], "approval", "{service}");
    let (_, done) = second_factor(&client, json!({"type": "poll"})).await;
    assert_eq!(done["status"], "authenticated", "{done}");
    // A signature error is the configuration's: never let in, even failing open.
    double.fail_next(SIGNATURE_REFUSED);
    let (_, service) = at_second_step(&server, "alice").await;
    assert_eq!(
        service["unavailable"]["code"], "second_factor_service_misconfigured",
        "{service}"
    );

    double.add_user(
        "alice",
        DuoUser {
            preauth: "allow",
            ..DuoUser::default()
        },
    );
    let (client, _) = at_second_step(&server, "alice").await;
    let (_, done) = second_factor(&client, json!({"type": "poll"})).await;
    assert_eq!(done["status"], "authenticated", "{done}");
    let audit = audit_details(&server).await;
    assert!(
        audit
            .iter()
            .any(|a| a.starts_with("login_duo success") && a.contains("failmode open")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.starts_with("login_duo success") && a.contains("Duo bypass")),
        "{audit:?}"
    );
}

/// At most three pushes, calls or text messages per login step (push bombing), each sent
/// to Duo once and counted against the account's lockout; a denied push is "incorrect".
async fn pushes_per_login_step_are_limited_and_counted(backend: Backend) {
    let (double, server, _) = duo_server(backend, |_| {}).await;
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    double.add_user(
        "alice",
        DuoUser {
            waits: 0,
            outcome: "deny",
            ..DuoUser::default()
        },
    );
    let (client, _) = at_second_step(&server, "alice").await;
    let pushes_before = double.seen().iter().filter(|s| s.path == "/auth/v2/auth").count();
    for _ in 0..3 {
        let (_, pushed) = second_factor(&client, json!({"type": "choose", "option": "push:0"})).await;
        assert_eq!(pushed["challenge"]["type"], "approval", "{pushed}");
        let denied = second_factor(&client, json!({"type": "poll"})).await;
        assert_eq!(
            (denied.0, message(&denied)),
            (StatusCode::UNAUTHORIZED, INCORRECT),
            "{denied:?}"
        );
    }
    let fourth = second_factor(&client, json!({"type": "choose", "option": "push:0"})).await;
    assert_eq!(fourth.0, StatusCode::UNPROCESSABLE_ENTITY, "{fourth:?}");
    assert!(message(&fourth).contains("3 times"), "{fourth:?}");
    let pushes = double.seen().iter().filter(|s| s.path == "/auth/v2/auth").count() - pushes_before;
    assert_eq!(pushes, 3, "the fourth never reached Duo");
    // The three pushes and the refused fourth were counted: one more wrong passcode, then
    // the account's second factor is locked out (five per address and window).
    assert_locked_after(&client, 1).await;
}

/// A login that Duo refuses for its time (40105) makes the server compare the clocks at
/// once: every admin page says so. A smaller offset that Duo still accepts, found by the
/// periodic check, is named when Duo refuses a passcode.
async fn duos_clock_is_watched_and_named_when_a_code_is_refused(backend: Backend) {
    let (double, server, admin) = duo_server(backend, |_| {}).await;
    enrolled(&double, &server, "alice", DuoUser::default()).await;
    double.set_skew(START_TIME - real_now() + 600);
    let (_, service) = at_second_step(&server, "alice").await;
    assert_eq!(
        service["unavailable"]["code"], "second_factor_service_misconfigured",
        "{service}"
    );
    let (_, page) = admin.get("/admin").await;
    let page = page.as_str().unwrap().replace("&#39;", "'");
    // 600 s, or 601 if the real second turned meanwhile.
    assert!(
        page.contains("clock-warning") && page.contains("off from Duo's by 60"),
        "{page}"
    );
    let audit = audit_details(&server).await;
    assert!(
        audit.iter().any(|a| a.contains("40105") && a.contains("NTP")),
        "{audit:?}"
    );

    double.set_skew(START_TIME - real_now() + 120);
    let reading = server.app.check_duo_clock().await.unwrap().unwrap();
    assert!((reading.offset_secs - 120).abs() <= 2, "{reading:?}");
    let (client, _) = at_second_step(&server, "alice").await;
    let wrong = second_factor(&client, json!({"type": "code", "code": "000000"})).await;
    assert!(message(&wrong).starts_with(INCORRECT), "{wrong:?}");
    assert!(message(&wrong).contains("clock is off from Duo's by 12"), "{wrong:?}");

    double.set_skew(START_TIME - real_now());
    server.app.check_duo_clock().await.unwrap();
    let (_, page) = admin.get("/admin").await;
    assert!(
        !page.as_str().unwrap().contains("clock-warning"),
        "in step again: no banner"
    );
}

/// A client forced to enrol can enrol Duo, which completes its login; an administrator's
/// disabling sends it back to enrolment; Duo refusing this server's kind of application
/// (40301) is shown to the administrator with what to fix, never to the user as a code.
async fn forced_enrolment_admin_disable_and_what_the_admin_sees_of_duos_trouble(backend: Backend) {
    let (double, server, admin) = duo_server(backend, |_| {}).await;
    let forced = change_settings(&admin, |settings| settings["force_clients"] = json!(true)).await;
    assert_eq!(forced.0, StatusCode::OK, "{forced:?}");
    double.add_user("fay", DuoUser::default());
    let id = server.client_account("fay").await;
    let client = server.client();
    let (_, login) = client.login("client", "fay").await;
    assert_eq!(login["status"], "enrollment_required", "{login}");
    client.post("/api/v1/me/two-factor/duo/enrollment", json!({})).await;
    let (status, done) = confirm(&client, json!({"type": "code", "code": "123456"})).await;
    assert_eq!((status, &done["status"]), (StatusCode::OK, &json!("enabled")), "{done}");
    assert!(signed_in(&client).await, "the forced login completed");

    let disabled = admin
        .post_empty(&format!("/api/v1/admin/accounts/{id}/two-factor/disable"))
        .await;
    assert!(disabled.0.is_success(), "{disabled:?}");
    let (_, login) = server.client().login("client", "fay").await;
    assert_eq!(login["status"], "enrollment_required", "{login}");

    enrolled(&double, &server, "gus", DuoUser::default()).await;
    double.fail_next(Failure {
        status: 403,
        retry_after: None,
        body: r#"{"stat": "FAIL", "code": 40301, "message": "Access forbidden"}"#,
    });
    let (_, service) = at_second_step(&server, "gus").await;
    assert_eq!(
        service["unavailable"]["code"], "second_factor_service_misconfigured",
        "{service}"
    );
    assert!(
        service["unavailable"]["message"]
            .as_str()
            .unwrap()
            .contains("tell an administrator"),
        "{service}"
    );
    let (_, page) = admin.get("/admin/settings/two-factor").await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains("duo-trouble") && page.contains("this Duo application may not use this API"),
        "{page}"
    );
}

/// Signed in: the account's own page answers.
pub(crate) async fn signed_in(client: &Client) -> bool {
    client.get("/api/v1/me").await.0 == StatusCode::OK
}
