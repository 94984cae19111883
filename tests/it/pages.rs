//! The admin and client areas as HTML forms, over HTTP (the browser walk is issue 7's).

use reqwest::StatusCode;

use crate::support::*;

/// A browser-like client for forms: it keeps cookies and does not follow redirects, so
/// each test can check where a page sends the user.
pub(crate) struct Browser {
    pub http: reqwest::Client,
    base: String,
}

pub(crate) struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub html: String,
}

impl Page {
    /// The value of the hidden CSRF field of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.html.find(marker).expect("a CSRF field") + marker.len();
        self.html[start..].split('"').next().unwrap().to_string()
    }

    /// The base32 key shown under the QR code of the TOTP enrolment page.
    pub fn totp_secret(&self) -> String {
        let marker = r#"<p class="secret" id="secret"><code>"#;
        let start = self.html.find(marker).expect("the key under the QR code") + marker.len();
        self.html[start..].split('<').next().unwrap().replace(' ', "")
    }

    fn img_data(&self) -> Vec<u8> {
        let marker = "data:image/png;base64,";
        let start = self.html.find(marker).expect("an inline PNG") + marker.len();
        data_encoding::BASE64
            .decode(self.html[start..].split('"').next().unwrap().as_bytes())
            .unwrap()
    }
}

impl Browser {
    pub fn new(server: &TestServer) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            base: server.base.clone(),
        }
    }

    async fn page(&self, response: reqwest::Response) -> Page {
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        Page {
            status,
            location,
            html: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.page(self.http.get(format!("{}{path}", self.base)).send().await.unwrap())
            .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("sec-fetch-site", "same-origin")
            .form(form)
            .send()
            .await
            .unwrap();
        self.page(response).await
    }

    async fn login(&self, prefix: &str, username: &str) -> Page {
        let form = self.get(&format!("{prefix}/login")).await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            &format!("{prefix}/login"),
            &[("csrf", &csrf), ("username", username), ("password", PASSWORD)],
        )
        .await
    }
}

