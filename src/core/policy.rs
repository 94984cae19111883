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
}

impl ServiceId {
    pub const ALL: [ServiceId; 1] = [ServiceId::Totp];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceId::Totp => "totp",
        }
    }

    pub fn parse(text: &str) -> Option<ServiceId> {
        ServiceId::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The name the product documents use.
    pub fn display_name(self) -> &'static str {
        match self {
            ServiceId::Totp => "Time-Based Tokens",
        }
    }
}

/// A service's switches on the settings page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub totp: ServiceSwitches<TotpSettings>,
}

impl Services {
    /// Every write-only setting of every service (a Duo Secret Key, a Yubico API key), by
    /// service and name. A service with secrets lists its fields here.
    pub fn secrets_mut(&mut self) -> Vec<SecretSetting<'_>> {
        let Services { totp: _ } = self; // Time-Based Tokens has no secret setting.
        Vec::new()
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
        self.services.totp.settings.validate()
    }

    /// Services a kind of account may enrol in: activated and enabled for that kind.
    pub fn enabled_for(&self, kind: AccountKind) -> Vec<ServiceId> {
        ServiceId::ALL
            .into_iter()
            .filter(|service| match service {
                ServiceId::Totp => self.services.totp.enabled_for(kind),
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
    fn settings_are_validated() {
        let mut settings = TwoFactorSettings::default();
        settings.services.totp.settings.window = 4;
        assert!(settings.validate().unwrap_err().contains("totp.window"));
        settings.services.totp.settings.window = 0;
        settings.services.totp.settings.digits = 7;
        assert!(settings.validate().unwrap_err().contains("digits"));
    }
}
