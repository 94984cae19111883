//! Who may use which second factor, and what a login must do next.
//!
//! The administrator activates each service and enables it for clients and/or
//! administrative users; "force" settings make users without 2FA enrol at their next login.
//! An account that has enrolled always needs its second factor, even if the administrator
//! later deactivates the service: a factor is never dropped silently.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::hotp::Algorithm;
use super::totp::{TotpParams, VerifyPolicy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    Admin,
    Client,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Admin => "admin",
            AccountKind::Client => "client",
        }
    }

    pub fn parse(text: &str) -> Option<AccountKind> {
        match text {
            "admin" => Some(AccountKind::Admin),
            "client" => Some(AccountKind::Client),
            _ => None,
        }
    }
}

/// An administrator's role; clients have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Full,
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Full => "full",
            Role::Staff => "staff",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "full" => Some(Role::Full),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }
}

/// A kind of second factor. Duo Security, YubiKey and WebAuthn join here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceId {
    Totp,
    Duo,
    Yubikey,
}

impl ServiceId {
    pub const ALL: [ServiceId; 3] = [ServiceId::Totp, ServiceId::Duo, ServiceId::Yubikey];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceId::Totp => "totp",
            ServiceId::Duo => "duo",
            ServiceId::Yubikey => "yubikey",
        }
    }

    pub fn parse(text: &str) -> Option<ServiceId> {
        ServiceId::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The name the product documents use.
    pub fn display_name(self) -> &'static str {
        match self {
            ServiceId::Totp => "Time-Based Tokens",
            ServiceId::Duo => "Duo Security",
            ServiceId::Yubikey => "YubiKey",
        }
    }
}

/// A service's switches on the settings page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceSwitches<S> {
    pub active: bool,
    pub clients: bool,
    pub admins: bool,
    pub settings: S,
}

impl<S> ServiceSwitches<S> {
    pub fn enabled_for(&self, kind: AccountKind) -> bool {
        self.active
            && match kind {
                AccountKind::Client => self.clients,
                AccountKind::Admin => self.admins,
            }
    }
}

/// Time-Based Tokens' own settings form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpSettings {
    /// Steps accepted either side of the expected one (0 = current step only).
    pub window: u32,
    /// Largest device clock offset, in steps, that is remembered per account.
    pub max_drift: u32,
    /// Hash for new enrolments: SHA1 (works in every app), SHA256 or SHA512.
    #[schema(value_type = String)]
    pub algorithm: Algorithm,
    /// Digits of new enrolments: 6 (works in every app) or 8.
    pub digits: u32,
}

impl Default for TotpSettings {
    fn default() -> Self {
        let params = TotpParams::default();
        let policy = VerifyPolicy::default();
        TotpSettings {
            window: policy.window,
            max_drift: policy.max_drift,
            algorithm: params.algorithm,
            digits: params.digits,
        }
    }
}

impl TotpSettings {
    pub const MAX_WINDOW: u32 = 3;
    pub const MAX_DRIFT: u32 = 10;

    pub fn verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            window: self.window,
            max_drift: self.max_drift,
        }
    }

    pub fn enrolment_params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: TotpParams::default().period,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.window > Self::MAX_WINDOW {
            return Err(format!("totp.window must be between 0 and {}", Self::MAX_WINDOW));
        }
        if self.max_drift > Self::MAX_DRIFT {
            return Err(format!("totp.max_drift must be between 0 and {}", Self::MAX_DRIFT));
        }
        if !matches!(self.digits, 6 | 8) {
            return Err("totp.digits must be 6 or 8".into());
        }
        Ok(())
    }
}

/// How YubiKey OTPs are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum YubikeyMode {
    /// By Yubico OTP validation servers (protocol 2.0): YubiCloud, or the operator's own.
    #[default]
    ValidationServer,
    /// By Twofold itself, with each key's AES key imported by an administrator.
    Local,
}

