//! The admin and client areas walked in a real browser (headless Chromium driven over
//! WebDriver), clicking and typing as a person would. Each page visited is checked by
//! axe-core (no serious or critical violation) at 375 px and at desktop width.
//!
//! Needs Debian's `chromium` and `chromium-driver`, and axe-core from npm
//! (`npm ci --prefix tests/browser`); `.ci/run` installs them. With
//! `TWOFOLD_SCREENSHOTS=docs/screenshots`, the key pages are saved there for the README.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use serde_json::{json, Value};
use twofold::core::otpauth::KeyUri;
use twofold::core::policy::{AccountKind, Role};

use crate::flows::wrong_code;
use crate::support::{Backend, TestServer, PASSWORD};
use crate::third_party::{oathtool, zbarimg};

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (375, 812);

/// One browser: a chromedriver process, a Chromium with a fresh profile, a session.
struct Browser {
    driver: WebDriver,
    chromedriver: Child,
    _profile: tempfile::TempDir,
    base: String,
    screenshots: Option<PathBuf>,
}

impl Drop for Browser {
    /// Kills chromedriver's whole process group: Chromium and its helpers go with it.
    fn drop(&mut self) {
        let group = format!("-{}", self.chromedriver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.chromedriver.wait();
    }
}

impl Browser {
    async fn open(server: &TestServer, backend: Backend) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let chromedriver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian package chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ]
            }
        });
        let capabilities = capabilities.as_object().unwrap().clone().into_iter().collect();
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let mut driver = None;
        for _ in 0..100 {
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(connected) => {
                    driver = Some(connected);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let screenshots = std::env::var_os("TWOFOLD_SCREENSHOTS")
            .filter(|_| backend == Backend::Sqlite)
            .map(|dir| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir));
        Browser {
            driver: driver.expect("chromedriver answers and starts Chromium"),
            chromedriver,
            _profile: profile,
            base: server.base.clone(),
            screenshots,
        }
    }

    async fn visit(&self, path: &str) {
        self.driver.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.driver.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .driver
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css} on {}", self.base));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks something that does not leave the page (a checkbox, a radio button).
    async fn click(&self, css: &str) {
        self.driver
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks a button that submits a form, and waits for the next page.
    async fn submit(&self, css: &str) {
        let button = self
            .driver
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css}"));
        self.navigating(button.click()).await;
    }

    async fn click_link(&self, text: &str) {
        let link = self
            .driver
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|_| panic!("no link {text}"));
        self.navigating(link.click()).await;
    }

    /// Runs `action` and waits until the page it leads to has loaded.
    async fn navigating<T>(&self, action: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>) {
        self.driver
            .execute("window.__before_navigation = true", vec![])
            .await
            .unwrap();
        action.await.unwrap();
        for _ in 0..200 {
            let loaded = self
                .driver
                .execute(
                    "return !window.__before_navigation && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if loaded.is_ok_and(|done| done == Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the next page did not load");
    }

    /// The text a person reads on the page.
    async fn text(&self) -> String {
        self.driver
            .execute("return document.body.innerText", vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The text of the element with this id.
    async fn text_of(&self, id: &str) -> String {
        self.driver
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|_| panic!("no #{id}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits (up to 20 s) until the page, as it changes by itself, says `text`.
    async fn wait_for_text(&self, text: &str) {
        for _ in 0..200 {
            if self.text().await.contains(text) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the page never said {text:?}: {}", self.text().await);
    }

    async fn focused_id(&self) -> String {
        self.driver
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Checks the page with axe-core at phone and desktop widths, and saves a screenshot
    /// (desktop width) when screenshots are asked for.
    async fn check(&self, screenshot: Option<&str>) {
        for (width, height) in [PHONE, DESKTOP] {
            self.driver.set_window_size(width, height).await.unwrap();
            let violations = self.axe().await;
            assert!(
                violations.is_empty(),
                "{} at {width} px: {violations:#?}",
                self.path().await
            );
        }
        if let (Some(dir), Some(name)) = (&self.screenshots, screenshot) {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), self.driver.screenshot().await.unwrap()).unwrap();
        }
    }

    /// Serious and critical axe-core violations on the current page.
    async fn axe(&self) -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/node_modules/axe-core/axe.min.js"
        );
        let source = std::fs::read_to_string(path).expect("axe-core is installed: npm ci --prefix tests/browser");
        self.driver.execute(&source, vec![]).await.unwrap();
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then(result => done(result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))));";
        let violations: Value = self.driver.execute_async(script, vec![]).await.unwrap();
        violations
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Logs in at `prefix` (`/admin` or ``) with the password.
    async fn login(&self, prefix: &str, username: &str) {
        self.visit(&format!("{prefix}/login")).await;
        self.type_into("#username", username).await;
        self.type_into("#password", PASSWORD).await;
        self.submit("main button[type=submit]").await;
    }

    async fn logout(&self) {
        self.submit("form.logout button").await;
    }

    /// Reads the QR code on the page as a phone would and returns what it holds.
    async fn scan_qr_code(&self) -> KeyUri {
        let image = self
            .driver
            .find(Locator::Id("qr-code"))
            .await
            .unwrap()
            .screenshot()
            .await
            .unwrap();
        KeyUri::parse(&zbarimg(&image)).unwrap()
    }

    /// My Account / Security Settings: toggle 2FA on, Time-Based Tokens, Get Started, scan,
    /// type the code, Submit, Close. Returns the key and the backup code shown.
    async fn enrol(&self, server: &TestServer, account_page: &str, screenshots: bool) -> (KeyUri, String) {
        self.visit(account_page).await;
        let enrolled = self.enrol_here(server, screenshots).await;
        self.click_link("Close").await;
        enrolled
    }

    /// The enrolment from the account page the browser is on, up to the backup code.
    async fn enrol_here(&self, server: &TestServer, screenshots: bool) -> (KeyUri, String) {
        self.check(None).await;
        let toggle = self.driver.find(Locator::Id("enable")).await.unwrap();
        if !toggle.is_selected().await.unwrap() {
            toggle.click().await.unwrap();
        }
        self.click("#service-totp").await;
        self.submit("main form button[type=submit]").await;
        assert!(self.text().await.contains("Scan the QR code with an authenticator app"));
        assert_eq!(self.focused_id().await, "code", "the code field has the focus");
        self.check(screenshots.then_some("enrolment-qr-code")).await;
        let key = self.scan_qr_code().await;
        self.type_into("#code", &oathtool(&key, server.now())).await;
        self.submit("main form button[type=submit]").await;
        let backup = self.text_of("backup-code").await;
        assert!(self.text().await.contains("Record the Backup Code in a safe place"));
        self.check(screenshots.then_some("backup-code")).await;
        (key, backup)
    }
}

async fn first_start_setup_then_settings_and_an_admin_enrolment(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token_file = server.app.prepare_setup_token().await.unwrap().unwrap();
    let mut settings = server.app.two_factor_settings().await.unwrap();
    settings.services.totp.active = false;
    settings.services.totp.clients = false;
    settings.services.totp.admins = false;
    // Before any administrator exists, settings can only be written directly.
    server
        .app
        .store
        .put_setting("two_factor", &serde_json::to_string(&settings).unwrap(), server.now())
        .await
        .unwrap();
    let browser = Browser::open(&server, backend).await;

    // 1. First start: the setup page takes the token and creates the first administrator.
    browser.visit("/admin").await;
    assert_eq!(
        browser.path().await,
        "/admin/setup",
        "no administrator yet: the login leads to setup"
    );
    browser.check(None).await;
    browser
        .type_into("#setup_token", std::fs::read_to_string(token_file).unwrap().trim())
        .await;
    browser.type_into("#username", "boss").await;
    browser.type_into("#password", PASSWORD).await;
    browser.submit("main button[type=submit]").await;
    assert_eq!(browser.path().await, "/admin/login", "{}", browser.text().await);
    browser.login("/admin", "boss").await;
    assert_eq!(browser.path().await, "/admin");

    // 2. System Settings > Two-Factor Authentication: activate TOTP for both, Save.
    browser.click_link("System Settings").await;
    assert!(
        browser.text().await.contains("2027-01-15 08:00:10 UTC"),
        "the server's UTC time is shown"
    );
    browser.click("#totp_active").await;
    browser.click("#totp_clients").await;
    browser.click("#totp_admins").await;
    browser.submit("main button[type=submit]").await;
    assert!(browser.text().await.contains("Settings saved."));
    browser.check(Some("settings")).await;
    let saved = server.app.two_factor_settings().await.unwrap();
    assert!(saved.services.totp.active && saved.services.totp.clients && saved.services.totp.admins);

    // 3. My Account: enrol by reading the QR code from the page.
    let (key, backup) = browser.enrol(&server, "/admin/account", true).await;
    assert_eq!(key.account, "boss");
    browser.visit("/admin/account").await;
    let text = browser.text().await;
    assert!(text.contains("Two-Factor Authentication is on.") && text.contains("Time-Based Tokens"));

    // 4. Log out, log in: password, then the code page, typed with the keyboard only.
    browser.logout().await;
    server.next_step();
    browser.login("/admin", "boss").await;
    assert_eq!(browser.path().await, "/admin/login/code");
    assert!(browser
        .text()
        .await
        .contains("Enter the 6-digit code from your authenticator app"));
    assert_eq!(browser.focused_id().await, "code");
    browser.check(Some("code-prompt")).await;
    let field = browser.driver.active_element().await.unwrap();
    browser
        .navigating(field.send_keys(&format!("{}\u{E007}", oathtool(&key, server.now()))))
        .await;
    assert_eq!(browser.path().await, "/admin");

    // The backup code: logs in once and a new one is shown.
    browser.logout().await;
    browser.login("/admin", "boss").await;
    browser.click_link("Login using Backup Code").await;
    browser.check(None).await;
    browser.type_into("#backup_code", &backup).await;
    browser.submit("main button[type=submit]").await;
    let next = browser.text_of("backup-code").await;
    assert_ne!(next, backup);
    assert!(browser.text().await.contains("Your new Backup Code"));
    browser.click_link("Close").await;
    assert_eq!(browser.path().await, "/admin");
}

async fn client_enrols_from_security_settings_and_meets_every_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.client_account("cleo").await;
    let browser = Browser::open(&server, backend).await;

    // 5. The client area: Security Settings enrolment and login. The login with the
    // keyboard only: the username field has the focus, Tab to the password, Enter.
    browser.visit("/login").await;
    assert_eq!(browser.focused_id().await, "username");
    let focused = browser.driver.active_element().await.unwrap();
    browser
        .navigating(focused.send_keys(&format!("cleo\u{E004}{PASSWORD}\u{E007}")))
        .await;
    assert_eq!(browser.path().await, "/account");
    let (key, _) = browser.enrol(&server, "/account", false).await;

    // 6. Security Settings lists the authenticator; a second one is added with a name and
    // the password (its QR code read from the page), then renamed.
    browser.visit("/account").await;
    browser.type_into("#add-label", "Tablet").await;
    browser.type_into("#add-password", PASSWORD).await;
    browser.submit("form[aria-labelledby=add-heading] button").await;
    let tablet = browser.scan_qr_code().await;
    browser.type_into("#code", &oathtool(&tablet, server.now())).await;
    browser.submit("main form button[type=submit]").await;
    assert!(browser.text().await.contains("Your new authenticator is ready to use."));
    browser.click("li.credential:nth-child(2) details summary").await;
    browser.check(Some("credentials")).await;
    browser
        .type_into("li.credential:nth-child(2) input[name=label]", "Blue tablet")
        .await;
    browser.submit("li.credential:nth-child(2) details button").await;
    let text = browser.text().await;
    assert!(text.contains("was renamed") && text.contains("Blue tablet"), "{text}");

    browser.logout().await;
    server.next_step();
    browser.login("", "cleo").await;
    assert!(browser
        .text()
        .await
        .contains("A code from any of these works: Time-Based Tokens, Blue tablet."));
    let used = oathtool(&key, server.now());
    browser.type_into("#code", &used).await;
    browser.submit("main button[type=submit]").await;
    assert_eq!(browser.path().await, "/account");

    // 7. Wrong code, replayed code, lockout: the right message, and the form stays.
    browser.logout().await;
    browser.login("", "cleo").await;
    browser.type_into("#code", &used).await;
    browser.submit("main button[type=submit]").await;
    assert!(browser.text().await.contains("That code has already been used"));
    assert!(browser.driver.find(Locator::Id("code")).await.is_ok());
    browser.check(None).await;
    let wrong = wrong_code(&server, &data_encoding::BASE32_NOPAD.encode(&key.secret));
    for _ in 0..4 {
        browser.type_into("#code", &wrong).await;
        browser.submit("main button[type=submit]").await;
        assert!(browser.text().await.contains("The code you entered is incorrect"));
    }
    browser.check(Some("wrong-code")).await;
    browser.type_into("#code", &oathtool(&key, server.now() + 30)).await;
    browser.submit("main button[type=submit]").await;
    assert!(browser
        .text()
        .await
        .contains("Too many failed attempts. Try again in 15 minute(s)."));
    assert!(browser.driver.find(Locator::Id("code")).await.is_ok());
    browser.check(None).await;
}

