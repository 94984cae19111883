//! Admin-only pages: first-start setup, System Settings > Two-Factor Authentication, and the
//! Administrators and Clients lists with their 2FA status.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{
    anonymous_csrf, check_anonymous_csrf, error_page, message_page, render, see_other, with_cookie, Area, Layout,
    MaybeCaller, SIGNED_IN,
};
use crate::app::App;
use crate::core::hotp::Algorithm;
use crate::core::policy::{
    AccountKind, DuoMode, DuoSettings, DuoUsername, FailMode, ServiceId, ServiceSwitches, TotpSettings,
    TwoFactorSettings, WriteOnly, YubikeyMode, YubikeySettings,
};
use crate::services::admin::{require_full_admin, Operator};
use crate::services::Error;
use crate::store::{AccountSummary, ImportedKeySummary};
use crate::web::session::Caller;
use crate::web::Remote;

const ADMIN: Area = Area::of::<true>();

fn signed_in_admin(caller: MaybeCaller) -> Result<Caller, Redirect> {
    caller.require(ADMIN, SIGNED_IN)
}

pub async fn dashboard(State(app): State<App>, caller: MaybeCaller) -> Response {
    match signed_in_admin(caller) {
        Ok(caller) => {
            let notice = format!("Welcome, {}.", caller.account.username);
            message_page(
                &app,
                ADMIN,
                Some(&caller),
                StatusCode::OK,
                "Dashboard",
                None,
                Some(notice),
            )
        }
        Err(redirect) => redirect.into_response(),
    }
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    csrf: String,
    username: String,
}

fn setup_form(app: &App, headers: &HeaderMap, status: StatusCode, username: String, error: Option<String>) -> Response {
    let (csrf, cookie) = match anonymous_csrf(app, headers) {
        Ok(found) => found,
        Err(error) => return error_page(app, ADMIN, None, error),
    };
    let page = SetupPage {
        layout: Layout::new(app, ADMIN, "Set up Twofold", None),
        error,
        notice: None,
        csrf,
        username,
    };
    with_cookie(render(status, page), cookie)
}

pub async fn setup_page(State(app): State<App>, headers: HeaderMap) -> Response {
    match app.store.has_admin().await {
        Ok(true) => see_other("/admin/login"),
        Ok(false) => setup_form(&app, &headers, StatusCode::OK, String::new(), None),
        Err(error) => error_page(&app, ADMIN, None, error.into()),
    }
}

#[derive(Deserialize)]
pub struct SetupForm {
    csrf: String,
    setup_token: String,
    username: String,
    password: String,
}