/// YubiKey's own settings form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct YubikeySettings {
    pub mode: YubikeyMode,
    /// The API client's ID at the validation servers (a number; YubiCloud gives one).
    pub client_id: String,
    /// The API client's Secret Key, base64, as the validation server gave it. Write-only.
    pub api_key: WriteOnly,
    /// The validation servers' verify URLs, asked in parallel.
    pub urls: Vec<String>,
    /// How long to wait for the validation servers, in seconds.
    pub timeout_secs: u32,
    /// Ask for the key's counters (`timestamp=1`) and keep them as the replay counter. Only
    /// for servers that sign those fields (YubiCloud does; Debian's yubiserver does not).
    pub signed_counters: bool,
    /// The `sl` to ask for: the share (0–100) of a pool's servers that must agree. Unset by
    /// default (the server's own); only for servers that sign it (yubiserver does not).
    #[serde(default)]
    pub sync_level: Option<u8>,
}

impl Default for YubikeySettings {
    fn default() -> Self {
        YubikeySettings {
            mode: YubikeyMode::ValidationServer,
            client_id: String::new(),
            api_key: WriteOnly::default(),
            urls: vec![Self::YUBICLOUD.to_string()],
            timeout_secs: 5,
            signed_counters: false,
            sync_level: None,
        }
    }
}

impl YubikeySettings {
    pub const YUBICLOUD: &'static str = "https://api.yubico.com/wsapi/2.0/verify";
    pub const MAX_TIMEOUT_SECS: u32 = 30;
    pub const MAX_URLS: usize = 5;

    fn validate(&self, active: bool) -> Result<(), String> {
        if !(1..=Self::MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!(
                "yubikey.timeout_secs must be between 1 and {}",
                Self::MAX_TIMEOUT_SECS
            ));
        }
        if self.sync_level.is_some_and(|level| level > 100) {
            return Err("yubikey.sync_level is a percentage, 0 to 100".into());
        }
        if self.urls.len() > Self::MAX_URLS {
            return Err(format!("yubikey.urls: at most {} validation servers", Self::MAX_URLS));
        }
        for url in &self.urls {
            validation_url(url).map_err(|problem| format!("yubikey.urls: {url:?} {problem}"))?;
        }
        if !self.client_id.is_empty() && !self.client_id.chars().all(|c| c.is_ascii_digit()) {
            return Err("yubikey.client_id is the number the validation server gave (digits only)".into());
        }
        if let WriteOnly::New(key) = &self.api_key {
            api_key_bytes(key.expose_secret())?;
        }
        if active && self.mode == YubikeyMode::ValidationServer {
            if self.client_id.is_empty() || !self.api_key.is_set() {
                return Err("yubikey: a validation server needs the Client ID and the Secret Key".into());
            }
            if self.urls.is_empty() {
                return Err("yubikey.urls: name at least one validation server".into());
            }
        }
        Ok(())
    }
}

/// A Yubico API key: the base64 text the validation server gave, decoded.
pub fn api_key_bytes(text: &str) -> Result<Vec<u8>, String> {
    data_encoding::BASE64
        .decode(text.trim().as_bytes())
        .ok()
        .filter(|key| !key.is_empty())
        .ok_or_else(|| "yubikey.api_key is the Secret Key in base64, as the validation server gave it".to_string())
}

/// Whether `url` is a validation server's verify URL: `http` or `https`, a host, no user,
/// query or fragment (Twofold adds the query).
fn validation_url(url: &str) -> Result<(), &'static str> {
    let parsed = url::Url::parse(url).map_err(|_| "is not a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must start with https:// (or http://: answers are signed)");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold a user name or password");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment: Twofold adds the query");
    }
    Ok(())
}

/// Which kind of Duo application Twofold is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DuoMode {
    /// An "Auth API" application: Integration Key, Secret Key, API Hostname.
    #[default]
    AuthApi,
    /// A "Web SDK" application (the Universal Prompt): Client ID, Client Secret, API Hostname.
    UniversalPrompt,
}

/// What names an account at Duo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DuoUsername {
    #[default]
    Username,
    Email,
}

/// What a login does when Duo cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Deny the login.
    #[default]
    Closed,
    /// Let the password-authenticated user in, audited as such: a risk.
    Open,
}