async fn forced_enrolment_and_what_administrators_may_do(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    server
        .create_account(AccountKind::Admin, Some(Role::Staff), "stella")
        .await;
    server.client_account("finn").await;
    let browser = Browser::open(&server, backend).await;

    // 6. The administrator forces clients to enrol.
    browser.login("/admin", "root").await;
    browser.visit("/admin/settings/two-factor").await;
    browser.click("#force_clients").await;
    browser.submit("main button[type=submit]").await;
    assert!(browser.text().await.contains("Settings saved."));
    browser.logout().await;

    browser.login("", "finn").await;
    assert_eq!(browser.path().await, "/account");
    assert!(browser
        .text()
        .await
        .contains("You must set up Two-Factor Authentication before you can continue"));
    browser.check(Some("forced-enrolment")).await;
    for elsewhere in ["/", "/account/two-factor/totp", "/login", "/admin"] {
        browser.visit(elsewhere).await;
        assert!(
            ["/account", "/admin/login"].contains(&browser.path().await.as_str()),
            "{elsewhere} let a forced user through"
        );
    }
    browser.enrol(&server, "/account", false).await;
    assert_eq!(browser.path().await, "/account");
    browser.logout().await;

    // 8. The administrator disables the client's 2FA from the Clients list.
    browser.login("/admin", "root").await;
    browser.click_link("Clients").await;
    assert!(browser.text().await.contains("On (Time-Based Tokens)"));
    browser.check(Some("clients")).await;
    browser
        .submit("button[aria-label='Disable Two-Factor Authentication for finn']")
        .await;
    assert!(browser
        .text()
        .await
        .contains("Two-Factor Authentication was disabled for the account."));
    assert!(!browser.text().await.contains("On (Time-Based Tokens)"));
    browser.logout().await;

    // A staff administrator does not see the settings page, and gets 403 typing its URL.
    browser.login("/admin", "stella").await;
    assert!(!browser.text().await.contains("System Settings"));
    browser.visit("/admin/settings/two-factor").await;
    assert!(browser.text().await.contains("You are not allowed to do that."));
    let status = reqwest::Client::new()
        .get(format!("{}/admin/settings/two-factor", server.base))
        .header("cookie", {
            let cookie = browser.driver.get_named_cookie("twofold_session").await.unwrap();
            format!("twofold_session={}", cookie.value())
        })
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
}