pub async fn setup(
    State(app): State<App>,
    Remote(remote): Remote,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    let result = match check_anonymous_csrf(&app, &headers, &form.csrf) {
        Ok(()) => {
            app.setup_first_admin(&form.setup_token, &form.username, &form.password, remote.as_deref())
                .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => see_other("/admin/login"),
        Err(Error::Forbidden) => {
            let message =
                "That setup token is not valid. Copy it from the file setup-token in Twofold's data directory.";
            setup_form(
                &app,
                &headers,
                StatusCode::FORBIDDEN,
                form.username,
                Some(message.into()),
            )
        }
        Err(error) => {
            let status = error.status();
            setup_form(&app, &headers, status, form.username, Some(error.public_message()))
        }
    }
}

/// A write-only setting as a form sets it: a new value, cleared, or (an empty field) kept
/// as `saved` has it.
fn write_only(typed: &str, clear: bool, saved: &WriteOnly) -> WriteOnly {
    match (typed.trim(), clear) {
        (_, true) => WriteOnly::Kept { set: false },
        ("", false) => WriteOnly::Kept { set: saved.is_set() },
        (new, false) => WriteOnly::New(new.to_string().into()),
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    totp: ServiceSwitches<TotpSettings>,
    totp_algorithm: &'static str,
    duo: ServiceSwitches<DuoSettings>,
    yubikey: ServiceSwitches<YubikeySettings>,
    yubikey_local: bool,
    yubikey_urls: String,
    yubikey_sync_level: String,
    /// The latest trouble with Duo this week: when (UTC), and what.
    duo_trouble: Option<(String, String)>,
    /// The latest trouble with the validation servers this week: when (UTC), and what.
    yubikey_trouble: Option<(String, String)>,
    force_clients: bool,
    force_admins: bool,
}

async fn settings_form(
    app: &App,
    caller: &Caller,
    settings: TwoFactorSettings,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let trouble = |service| async move {
        let latest = app.latest_trouble(service).await?;
        Ok::<_, Error>(latest.map(|(at, detail)| (crate::web::api::utc_text(at), detail)))
    };
    let (duo_trouble, yubikey_trouble) = match (trouble(ServiceId::Duo).await, trouble(ServiceId::Yubikey).await) {
        (Ok(duo), Ok(yubikey)) => (duo, yubikey),
        (Err(error), _) | (_, Err(error)) => return error_page(app, ADMIN, Some(caller), error),
    };
    let page = SettingsPage {
        duo_trouble,
        yubikey_trouble,
        layout: Layout::new(app, ADMIN, "Two-Factor Authentication", Some(caller)),
        error,
        notice,
        totp_algorithm: settings.services.totp.settings.algorithm.name(),
        totp: settings.services.totp,
        duo: settings.services.duo,
        yubikey_local: settings.services.yubikey.settings.mode == YubikeyMode::Local,
        yubikey_urls: settings.services.yubikey.settings.urls.join("\n"),
        yubikey_sync_level: settings
            .services
            .yubikey
            .settings
            .sync_level
            .map(|l| l.to_string())
            .unwrap_or_default(),
        yubikey: settings.services.yubikey,
        force_clients: settings.force_clients,
        force_admins: settings.force_admins,
    };
    render(status, page)
}

pub async fn settings_page(State(app): State<App>, caller: MaybeCaller) -> Response {
    let caller = match signed_in_admin(caller) {
        Ok(caller) => caller,
        Err(redirect) => return redirect.into_response(),
    };
    let result = async {
        require_full_admin(&caller.account)?;
        app.two_factor_settings().await
    }
    .await;
    match result {
        Ok(settings) => settings_form(&app, &caller, settings, StatusCode::OK, None, None).await,
        Err(error) => error_page(&app, ADMIN, Some(&caller), error),
    }
}

/// The settings form: unticked checkboxes are simply absent.
#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    totp_active: Option<String>,
    totp_clients: Option<String>,
    totp_admins: Option<String>,
    totp_window: String,
    totp_max_drift: String,
    totp_algorithm: String,
    totp_digits: String,
    duo_active: Option<String>,
    duo_clients: Option<String>,
    duo_admins: Option<String>,
    #[serde(default)]
    duo_mode: String,
    #[serde(default)]
    duo_integration_key: String,
    /// A new Secret Key; empty keeps the one set.
    #[serde(default)]
    duo_secret_key: String,
    duo_secret_key_clear: Option<String>,
    #[serde(default)]
    duo_api_hostname: String,
    #[serde(default)]
    duo_username: String,
    #[serde(default)]
    duo_failmode: String,
    yubikey_active: Option<String>,
    yubikey_clients: Option<String>,
    yubikey_admins: Option<String>,
    yubikey_mode: String,
    yubikey_client_id: String,
    /// A new Secret Key; empty keeps the one set.
    yubikey_api_key: String,
    yubikey_api_key_clear: Option<String>,
    /// One URL per line.
    yubikey_urls: String,
    yubikey_timeout_secs: String,
    yubikey_signed_counters: Option<String>,
    /// Empty: unset.
    yubikey_sync_level: Option<String>,
    force_clients: Option<String>,
    force_admins: Option<String>,
}

impl SettingsForm {
    /// The settings the form describes; `saved`: the settings now (an empty secret field
    /// keeps the secret set there).
    fn settings(&self, saved: &TwoFactorSettings) -> Result<TwoFactorSettings, Error> {
        let number = |text: &str, name: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| Error::Validation(format!("{name} must be a whole number.")))
        };
        Ok(TwoFactorSettings {
            services: crate::core::policy::Services {
                totp: ServiceSwitches {
                    active: self.totp_active.is_some(),
                    clients: self.totp_clients.is_some(),
                    admins: self.totp_admins.is_some(),
                    settings: TotpSettings {
                        window: number(&self.totp_window, "The window")?,
                        max_drift: number(&self.totp_max_drift, "The drift")?,
                        algorithm: Algorithm::from_name(&self.totp_algorithm)
                            .ok_or_else(|| Error::Validation("Choose SHA1, SHA256 or SHA512.".into()))?,
                        digits: number(&self.totp_digits, "Digits")?,
                    },
                },
                duo: ServiceSwitches {
                    active: self.duo_active.is_some(),
                    clients: self.duo_clients.is_some(),
                    admins: self.duo_admins.is_some(),
                    settings: DuoSettings {
                        mode: match self.duo_mode.as_str() {
                            "" | "auth_api" => DuoMode::AuthApi,
                            "universal_prompt" => DuoMode::UniversalPrompt,
                            _ => return Err(Error::Validation("Choose the kind of Duo application.".into())),
                        },
                        integration_key: self.duo_integration_key.trim().to_string(),
                        secret_key: write_only(
                            &self.duo_secret_key,
                            self.duo_secret_key_clear.is_some(),
                            &saved.services.duo.settings.secret_key,
                        ),
                        api_hostname: self.duo_api_hostname.trim().to_string(),
                        username: match self.duo_username.as_str() {
                            "email" => DuoUsername::Email,
                            _ => DuoUsername::Username,
                        },
                        failmode: match self.duo_failmode.as_str() {
                            "open" => FailMode::Open,
                            _ => FailMode::Closed,
                        },
                    },
                },
                yubikey: ServiceSwitches {
                    active: self.yubikey_active.is_some(),
                    clients: self.yubikey_clients.is_some(),
                    admins: self.yubikey_admins.is_some(),
                    settings: YubikeySettings {
                        mode: match self.yubikey_mode.as_str() {
                            "validation_server" => YubikeyMode::ValidationServer,
                            "local" => YubikeyMode::Local,
                            _ => return Err(Error::Validation("Choose how YubiKey OTPs are checked.".into())),
                        },
                        client_id: self.yubikey_client_id.trim().to_string(),
                        api_key: write_only(
                            &self.yubikey_api_key,
                            self.yubikey_api_key_clear.is_some(),
                            &saved.services.yubikey.settings.api_key,
                        ),
                        urls: self
                            .yubikey_urls
                            .lines()
                            .map(str::trim)
                            .filter(|url| !url.is_empty())
                            .map(String::from)
                            .collect(),
                        timeout_secs: number(&self.yubikey_timeout_secs, "The timeout")?,
                        signed_counters: self.yubikey_signed_counters.is_some(),
                        sync_level: match self.yubikey_sync_level.as_deref().map(str::trim) {
                            None | Some("") => None,
                            Some(text) => {
                                Some(text.parse().map_err(|_| {
                                    Error::Validation("The sync level is a percentage, 0 to 100.".into())
                                })?)
                            }
                        },
                    },
                },
            },
            force_clients: self.force_clients.is_some(),
            force_admins: self.force_admins.is_some(),
        })
    }
}

