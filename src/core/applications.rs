//! Applications that ask Twofold for the second factor, and their API keys.
//!
//! A key is `tfk_<key id>_<secret>`: the key id is public (it names the key in lists and in
//! the audit), the secret is 32 random bytes in base64url, stored only as HMAC-SHA-256 under
//! a key derived from the master key and compared in constant time. A tool that can only
//! send HTTP Basic sends `key_id:secret`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::policy::AccountKind;

pub const KEY_PREFIX: &str = "tfk_";
/// The length of a key id (letters and digits).
pub const KEY_ID_LENGTH: usize = 12;

/// The kinds of account an application may act for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kinds {
    Admin,
    Client,
    Both,
}

impl Kinds {
    pub fn as_str(self) -> &'static str {
        match self {
            Kinds::Admin => "admin",
            Kinds::Client => "client",
            Kinds::Both => "both",
        }
    }

    pub fn parse(text: &str) -> Option<Kinds> {
        [Kinds::Admin, Kinds::Client, Kinds::Both]
            .into_iter()
            .find(|kinds| kinds.as_str() == text)
    }

    pub fn allows(self, kind: AccountKind) -> bool {
        matches!(
            (self, kind),
            (Kinds::Both, _) | (Kinds::Admin, AccountKind::Admin) | (Kinds::Client, AccountKind::Client)
        )
    }
}

/// What an application may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Check codes (`/validate/preauth`, `/validate/check`, `/validate/radius`).
    Check,
    /// Start and poll challenges that need a wait (a Duo push).
    Challenge,
    /// Create accounts and enrolment links.
    Accounts,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Check, Scope::Challenge, Scope::Accounts];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Check => "check",
            Scope::Challenge => "challenge",
            Scope::Accounts => "accounts",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

/// Scopes as stored: comma-separated, sorted, without repeats.
pub fn scopes_text(scopes: &[Scope]) -> String {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

pub fn parse_scopes(text: &str) -> Vec<Scope> {
    text.split(',').filter_map(Scope::parse).collect()
}

/// An application's name: 1 to 64 characters, no control characters.
pub fn check_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("name is 1 to 64 characters, without control characters".into());
    }
    Ok(name)
}

/// An application's own identifier for an account (`external_id`): 1 to 128 characters,
/// no control characters, kept exactly as sent.
pub fn check_external_id(external_id: &str) -> Result<&str, String> {
    let length = external_id.chars().count();
    if !(1..=128).contains(&length) || external_id.chars().any(char::is_control) || external_id.trim() != external_id {
        return Err("external_id is 1 to 128 characters, without control characters or surrounding spaces".into());
    }
    Ok(external_id)
}

/// The networks an application may call from, each a CIDR (`10.0.0.0/8`) or an address.
pub fn parse_networks(networks: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    networks
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<::core::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("networks: {text:?} is not a network (such as 10.0.0.0/8) or an address"))
        })
        .collect()
}

/// Whether `address` may call: any address when no network is listed.
pub fn network_allows(networks: &[ipnet::IpNet], address: Option<::core::net::IpAddr>) -> bool {
    networks.is_empty() || address.is_some_and(|ip| networks.iter().any(|net| net.contains(&ip)))
}

/// The account a RADIUS `User-Name` names: `name@client` or `name@admin` chooses the kind;
/// a bare name is of the application's only kind. `None` when the kind cannot be told (a
/// bare name for an application of both kinds) or the name is empty.
pub fn radius_user(user_name: &str, kinds: Kinds) -> Option<(AccountKind, &str)> {
    let suffixed = [("@client", AccountKind::Client), ("@admin", AccountKind::Admin)]
        .into_iter()
        .find_map(|(suffix, kind)| Some((kind, user_name.strip_suffix(suffix)?)));
    let (kind, name) = match (suffixed, kinds) {
        (Some(found), _) => found,
        (None, Kinds::Client) => (AccountKind::Client, user_name),
        (None, Kinds::Admin) => (AccountKind::Admin, user_name),
        (None, Kinds::Both) => return None,
    };
    (!name.is_empty()).then_some((kind, name))
}

/// A key as the application sends it.
pub fn key_text(key_id: &str, secret: &str) -> String {
    format!("{KEY_PREFIX}{key_id}_{secret}")
}

/// The key id and secret of `tfk_<key id>_<secret>`.
pub fn parse_key(text: &str) -> Option<(&str, &str)> {
    let (key_id, secret) = text.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    well_formed(key_id, secret).then_some((key_id, secret))
}

fn well_formed(key_id: &str, secret: &str) -> bool {
    key_id.len() == KEY_ID_LENGTH
        && key_id.chars().all(|c| c.is_ascii_alphanumeric())
        && !secret.is_empty()
        && secret.len() <= 128
}