/// YubiKey: an administrator sets it up on the settings page (a real validation server,
/// Debian's yubiserver); a client names and enrols a key, then logs in by "touching" it
/// (the browser types the OTP and Enter, as the key does).
async fn a_client_enrols_a_yubikey_and_logs_in_with_it(backend: Backend) {
    use crate::yubikey::{key_file_line, YubiServer, API_KEY, OTHER_KEY};
    let yubiserver = YubiServer::start();
    let server = TestServer::start(backend).await;
    server.full_admin("boss").await;
    server.client_account("yuki").await;
    let browser = Browser::open(&server, backend).await;

    browser.login("/admin", "boss").await;
    browser.click_link("System Settings").await;
    browser.click("#yubikey_active").await;
    browser.click("#yubikey_clients").await;
    browser.type_into("#yubikey_client_id", "1").await;
    browser.type_into("#yubikey_api_key", API_KEY).await;
    browser.type_into("#yubikey_urls", &yubiserver.url).await;
    browser.submit("main button[type=submit]").await;
    assert!(
        browser.text().await.contains("Settings saved."),
        "{}",
        browser.text().await
    );
    assert!(browser
        .text()
        .await
        .contains("Secret Key (base64): set, leave empty to keep it"));
    let page = browser.driver.source().await.unwrap();
    assert!(!page.contains(API_KEY), "the Secret Key is never shown again");
    // The keys of the local mode are imported on their own page, one line at a time.
    browser.click_link("YubiKeys").await;
    browser.type_into("#keys", &key_file_line(8, &OTHER_KEY)).await;
    browser.submit("main form button[type=submit]").await;
    let text = browser.text().await;
    assert!(
        text.contains("Imported 1 key(s).") && text.contains(OTHER_KEY.public_id),
        "{text}"
    );
    assert!(text.contains("anyone who touches it"), "{text}");
    browser.check(None).await;
    browser.logout().await;

    let otps = YubiServer::mint(&[(1, 0, 0x100), (1, 1, 0x200)]);
    browser.login("", "yuki").await;
    browser.click("#enable").await;
    browser.click("#service-yubikey").await;
    browser.type_into("#label", "Blue key").await;
    browser.submit("main form button[type=submit]").await;
    assert_eq!(browser.path().await, "/account/two-factor/yubikey");
    assert_eq!(
        browser.focused_id().await,
        "code",
        "the field has the focus: touch the key"
    );
    browser.check(Some("enrolment-yubikey")).await;
    let field = browser.driver.active_element().await.unwrap();
    browser
        .navigating(field.send_keys(&format!("{}\u{E007}", otps[0])))
        .await;
    assert!(browser
        .text()
        .await
        .contains("you will touch your YubiKey every time you log in"));
    browser.click_link("Close").await;
    browser.visit("/account").await;
    assert!(browser.text().await.contains("Blue key"));

    browser.logout().await;
    browser.login("", "yuki").await;
    assert!(browser.text().await.contains("Touch your YubiKey"));
    assert_eq!(browser.focused_id().await, "code");
    browser.check(Some("login-yubikey")).await;
    let field = browser.driver.active_element().await.unwrap();
    browser
        .navigating(field.send_keys(&format!("{}\u{E007}", otps[1])))
        .await;
    assert_eq!(browser.path().await, "/account");
}