async fn first_start_leads_to_setup_and_the_first_administrator(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = std::fs::read_to_string(server.app.prepare_setup_token().await.unwrap().unwrap()).unwrap();
    let browser = Browser::new(&server);
    assert_eq!(
        browser.get("/admin/login").await.location.as_deref(),
        Some("/admin/setup")
    );
    let setup = browser.get("/admin/setup").await;
    assert!(setup.html.contains("setup-token"));
    let csrf = setup.csrf();
    let wrong = browser
        .post(
            "/admin/setup",
            &[
                ("csrf", &csrf),
                ("setup_token", "nope"),
                ("username", "boss"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.html.contains("That setup token is not valid") && wrong.html.contains(r#"value="boss""#));
    let done = browser
        .post(
            "/admin/setup",
            &[
                ("csrf", &csrf),
                ("setup_token", &token),
                ("username", "boss"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/admin/login"));
    assert_eq!(
        browser.login("/admin", "boss").await.location.as_deref(),
        Some("/admin")
    );
    let settings = browser.get("/admin/settings/two-factor").await;
    assert!(settings.html.contains("Enable for use by Clients") && settings.html.contains("Server time"));
}

async fn client_enrols_from_security_settings_and_logs_in_with_a_code_then_a_backup_code(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("wes").await;
    let browser = Browser::new(&server);
    assert_eq!(browser.get("/account").await.location.as_deref(), Some("/login"));
    assert_eq!(browser.login("", "wes").await.location.as_deref(), Some("/account"));

    let account = browser.get("/account").await;
    assert!(account.html.contains("Security Settings") && account.html.contains("Get Started"));
    let csrf = account.csrf();
    let untoggled = browser
        .post("/account/two-factor/start", &[("csrf", &csrf), ("service", "totp")])
        .await;
    assert!(untoggled.html.contains("Toggle Two-Factor Authentication on"));
    let started = browser
        .post(
            "/account/two-factor/start",
            &[("csrf", &csrf), ("enable", "on"), ("service", "totp")],
        )
        .await;
    assert_eq!(started.location.as_deref(), Some("/account/two-factor/totp"));
    let enrol = browser.get("/account/two-factor/totp").await;
    assert!(enrol.html.contains("Scan the QR code with an authenticator app"));
    assert!(enrol.html.contains(r#"autocomplete="one-time-code""#) && enrol.html.contains(r#"inputmode="numeric""#));
    assert_eq!(&enrol.img_data()[..4], b"\x89PNG");
    let secret = enrol.totp_secret();

    let wrong = browser
        .post("/account/two-factor/confirm", &[("csrf", &csrf), ("code", "000000")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.html.contains("incorrect") && wrong.html.contains("data:image/png"),
        "the form and QR code stay"
    );
    let code = server.code(&secret, 0);
    let done = browser
        .post("/account/two-factor/confirm", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.html.contains("Record the Backup Code in a safe place"));
    let backup_start = done.html.find(r#"id="backup-code">"#).unwrap() + 17;
    let backup = done.html[backup_start..].split('<').next().unwrap().to_string();
    assert_eq!(backup.len(), 19);

    // Log out; log in: password, then the code page.
    let logout = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(logout.location.as_deref(), Some("/login"));
    assert_eq!(browser.login("", "wes").await.location.as_deref(), Some("/login/code"));
    assert_eq!(
        browser.get("/account").await.location.as_deref(),
        Some("/login/code"),
        "half-logged-in"
    );
    let prompt = browser.get("/login/code").await;
    assert!(prompt
        .html
        .contains("Enter the 6-digit code from your authenticator app"));
    assert!(prompt.html.contains("Login using Backup Code"));
    let replay = browser
        .post("/login/code", &[("csrf", &prompt.csrf()), ("code", &code)])
        .await;
    assert!(replay.html.contains("already been used") && replay.html.contains(r#"name="code""#));

    let backup_page = browser.get("/login/backup").await;
    let used = browser
        .post(
            "/login/backup",
            &[("csrf", &backup_page.csrf()), ("backup_code", &backup)],
        )
        .await;
    assert!(used.html.contains("Your new Backup Code"));
    assert!(!used.html.contains(&backup));
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);
}

async fn forced_admin_lands_on_enrolment_and_every_page_sends_it_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let mut settings = server.app.two_factor_settings().await.unwrap();
    settings.force_admins = true;
    server
        .app
        .save_two_factor_settings(
            &server
                .app
                .store
                .find_account(twofold::core::policy::AccountKind::Admin, "root")
                .await
                .unwrap()
                .unwrap(),
            &settings,
            None,
        )
        .await
        .unwrap();

    let browser = Browser::new(&server);
    assert_eq!(
        browser.login("/admin", "root").await.location.as_deref(),
        Some("/admin/account")
    );
    for path in [
        "/admin",
        "/admin/settings/two-factor",
        "/admin/clients",
        "/admin/administrators",
    ] {
        assert_eq!(
            browser.get(path).await.location.as_deref(),
            Some("/admin/account"),
            "{path}"
        );
    }
    let account = browser.get("/admin/account").await;
    assert!(account.html.contains("You must set up Two-Factor Authentication"));
    assert!(
        !account.html.contains("System Settings"),
        "no navigation while enrolling"
    );
}

async fn staff_do_not_get_the_settings_page_and_forms_need_their_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    server
        .create_account(
            twofold::core::policy::AccountKind::Admin,
            Some(twofold::core::policy::Role::Staff),
            "stan",
        )
        .await;
    let browser = Browser::new(&server);
    browser.login("/admin", "stan").await;
    let home = browser.get("/admin").await;
    assert!(!home.html.contains("System Settings"));
    assert_eq!(
        browser.get("/admin/settings/two-factor").await.status,
        StatusCode::FORBIDDEN
    );
    let forged = browser
        .post(
            "/admin/settings/two-factor",
            &[("csrf", &home.csrf()), ("totp_window", "0")],
        )
        .await;
    assert_ne!(forged.status, StatusCode::OK);

    // A login form posted without its CSRF cookie pair is refused and shown again.
    let stranger = Browser::new(&server);
    let refused = stranger
        .post(
            "/admin/login",
            &[("csrf", "made-up"), ("username", "stan"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("This form has expired"));
    let cross = stranger
        .http
        .post(format!("{}/admin/login", stranger.base))
        .header("origin", "https://evil.example")
        .form(&[("csrf", "x"), ("username", "stan"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
}

async fn full_admin_disables_a_clients_two_factor_from_the_clients_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    enrolled_client(&server, "xena").await;
    let browser = Browser::new(&server);
    browser.login("/admin", "root").await;
    let list = browser.get("/admin/clients").await;
    assert!(list.html.contains("xena") && list.html.contains("On (Time-Based Tokens)"));
    let id = server.client_id("xena").await;
    let done = browser
        .post(
            &format!("/admin/accounts/{id}/two-factor/disable"),
            &[("csrf", &list.csrf())],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/admin/clients?done=disabled"));
    let list = browser.get("/admin/clients?done=disabled").await;
    assert!(list.html.contains("was disabled") && list.html.contains("<td>Off</td>"));
}

async fn second_factors_are_added_renamed_and_removed_on_the_account_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (phone_secret, _) = enrolled_client(&server, "wes").await;
    let wes = server.client_id("wes").await;
    let browser = Browser::new(&server);
    assert_eq!(browser.login("", "wes").await.location.as_deref(), Some("/login/code"));
    let prompt = browser.get("/login/code").await;
    assert!(prompt.html.contains("Use another method") && !prompt.html.contains("A code from any of these"));
    let signed_in = browser
        .post(
            "/login/code",
            &[("csrf", &prompt.csrf()), ("code", &server.code(&phone_secret, 0))],
        )
        .await;
    assert_eq!(signed_in.location.as_deref(), Some("/account"));

    // The credential is listed with its label and its last use (just now).
    let account = browser.get("/account").await;
    let csrf = account.csrf();
    let now = twofold::web::api::utc_text(server.now());
    assert!(
        account.html.contains("<strong>Time-Based Tokens</strong>"),
        "{}",
        account.html
    );
    assert!(account.html.contains(&format!(r#"last used <time datetime="{now}">"#)));
    assert!(account.html.contains("Add another second factor"));

    // Adding one takes the password; a wrong one is said so and nothing starts.
    let add = |password: &'static str| {
        let csrf = csrf.clone();
        let browser = &browser;
        async move {
            browser
                .post(
                    "/account/two-factor/start",
                    &[
                        ("csrf", &csrf),
                        ("enable", "on"),
                        ("service", "totp"),
                        ("label", "Tablet"),
                        ("password", password),
                    ],
                )
                .await
        }
    };
    let refused = add("not my password").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.html.contains("The password is incorrect."));
    assert_eq!(
        browser.get("/account/two-factor/totp").await.location.as_deref(),
        Some("/account"),
        "no enrolment was started"
    );
    assert_eq!(
        add(PASSWORD).await.location.as_deref(),
        Some("/account/two-factor/totp")
    );
    let tablet_secret = browser.get("/account/two-factor/totp").await.totp_secret();
    assert_ne!(tablet_secret, phone_secret);
    let added = browser
        .post(
            "/account/two-factor/confirm",
            &[("csrf", &csrf), ("code", &server.code(&tablet_secret, 0))],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK);
    assert!(added.html.contains("Your new authenticator is ready to use."));
    assert!(
        !added.html.contains("Backup Code"),
        "adding one issues no new backup code"
    );
    assert!(added.html.contains("<strong>Tablet</strong>") && added.html.contains("never used yet"));

    // Renaming: a clear error for a bad name, then the new name.
    let ids: Vec<i64> = server
        .app
        .store
        .credentials(wes)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let rename = |label: String| {
        let path = format!("/account/two-factor/credentials/{}/rename", ids[1]);
        let csrf = csrf.clone();
        let browser = &browser;
        async move { browser.post(&path, &[("csrf", &csrf), ("label", &label)]).await }
    };
    let too_long = rename("x".repeat(65)).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.html.contains("at most 64 characters") && too_long.html.contains("<strong>Tablet</strong>"));
    let renamed = rename("Blue tablet".into()).await;
    assert!(renamed.html.contains("was renamed") && renamed.html.contains("<strong>Blue tablet</strong>"));

    // At login, a code of either authenticator works, and the page says which count.
    browser.post("/logout", &[("csrf", &csrf)]).await;
    server.next_step();
    browser.login("", "wes").await;
    let prompt = browser.get("/login/code").await;
    assert!(prompt
        .html
        .contains("A code from any of these works: Time-Based Tokens, Blue tablet."));
    let unknown = browser.get("/login/code?service=carrier-pigeon").await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.html.contains("There is no such second factor."));
    let signed_in = browser
        .post(
            "/login/code",
            &[
                ("csrf", &prompt.csrf()),
                ("service", "totp"),
                ("code", &server.code(&tablet_secret, 0)),
            ],
        )
        .await;
    assert_eq!(signed_in.location.as_deref(), Some("/account"));
    let csrf = browser.get("/account").await.csrf();

    // Removing: the password is required; another account's credential is not found.
    let remove = |id: i64, password: &'static str| {
        let csrf = csrf.clone();
        let browser = &browser;
        async move {
            browser
                .post(
                    &format!("/account/two-factor/credentials/{id}/remove"),
                    &[("csrf", &csrf), ("password", password)],
                )
                .await
        }
    };
    let refused = remove(ids[0], "not my password").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.html.contains("<strong>Time-Based Tokens</strong>"));
    let (other_secret, _) = enrolled_client(&server, "zoe").await;
    assert!(!other_secret.is_empty());
    let zoe = server.client_id("zoe").await;
    let zoes = server.app.store.credentials(zoe).await.unwrap()[0].id;
    assert_eq!(remove(zoes, PASSWORD).await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.app.store.credentials(zoe).await.unwrap().len(), 1);

    let removed = remove(ids[0], PASSWORD).await;
    assert!(removed.html.contains("The second factor was removed."));
    assert!(!removed.html.contains("<strong>Time-Based Tokens</strong>"));
    let last = remove(ids[1], PASSWORD).await;
    assert!(last.html.contains("Two-Factor Authentication is now off") && last.html.contains("Get Started"));
    assert!(server.app.store.credentials(wes).await.unwrap().is_empty());
}

/// A complete, valid settings form: window 0, forcing clients (a change anyone could see).
fn settings_form(csrf: &str) -> Vec<(&'static str, String)> {
    [
        ("csrf", csrf),
        ("totp_active", "on"),
        ("totp_clients", "on"),
        ("totp_admins", "on"),
        ("totp_window", "0"),
        ("totp_max_drift", "0"),
        ("totp_algorithm", "SHA1"),
        ("totp_digits", "6"),
        ("yubikey_mode", "validation_server"),
        ("yubikey_client_id", ""),
        ("yubikey_api_key", ""),
        ("yubikey_urls", "https://api.yubico.com/wsapi/2.0/verify"),
        ("yubikey_timeout_secs", "5"),
        ("force_clients", "on"),
    ]
    .into_iter()
    .map(|(name, value)| (name, value.to_string()))
    .collect()
}

/// Only a full administrator who has finished logging in may use the admin forms: a staff
/// administrator's and a half-logged-in administrator's complete, valid forms change nothing.
async fn staff_and_half_logged_in_administrators_cannot_use_admin_forms(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("boss").await;
    server
        .create_account(
            twofold::core::policy::AccountKind::Admin,
            Some(twofold::core::policy::Role::Staff),
            "stan",
        )
        .await;
    enrolled_client(&server, "cleo").await;
    let cleo = server.client_id("cleo").await;
    // A full administrator with 2FA, who has typed only the password.
    let boss = server.client();
    boss.login("admin", "boss").await;
    let (boss_secret, _) = boss.enrol_totp(&server).await;
    let half = Browser::new(&server);
    assert_eq!(
        half.login("/admin", "boss").await.location.as_deref(),
        Some("/admin/login/code")
    );
    let half_csrf = half.get("/admin/login/code").await.csrf();
    let staff = Browser::new(&server);
    staff.login("/admin", "stan").await;
    let staff_csrf = staff.get("/admin").await.csrf();

    for (who, browser, csrf) in [("half-logged-in", &half, &half_csrf), ("staff", &staff, &staff_csrf)] {
        let form = settings_form(csrf);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let saved = browser.post("/admin/settings/two-factor", &form).await;
        assert!(
            saved.status != StatusCode::OK || !saved.html.contains("Settings saved"),
            "{who}"
        );
        for action in ["two-factor/disable", "unlock"] {
            let done = browser
                .post(&format!("/admin/accounts/{cleo}/{action}"), &[("csrf", csrf.as_str())])
                .await;
            assert!(
                done.location.as_deref() != Some("/admin/clients?done=disabled")
                    && done.location.as_deref() != Some("/admin/clients?done=unlocked"),
                "{who} {action}: {:?}",
                done.location
            );
        }
    }
    let settings = server.app.two_factor_settings().await.unwrap();
    assert!(
        !settings.force_clients && settings.services.totp.settings.window == 1,
        "settings unchanged"
    );
    assert_eq!(
        server.app.store.credentials(cleo).await.unwrap().len(),
        1,
        "cleo's 2FA still on"
    );
    // The same form from the full administrator, logged in with both factors, is saved:
    // the forms above were refused for who sent them, not for what they held.
    server.next_step();
    let code = half
        .post(
            "/admin/login/code",
            &[("csrf", &half_csrf), ("code", &server.code(&boss_secret, 0))],
        )
        .await;
    assert_eq!(code.location.as_deref(), Some("/admin"));
    let csrf = half.get("/admin").await.csrf();
    let form = settings_form(&csrf);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = half.post("/admin/settings/two-factor", &form).await;
    assert!(saved.html.contains("Settings saved"), "{}", saved.html);
    assert!(server.app.two_factor_settings().await.unwrap().force_clients);
}

async fn pages_carry_the_security_headers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = reqwest::get(format!("{}/login", server.base)).await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline")
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let css = reqwest::get(format!("{}/static/style.css", server.base)).await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

on_both_backends!(
    first_start_leads_to_setup_and_the_first_administrator,
    client_enrols_from_security_settings_and_logs_in_with_a_code_then_a_backup_code,
    forced_admin_lands_on_enrolment_and_every_page_sends_it_back,
    staff_do_not_get_the_settings_page_and_forms_need_their_token,
    full_admin_disables_a_clients_two_factor_from_the_clients_page,
    second_factors_are_added_renamed_and_removed_on_the_account_page,
    staff_and_half_logged_in_administrators_cannot_use_admin_forms,
    pages_carry_the_security_headers,
);

on_both_backends!(a_user_new_to_duo_scans_the_activation_code_and_enrols_without_javascript);

/// Duo's enrolment through the pages alone (no JavaScript): Duo Mobile's activation as a
/// QR code a phone reads, "Check now" answered 202 while Duo waits, then the choice of a
/// push, and the backup code once Duo approves.
async fn a_user_new_to_duo_scans_the_activation_code_and_enrols_without_javascript(backend: Backend) {
    let (double, server, _) = crate::duo_login::duo_server(backend, |_| {}).await;
    server.client_account("nia").await;
    let browser = Browser::new(&server);
    browser.login("", "nia").await;
    let csrf = browser.get("/account").await.csrf();
    let started = browser
        .post(
            "/account/two-factor/start",
            &[("csrf", &csrf), ("enable", "on"), ("service", "duo")],
        )
        .await;
    assert_eq!(started.location.as_deref(), Some("/account/two-factor/duo"));
    let activation = browser.get("/account/two-factor/duo").await;
    let link = crate::third_party::zbarimg(&activation.img_data());
    assert!(link.starts_with("duo://"), "{link}");
    assert!(
        activation.html.contains(&format!(r#"href="{link}""#)),
        "the link beside the code"
    );
    assert!(activation
        .html
        .contains(r#"<script src="/static/poll.js" defer></script>"#));
    let check = [("csrf", csrf.as_str()), ("service", "duo"), ("poll", "1")];
    let waiting = browser.post("/account/two-factor/confirm", &check).await;
    assert_eq!(waiting.status, StatusCode::ACCEPTED, "Duo Mobile is not activated yet");
    let activated = browser.post("/account/two-factor/confirm", &check).await;
    assert_eq!(activated.status, StatusCode::OK);
    assert!(activated.html.contains("Duo Mobile is activated"), "{}", activated.html);
    let pushed = browser
        .post(
            "/account/two-factor/confirm",
            &[("csrf", &csrf), ("service", "duo"), ("option", "push:0")],
        )
        .await;
    assert!(pushed.html.contains("A push was sent to"), "{}", pushed.html);
    let mut page = browser.post("/account/two-factor/confirm", &check).await;
    for _ in 0..5 {
        if page.status != StatusCode::ACCEPTED {
            break;
        }
        page = browser.post("/account/two-factor/confirm", &check).await;
    }
    assert!(
        page.html.contains("Duo Security will ask you every time you log in"),
        "{}",
        page.html
    );
    assert_eq!(double.txids().len(), 1);
}

on_both_backends!(applications_are_registered_and_their_keys_revoked_on_their_page);

/// System Settings > Applications: a full administrator registers an application and sees
/// its key once; the key works on the validate API until it is revoked there; staff cannot
/// use the page.
async fn applications_are_registered_and_their_keys_revoked_on_their_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    let browser = Browser::new(&server);
    browser.login("/admin", "root").await;
    let page = browser.get("/admin/applications").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    let created = browser
        .post(
            "/admin/applications",
            &[
                ("csrf", &csrf),
                ("name", "Shop"),
                ("kinds", "client"),
                ("scope_check", "on"),
                ("networks", ""),
            ],
        )
        .await;
    assert!(created.html.contains("Application registered."), "{}", created.html);
    let start = created.html.find(r#"<code id="new-key">"#).unwrap() + r#"<code id="new-key">"#.len();
    let key = created.html[start..].split('<').next().unwrap().to_string();
    assert!(key.starts_with("tfk_"), "{key}");
    let again = browser.get("/admin/applications").await;
    assert!(!again.html.contains(&key) && again.html.contains("Shop"), "shown once");

    let check = || async {
        let client = server.client();
        let request = client
            .http
            .post(format!("{}/api/v1/validate/check", server.base))
            .header("authorization", format!("Bearer {key}"))
            .json(&serde_json::json!({"user": "nobody", "kind": "client", "code": "123456"}));
        client.send(request).await.0
    };
    assert_eq!(check().await, StatusCode::OK);
    let key_id = key.strip_prefix("tfk_").unwrap().split('_').next().unwrap();
    let revoked = browser
        .post(
            &format!("/admin/applications/1/keys/{key_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(revoked.html.contains("Key revoked"), "{}", revoked.html);
    assert_eq!(check().await, StatusCode::UNAUTHORIZED);
    assert!(revoked.html.contains("users without a second factor\n    must enrol"));
    let policy = browser
        .post(
            "/admin/applications/1/policy",
            &[("csrf", &csrf), ("allow_unenrolled", "true")],
        )
        .await;
    assert!(
        policy.html.contains("now pass") && policy.html.contains("users without a second factor\n    pass"),
        "{}",
        policy.html
    );

    server
        .create_account(
            twofold::core::policy::AccountKind::Admin,
            Some(twofold::core::policy::Role::Staff),
            "sam",
        )
        .await;
    let staff = Browser::new(&server);
    staff.login("/admin", "sam").await;
    assert_eq!(staff.get("/admin/applications").await.status, StatusCode::FORBIDDEN);
}