/// The key id and secret an `Authorization` header carries: `Bearer tfk_...`, or `Basic`
/// with `key_id:secret`.
pub fn from_authorization(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return parse_key(value).map(|(id, secret)| (id.to_string(), secret.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = data_encoding::BASE64.decode(value.as_bytes()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (key_id, secret) = decoded.split_once(':')?;
        return well_formed(key_id, secret).then(|| (key_id.to_string(), secret.to_string()));
    }
    None
}

/// The stored form of a key's secret.
pub fn secret_hash(hash_key: &[u8; 32], key_id: &str, secret: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key).unwrap_or_else(|_| unreachable!());
    mac.update(key_id.as_bytes());
    mac.update(b":");
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Whether `secret` is the one stored as `stored`, in constant time.
pub fn secret_matches(hash_key: &[u8; 32], key_id: &str, secret: &str, stored: &[u8]) -> bool {
    bool::from(secret_hash(hash_key, key_id, secret).ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "AbCdEf012345";

    #[test]
    fn a_key_reads_back_from_its_text_and_from_either_header() {
        let secret = "s3cr3t-with_underscores";
        let text = key_text(KEY_ID, secret);
        assert_eq!(parse_key(&text), Some((KEY_ID, secret)));
        let expected = Some((KEY_ID.to_string(), secret.to_string()));
        assert_eq!(from_authorization(&format!("Bearer {text}")), expected);
        let basic = data_encoding::BASE64.encode(format!("{KEY_ID}:{secret}").as_bytes());
        assert_eq!(from_authorization(&format!("Basic {basic}")), expected);
        for bad in [
            "",
            "Bearer",
            "Bearer tfk_",
            "Bearer tfk_short_x",
            "Token tfk_AbCdEf012345_x",
            "Basic !!",
        ] {
            assert_eq!(from_authorization(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_right_secret_matches_its_hash() {
        let key = [7; 32];
        let stored = secret_hash(&key, KEY_ID, "right");
        assert!(secret_matches(&key, KEY_ID, "right", &stored));
        assert!(!secret_matches(&key, KEY_ID, "wrong", &stored));
        assert!(
            !secret_matches(&key, "AbCdEf012346", "right", &stored),
            "bound to its key id"
        );
        assert!(
            !secret_matches(&[8; 32], KEY_ID, "right", &stored),
            "bound to the server's key"
        );
    }

    #[test]
    fn networks_are_cidr_or_addresses_and_none_means_anywhere() {
        let nets = parse_networks(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        assert!(network_allows(&nets, Some("10.1.2.3".parse().unwrap())));
        assert!(network_allows(&nets, Some("192.0.2.7".parse().unwrap())));
        assert!(!network_allows(&nets, Some("192.0.2.8".parse().unwrap())));
        assert!(!network_allows(&nets, None));
        assert!(network_allows(&[], None));
        assert!(parse_networks(&["10.0.0.0/33".into()]).is_err());
    }

    #[test]
    fn an_external_id_is_kept_as_sent_or_refused() {
        assert_eq!(check_external_id("crm-00042"), Ok("crm-00042"));
        assert_eq!(check_external_id("Ünïcode ok"), Ok("Ünïcode ok"));
        assert!(check_external_id("").is_err());
        assert!(check_external_id(" padded").is_err());
        assert!(check_external_id("line\nbreak").is_err());
        assert!(check_external_id(&"x".repeat(129)).is_err());
        assert!(check_external_id(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn a_radius_user_name_chooses_the_kind_by_its_suffix() {
        assert_eq!(
            radius_user("alice@client", Kinds::Both),
            Some((AccountKind::Client, "alice"))
        );
        assert_eq!(
            radius_user("root@example.com@admin", Kinds::Both),
            Some((AccountKind::Admin, "root@example.com"))
        );
        assert_eq!(
            radius_user("alice@example.com", Kinds::Client),
            Some((AccountKind::Client, "alice@example.com"))
        );
        assert_eq!(radius_user("alice", Kinds::Admin), Some((AccountKind::Admin, "alice")));
        assert_eq!(radius_user("alice", Kinds::Both), None, "which kind?");
        assert_eq!(radius_user("@client", Kinds::Client), None);
    }

    #[test]
    fn kinds_and_scopes() {
        assert!(Kinds::Client.allows(AccountKind::Client) && !Kinds::Client.allows(AccountKind::Admin));
        assert!(Kinds::Both.allows(AccountKind::Admin));
        assert_eq!(
            scopes_text(&[Scope::Accounts, Scope::Check, Scope::Check]),
            "check,accounts"
        );
        assert_eq!(parse_scopes("check,accounts"), [Scope::Check, Scope::Accounts]);
    }
}