/// Duo Security through the pages: the administrator sets it up, a client enrols with an
/// approved push and logs in with another, the page waiting for Duo without a reload
/// (static/poll.js) until the next page shows.
async fn a_client_enrols_duo_and_logs_in_with_a_push(backend: Backend) {
    use crate::duo_double::{real_now, DuoDouble, DuoUser, IKEY, SKEY};
    use crate::support::START_TIME;
    let double = DuoDouble::start(IKEY, SKEY).await;
    double.set_skew(START_TIME - real_now());
    double.add_user("dana", DuoUser::default());
    let ca_file = double.ca_file.clone();
    let server = TestServer::start_with(backend, |config| config.tls_ca_file = Some(ca_file)).await;
    server.full_admin("boss").await;
    server.client_account("dana").await;
    let browser = Browser::open(&server, backend).await;

    browser.login("/admin", "boss").await;
    browser.click_link("System Settings").await;
    browser.click("#duo_active").await;
    browser.click("#duo_clients").await;
    browser.type_into("#duo_integration_key", IKEY).await;
    browser.type_into("#duo_secret_key", SKEY).await;
    browser.type_into("#duo_api_hostname", &double.host).await;
    browser.submit("main button[type=submit]").await;
    let text = browser.text().await;
    assert!(text.contains("Settings saved."), "{text}");
    browser.logout().await;

    browser.login("", "dana").await;
    browser.click("#enable").await;
    browser.click("#service-duo").await;
    browser.submit("main form button[type=submit]").await;
    assert_eq!(browser.path().await, "/account/two-factor/duo");
    assert!(browser.text().await.contains("Send Me a Push"));
    browser.check(Some("enrolment-duo")).await;
    browser.submit("button[value='push:0']").await;
    assert!(browser.text_of("waiting").await.contains("A push was sent to iOS"));
    browser.check(Some("duo-push-waiting")).await;
    // Duo approves at its third poll: the page shows the backup code without a click.
    browser
        .wait_for_text("Duo Security will ask you every time you log in")
        .await;
    browser.visit("/account").await;
    browser.logout().await;

    browser.login("", "dana").await;
    let text = browser.text().await;
    assert!(text.contains("Call Me") && text.contains("Enter a Passcode"), "{text}");
    browser.check(Some("login-duo")).await;
    browser.submit("button[value='push:0']").await;
    browser.wait_for_text("Security Settings").await;
    assert_eq!(browser.path().await, "/account", "logged in after the push");
}