/// Duo Security's own settings form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuoSettings {
    pub mode: DuoMode,
    /// The Integration Key (Auth API) or Client ID (Universal Prompt): 20 characters.
    pub integration_key: String,
    /// The Secret Key (Auth API) or Client Secret (Universal Prompt): 40 characters.
    /// Write-only.
    pub secret_key: WriteOnly,
    /// `api-XXXXXXXX.duosecurity.com`: a host name with an optional port, nothing else.
    pub api_hostname: String,
    /// What is sent to Duo as the account's name.
    pub username: DuoUsername,
    pub failmode: FailMode,
}

impl DuoSettings {
    /// Whether the three parts of the integration are all there (a check can be made).
    pub fn is_complete(&self) -> bool {
        !self.integration_key.is_empty() && self.secret_key.is_set() && !self.api_hostname.is_empty()
    }

    fn validate(&self, active: bool) -> Result<(), String> {
        let key = &self.integration_key;
        let well_formed = key.len() == 20 && key.chars().all(|c| c.is_ascii_alphanumeric());
        if !key.is_empty() && !well_formed {
            return Err(
                "duo.integration_key is the 20 letters and digits Duo shows (such as DIXXXXXXXXXXXXXXXXXX)".into(),
            );
        }
        if let WriteOnly::New(key) = &self.secret_key {
            let key = key.expose_secret();
            if key.len() != 40 || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err("duo.secret_key is the 40 characters Duo shows".into());
            }
        }
        if !self.api_hostname.is_empty() {
            api_hostname(&self.api_hostname)?;
        }
        if active && !self.is_complete() {
            return Err("duo: activating it needs the integration key, the secret key and the API hostname".into());
        }
        Ok(())
    }
}

/// Whether `text` is an API hostname: a host name (letters, digits, dots, dashes) and an
/// optional port; no scheme, user, path or anything else.
fn api_hostname(text: &str) -> Result<(), String> {
    let refused = || {
        format!("duo.api_hostname {text:?} is a host name with an optional port, such as api-XXXXXXXX.duosecurity.com")
    };
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-']);
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(refused())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub totp: ServiceSwitches<TotpSettings>,
    /// Off until an administrator activates it (settings saved before it existed lack it).
    #[serde(default)]
    pub duo: ServiceSwitches<DuoSettings>,
    /// Off until an administrator activates it (settings saved before it existed lack it).
    #[serde(default)]
    pub yubikey: ServiceSwitches<YubikeySettings>,
}

impl Services {
    /// Every write-only setting of every service (a Duo Secret Key, a Yubico API key), by
    /// service and name. A service with secrets lists its fields here.
    pub fn secrets_mut(&mut self) -> Vec<SecretSetting<'_>> {
        let Services { totp: _, duo, yubikey } = self; // Time-Based Tokens has no secret setting.
        vec![
            SecretSetting {
                service: ServiceId::Duo,
                name: "secret_key",
                value: &mut duo.settings.secret_key,
            },
            SecretSetting {
                service: ServiceId::Yubikey,
                name: "api_key",
                value: &mut yubikey.settings.api_key,
            },
        ]
    }
}

/// One write-only setting, as [`Services::secrets_mut`] lists it.
pub struct SecretSetting<'a> {
    pub service: ServiceId,
    pub name: &'static str,
    pub value: &'a mut WriteOnly,
}

/// A write-only setting (a Secret Key, an API key). The settings document says only whether
/// it is set, `{"set": true}`; a `PUT` sends that object back to keep the value (or
/// `{"set": false}` to clear it), or a string to replace it. The value itself is sealed in
/// its own table: never in the settings document, an answer, a page, a log or the audit.
#[derive(Debug)]
pub enum WriteOnly {
    Kept { set: bool },
    New(SecretString),
}

impl WriteOnly {
    pub fn is_set(&self) -> bool {
        match self {
            WriteOnly::Kept { set } => *set,
            WriteOnly::New(_) => true,
        }
    }
}

impl Default for WriteOnly {
    fn default() -> Self {
        WriteOnly::Kept { set: false }
    }
}