pub async fn save_settings(State(app): State<App>, caller: MaybeCaller, Form(form): Form<SettingsForm>) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    if let Err(error) = require_full_admin(&caller.account) {
        return error_page(&app, ADMIN, Some(&caller), error);
    }
    let saved = match app.two_factor_settings().await {
        Ok(saved) => saved,
        Err(error) => return error_page(&app, ADMIN, Some(&caller), error),
    };
    let result = match form.settings(&saved) {
        Ok(settings) => app
            .save_two_factor_settings(&caller.account, &settings, caller.remote())
            .await
            .map(|()| settings),
        Err(error) => Err(error),
    };
    match result {
        Ok(settings) => {
            settings_form(
                &app,
                &caller,
                settings,
                StatusCode::OK,
                None,
                Some("Settings saved.".into()),
            )
            .await
        }
        Err(error) => match app.two_factor_settings().await {
            Ok(saved) => {
                let status = error.status();
                settings_form(&app, &caller, saved, status, Some(error.public_message()), None).await
            }
            Err(error) => error_page(&app, ADMIN, Some(&caller), error),
        },
    }
}

#[derive(Template)]
#[template(path = "yubikeys.html")]
struct YubikeysPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    keys: Vec<ImportedKeySummary>,
}

impl YubikeysPage {
    fn when(&self, key: &ImportedKeySummary) -> String {
        crate::web::api::utc_text(key.imported_at)
    }
}

async fn yubikeys_form(
    app: &App,
    caller: &Caller,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    match app
        .list_imported_yubikeys(Operator::Administrator(&caller.account))
        .await
    {
        Ok(keys) => {
            let page = YubikeysPage {
                layout: Layout::new(app, ADMIN, "YubiKeys", Some(caller)),
                error,
                notice,
                keys,
            };
            render(status, page)
        }
        Err(error) => error_page(app, ADMIN, Some(caller), error),
    }
}

pub async fn yubikeys_page(State(app): State<App>, caller: MaybeCaller) -> Response {
    match signed_in_admin(caller) {
        Ok(caller) => yubikeys_form(&app, &caller, StatusCode::OK, None, None).await,
        Err(redirect) => redirect.into_response(),
    }
}

#[derive(Deserialize)]
pub struct ImportForm {
    csrf: String,
    keys: String,
    assign_to: String,
    assign_kind: String,
}