/// An administrator registers an application on its page; the application sends a client
/// to enrol by a one-time link, which the client follows, enrols with, and leaves.
async fn an_application_is_registered_and_sends_its_user_to_enrol_by_link(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.full_admin("root").await;
    server.client_account("nora").await;
    let browser = Browser::open(&server, backend).await;

    browser.login("/admin", "root").await;
    browser.click_link("Applications").await;
    browser.check(None).await;
    browser.type_into("#name", "Portal").await;
    browser.click("#scope_accounts").await;
    browser.submit("main form button[type=submit]").await;
    assert!(browser.text().await.contains("Application registered."));
    let key = browser.text_of("new-key").await;
    browser.check(None).await;
    browser.logout().await;

    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/validate/preauth", server.base))
        .bearer_auth(&key)
        .json(&json!({"user": "nora", "kind": "client"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let link = answer["enroll_url"].as_str().unwrap();
    browser.visit(link).await;
    assert!(browser.text().await.contains("Portal sent you here"));
    browser.check(None).await;
    browser.submit("main form button[type=submit]").await;
    assert_eq!(browser.path().await, "/account");
    assert!(browser
        .text()
        .await
        .contains("Set up Two-Factor Authentication for nora"));
    browser.enrol_here(&server, false).await;
    assert!(browser
        .text()
        .await
        .contains("go back to the application that sent you here"));
    browser.visit("/account").await;
    assert_eq!(browser.path().await, "/login", "the link's session ended");
}

on_both_backends!(
    an_application_is_registered_and_sends_its_user_to_enrol_by_link,
    a_client_enrols_duo_and_logs_in_with_a_push,
    a_client_enrols_a_yubikey_and_logs_in_with_it,
    first_start_setup_then_settings_and_an_admin_enrolment,
    client_enrols_from_security_settings_and_meets_every_error,
    forced_enrolment_and_what_administrators_may_do,
);