impl Clone for WriteOnly {
    fn clone(&self) -> Self {
        match self {
            WriteOnly::Kept { set } => WriteOnly::Kept { set: *set },
            WriteOnly::New(value) => WriteOnly::New(SecretString::from(value.expose_secret())),
        }
    }
}

/// A new value always counts as a change, even if it happens to equal the old one.
impl PartialEq for WriteOnly {
    fn eq(&self, other: &Self) -> bool {
        matches!((self, other), (WriteOnly::Kept { set: a }, WriteOnly::Kept { set: b }) if a == b)
    }
}

impl Eq for WriteOnly {}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFlag {
    set: bool,
}

impl Serialize for WriteOnly {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SetFlag { set: self.is_set() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WriteOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Sent {
            Value(String),
            Flag(SetFlag),
        }
        match Sent::deserialize(deserializer) {
            Ok(Sent::Value(value)) => Ok(WriteOnly::New(SecretString::from(value))),
            Ok(Sent::Flag(SetFlag { set })) => Ok(WriteOnly::Kept { set }),
            Err(_) => Err(serde::de::Error::custom(
                r#"a secret setting is a new value (a string), or {"set": true} to keep it"#,
            )),
        }
    }
}

impl utoipa::PartialSchema for WriteOnly {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A new value.")),
            )
            .item(
                ObjectBuilder::new()
                    .property("set", ObjectBuilder::new().schema_type(Type::Boolean))
                    .required("set")
                    .description(Some(
                        "Answered: whether a value is set. Sent back: keep it (true) or clear it (false).",
                    )),
            )
            .into()
    }
}

impl utoipa::ToSchema for WriteOnly {}

/// System settings > Two-Factor Authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorSettings {
    pub services: Services,
    /// Force client users to enable 2FA on next login.
    pub force_clients: bool,
    /// Force administrative users to enable 2FA on next login.
    pub force_admins: bool,
}

impl Default for TwoFactorSettings {
    /// Time-Based Tokens active for both kinds of account; nobody forced.
    fn default() -> Self {
        TwoFactorSettings {
            services: Services {
                totp: ServiceSwitches {
                    active: true,
                    clients: true,
                    admins: true,
                    settings: TotpSettings::default(),
                },
                duo: ServiceSwitches::default(),
                yubikey: ServiceSwitches::default(),
            },
            force_clients: false,
            force_admins: false,
        }
    }
}

/// What a login does once the password is right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextStep {
    Authenticated,
    SecondFactor(ServiceId),
    Enrolment(Vec<ServiceId>),
}