pub async fn import_yubikeys(State(app): State<App>, caller: MaybeCaller, Form(form): Form<ImportForm>) -> Response {
    let caller = match caller.posting(&app, ADMIN, SIGNED_IN, &form.csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let kind = AccountKind::parse(&form.assign_kind).unwrap_or(AccountKind::Client);
    let assign_to = Some(form.assign_to.trim())
        .filter(|name| !name.is_empty())
        .map(|name| (kind, name));
    let result = app
        .import_yubikeys(
            &form.keys,
            assign_to,
            Operator::Administrator(&caller.account),
            caller.remote(),
        )
        .await;
    match result {
        Ok(count) => {
            let notice = format!("Imported {count} key(s).");
            yubikeys_form(&app, &caller, StatusCode::OK, None, Some(notice)).await
        }
        Err(error) => {
            let status = error.status();
            yubikeys_form(&app, &caller, status, Some(error.public_message()), None).await
        }
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    layout: Layout,
    error: Option<String>,
    notice: Option<String>,
    accounts: Vec<AccountSummary>,
    is_admin_list: bool,
    can_manage: bool,
    /// The signed-in administrator: their own 2FA is turned off from My Account.
    own_id: i64,
}

impl AccountsPage {
    /// "On (Time-Based Tokens, Duo Security)" or "Off".
    fn two_factor_text(&self, account: &AccountSummary) -> String {
        if account.two_factor_services.is_empty() {
            return "Off".into();
        }
        let names: Vec<&str> = account
            .two_factor_services
            .iter()
            .map(|s| ServiceId::parse(s).map_or(s.as_str(), |id| id.display_name()))
            .collect();
        format!("On ({})", names.join(", "))
    }
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

async fn account_list(app: &App, caller: MaybeCaller, kind: AccountKind, done: Option<String>) -> Response {
    let caller = match signed_in_admin(caller) {
        Ok(caller) => caller,
        Err(redirect) => return redirect.into_response(),
    };
    let accounts = match app.list_accounts(&caller.account, kind).await {
        Ok(accounts) => accounts,
        Err(error) => return error_page(app, ADMIN, Some(&caller), error),
    };
    let notice = match done.as_deref() {
        Some("disabled") => Some("Two-Factor Authentication was disabled for the account.".to_string()),
        Some("unlocked") => Some("The account was unlocked.".to_string()),
        _ => None,
    };
    let title = match kind {
        AccountKind::Admin => "Administrators",
        AccountKind::Client => "Clients",
    };
    let page = AccountsPage {
        layout: Layout::new(app, ADMIN, title, Some(&caller)),
        error: None,
        notice,
        accounts,
        is_admin_list: kind == AccountKind::Admin,
        can_manage: require_full_admin(&caller.account).is_ok(),
        own_id: caller.account.id,
    };
    render(StatusCode::OK, page)
}

pub async fn administrators(State(app): State<App>, caller: MaybeCaller, Query(query): Query<Done>) -> Response {
    account_list(&app, caller, AccountKind::Admin, query.done).await
}

pub async fn clients(State(app): State<App>, caller: MaybeCaller, Query(query): Query<Done>) -> Response {
    account_list(&app, caller, AccountKind::Client, query.done).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

#[derive(Clone, Copy)]
enum AccountAction {
    DisableTwoFactor,
    Unlock,
}

impl AccountAction {
    /// The list page's `done=` notice.
    fn done(self) -> &'static str {
        match self {
            AccountAction::DisableTwoFactor => "disabled",
            AccountAction::Unlock => "unlocked",
        }
    }
}

/// Runs an action on an account from a list, then shows that list again.
async fn account_action(app: &App, caller: MaybeCaller, id: i64, csrf: &str, action: AccountAction) -> Response {
    let caller = match caller.posting(app, ADMIN, SIGNED_IN, csrf) {
        Ok(caller) => caller,
        Err(page) => return page,
    };
    let result = async {
        let account = app
            .store
            .account(id)
            .await?
            .ok_or_else(|| Error::NotFound("No such account.".into()))?;
        match action {
            AccountAction::DisableTwoFactor => {
                app.admin_disable_two_factor(&caller.account, &caller.session, id, caller.remote())
                    .await?
            }
            AccountAction::Unlock => {
                app.unlock(&caller.account, &caller.session, id, caller.remote())
                    .await?
            }
        }
        Ok::<_, Error>(account.kind)
    }
    .await;
    match result {
        Ok(AccountKind::Admin) => see_other(&format!("/admin/administrators?done={}", action.done())),
        Ok(AccountKind::Client) => see_other(&format!("/admin/clients?done={}", action.done())),
        Err(error) => error_page(app, ADMIN, Some(&caller), error),
    }
}

pub async fn disable_two_factor(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    account_action(&app, caller, id, &form.csrf, AccountAction::DisableTwoFactor).await
}

pub async fn unlock(
    State(app): State<App>,
    caller: MaybeCaller,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    account_action(&app, caller, id, &form.csrf, AccountAction::Unlock).await
}