impl TwoFactorSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.services.totp.settings.validate()?;
        self.services.duo.settings.validate(self.services.duo.active)?;
        let yubikey = &self.services.yubikey;
        yubikey.settings.validate(yubikey.active)
    }

    /// Services a kind of account may enrol in: activated and enabled for that kind.
    pub fn enabled_for(&self, kind: AccountKind) -> Vec<ServiceId> {
        ServiceId::ALL
            .into_iter()
            .filter(|service| match service {
                ServiceId::Totp => self.services.totp.enabled_for(kind),
                ServiceId::Duo => self.services.duo.enabled_for(kind),
                ServiceId::Yubikey => self.services.yubikey.enabled_for(kind),
            })
            .collect()
    }

    pub fn forced(&self, kind: AccountKind) -> bool {
        match kind {
            AccountKind::Client => self.force_clients,
            AccountKind::Admin => self.force_admins,
        }
    }

    pub fn next_step(&self, kind: AccountKind, enrolled: Option<ServiceId>) -> NextStep {
        if let Some(service) = enrolled {
            return NextStep::SecondFactor(service);
        }
        let available = self.enabled_for(kind);
        if self.forced(kind) && !available.is_empty() {
            NextStep::Enrolment(available)
        } else {
            NextStep::Authenticated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_only_setting_answers_only_whether_it_is_set() {
        let new: WriteOnly = serde_json::from_str(r#""s3cret-value""#).unwrap();
        assert!(matches!(&new, WriteOnly::New(v) if v.expose_secret() == "s3cret-value"));
        assert_eq!(serde_json::to_string(&new).unwrap(), r#"{"set":true}"#);
        assert!(!format!("{new:?}").contains("s3cret"), "Debug never shows the value");
        let kept: WriteOnly = serde_json::from_str(r#"{"set":true}"#).unwrap();
        assert_eq!(kept, WriteOnly::Kept { set: true });
        assert_ne!(new, kept, "a new value always counts as a change");
        assert_eq!(
            serde_json::to_string(&WriteOnly::default()).unwrap(),
            r#"{"set":false}"#
        );
        for refused in ["42", "null", r#"{"set":"yes"}"#, r#"{"set":true,"value":"x"}"#] {
            let error = serde_json::from_str::<WriteOnly>(refused).unwrap_err().to_string();
            assert!(error.contains("a secret setting is a new value"), "{refused}: {error}");
        }
    }

    #[test]
    fn defaults_enable_totp_for_both_and_force_nobody() {
        let settings = TwoFactorSettings::default();
        assert_eq!(settings.enabled_for(AccountKind::Admin), vec![ServiceId::Totp]);
        assert_eq!(settings.enabled_for(AccountKind::Client), vec![ServiceId::Totp]);
        assert_eq!(settings.next_step(AccountKind::Client, None), NextStep::Authenticated);
    }

    #[test]
    fn an_enrolled_account_always_needs_its_factor() {
        let mut settings = TwoFactorSettings::default();
        settings.services.totp.active = false;
        assert_eq!(
            settings.next_step(AccountKind::Admin, Some(ServiceId::Totp)),
            NextStep::SecondFactor(ServiceId::Totp)
        );
    }

    #[test]
    fn forcing_applies_per_kind_and_only_with_a_service_to_enrol_in() {
        let mut settings = TwoFactorSettings {
            force_clients: true,
            ..TwoFactorSettings::default()
        };
        assert_eq!(
            settings.next_step(AccountKind::Client, None),
            NextStep::Enrolment(vec![ServiceId::Totp])
        );
        assert_eq!(settings.next_step(AccountKind::Admin, None), NextStep::Authenticated);
        settings.services.totp.clients = false;
        assert_eq!(settings.next_step(AccountKind::Client, None), NextStep::Authenticated);
    }

    #[test]
    fn a_duo_api_hostname_is_a_host_and_an_optional_port_only() {
        for good in ["api-1234abcd.duosecurity.com", "127.0.0.1:8443", "duo.internal"] {
            assert_eq!(api_hostname(good), Ok(()), "{good}");
        }
        for bad in [
            "https://api-1234abcd.duosecurity.com",
            "api.example.com/path",
            "api.example.com:0",
            "api.example.com:99999",
            "user@api.example.com",
            "-api.example.com",
            "api example.com",
            ":443",
        ] {
            assert!(api_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duo_keys_have_duos_lengths() {
        let mut duo = DuoSettings {
            integration_key: "DIWJ8X6AEYOR5OMC6TQ1".into(),
            secret_key: WriteOnly::New("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into()),
            api_hostname: "api-1234abcd.duosecurity.com".into(),
            ..DuoSettings::default()
        };
        assert_eq!(duo.validate(false), Ok(()));
        assert_eq!(duo.validate(true), Ok(()));
        duo.integration_key = "DIWJ8X6AEYOR5OMC6TQ".into();
        assert!(duo.validate(false).unwrap_err().contains("integration_key"));
        duo.integration_key = "DIWJ8X6AEYOR5OMC6TQ1".into();
        duo.secret_key = WriteOnly::New("short".into());
        assert!(duo.validate(false).unwrap_err().contains("secret_key"));
        let empty = DuoSettings::default();
        assert!(empty.validate(true).unwrap_err().contains("needs the integration key"));
    }

    #[test]
    fn settings_are_validated() {
        let mut settings = TwoFactorSettings::default();
        settings.services.totp.settings.window = 4;
        assert!(settings.validate().unwrap_err().contains("totp.window"));
        settings.services.totp.settings.window = 0;
        settings.services.totp.settings.digits = 7;
        assert!(settings.validate().unwrap_err().contains("digits"));
    }
}
