//! Applications that ask Twofold for the second factor (a web product with its own login, a
//! VPN through RADIUS): a full administrator (or the command line) registers them and
//! their keys; each call of the validate API is authenticated by a key.

use serde::Serialize;
use utoipa::ToSchema;

use super::admin::Operator;
use super::{Error, Services};
use crate::core::applications::{
    check_name, key_text, network_allows, parse_networks, parse_scopes, scopes_text, secret_hash, secret_matches,
    Kinds, Scope, KEY_ID_LENGTH,
};
use crate::core::policy::AccountKind;
use crate::random;
use crate::store::{ApplicationRow, KeyRow, NewKey};

/// What an administrator registers.
pub struct NewApplication {
    pub name: String,
    pub kinds: Kinds,
    pub scopes: Vec<Scope>,
    /// CIDR (or addresses) it may call from; none: anywhere.
    pub networks: Vec<String>,
    /// Whether its users without a second factor may pass (`preauth` answers `allow`).
    pub allow_unenrolled: bool,
}

/// An application as the administrators' list shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApplicationSummary {
    pub id: i64,
    pub name: String,
    pub kinds: Kinds,
    pub scopes: Vec<Scope>,
    pub networks: Vec<String>,
    pub active: bool,
    /// Whether its users without a second factor may pass (`preauth` answers `allow`).
    pub allow_unenrolled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub keys: Vec<KeySummary>,
}

/// One of its keys, never with its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeySummary {
    pub key_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new key, shown this once: only its hash is kept.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    pub key_id: String,
    /// `tfk_<key id>_<secret>`: send it as `Authorization: Bearer ...`.
    pub key: String,
}

/// An application authenticated by one of its keys, for one call.
#[derive(Clone, Debug)]
pub struct AppCaller {
    pub id: i64,
    pub name: String,
    pub key_id: String,
    pub kinds: Kinds,
    pub scopes: Vec<Scope>,
    pub allow_unenrolled: bool,
    /// The caller's address, as the connection (or a trusted proxy) gives it.
    pub remote: Option<String>,
}

impl AppCaller {
    /// Whether it may do `scope` for an account of `kind`.
    pub fn require(&self, scope: Scope, kind: AccountKind) -> Result<(), Error> {
        if self.scopes.contains(&scope) && self.kinds.allows(kind) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

fn summary(app: ApplicationRow, keys: &[KeyRow]) -> Result<ApplicationSummary, Error> {
    Ok(ApplicationSummary {
        id: app.id,
        kinds: Kinds::parse(&app.kinds)
            .ok_or_else(|| Error::Internal(format!("application {} has kinds {:?}", app.id, app.kinds)))?,
        scopes: parse_scopes(&app.scopes),
        networks: network_list(&app.networks),
        active: app.suspended_at.is_none(),
        allow_unenrolled: app.allow_unenrolled,
        created_at: app.created_at,
        name: app.name,
        keys: keys
            .iter()
            .filter(|key| key.application_id == app.id)
            .map(|key| KeySummary {
                key_id: key.key_id.clone(),
                created_at: key.created_at,
                last_used_at: key.last_used_at,
                expires_at: key.expires_at,
                revoked_at: key.revoked_at,
            })
            .collect(),
    })
}

impl Services {
    /// A new key's id and secret, and what the database keeps of it.
    fn new_key(&self, expires_in_days: Option<u32>) -> Result<(IssuedKey, Vec<u8>, Option<i64>), Error> {
        let key_id = random::alphanumeric(KEY_ID_LENGTH)?;
        let secret = random::token()?;
        let hash = secret_hash(&self.application_key_hash_key, &key_id, &secret);
        let expires_at = expires_in_days.map(|days| self.now() + i64::from(days) * 86_400);
        let key = key_text(&key_id, &secret);
        Ok((IssuedKey { key_id, key }, hash, expires_at))
    }

    /// Registers an application with its first key (shown once).
    pub async fn create_application(
        &self,
        new: &NewApplication,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(i64, IssuedKey), Error> {
        let by = by.authorize()?;
        let name = check_name(&new.name).map_err(Error::Validation)?;
        let networks = parse_networks(&new.networks).map_err(Error::Validation)?;
        if new.scopes.is_empty() {
            return Err(Error::Validation(
                "scopes: give at least one of check, challenge, accounts".into(),
            ));
        }
        let row = ApplicationRow {
            id: 0,
            name: name.to_string(),
            kinds: new.kinds.as_str().into(),
            scopes: scopes_text(&new.scopes),
            networks: networks.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
            suspended_at: None,
            created_at: self.now(),
            allow_unenrolled: new.allow_unenrolled,
        };
        let (issued, hash, expires_at) = self.new_key(None)?;
        let key = NewKey {
            key_id: &issued.key_id,
            secret_hash: &hash,
            expires_at,
        };
        let id = self
            .store
            .create_application(&row, &key, self.now())
            .await
            .map_err(|error| match Error::from(error) {
                Error::Conflict(_) => Error::Conflict(format!("An application is already named {name:?}.")),
                other => other,
            })?;
        let policy = match new.allow_unenrolled {
            true => ", unenrolled users may pass",
            false => "",
        };
        let detail = format!("application {id} {name:?}, key {}{policy}, {by}", issued.key_id);
        self.audit(None, "application_created", "success", remote, Some(&detail))
            .await;
        Ok((id, issued))
    }

    /// Adds a key to an application (rotation: the old ones keep working until revoked).
    pub async fn issue_application_key(
        &self,
        application_id: i64,
        expires_in_days: Option<u32>,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<IssuedKey, Error> {
        let by = by.authorize()?;
        let (issued, hash, expires_at) = self.new_key(expires_in_days)?;
        let key = NewKey {
            key_id: &issued.key_id,
            secret_hash: &hash,
            expires_at,
        };
        if !self.store.add_application_key(application_id, &key, self.now()).await? {
            return Err(no_such_application());
        }
        let detail = format!("application {application_id}, key {}, {by}", issued.key_id);
        self.audit(None, "application_key_issued", "success", remote, Some(&detail))
            .await;
        Ok(issued)
    }

    /// Revokes a key at once, on every node (each call reads the key).
    pub async fn revoke_application_key(
        &self,
        application_id: i64,
        key_id: &str,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let by = by.authorize()?;
        if !self
            .store
            .revoke_application_key(application_id, key_id, self.now())
            .await?
        {
            return Err(Error::NotFound("No such key, or it is already revoked.".into()));
        }
        let detail = format!("application {application_id}, key {key_id}, {by}");
        self.audit(None, "application_key_revoked", "success", remote, Some(&detail))
            .await;
        Ok(())
    }

    /// Suspends an application (its keys stop working at once) or makes it active again.
    pub async fn set_application_active(
        &self,
        application_id: i64,
        active: bool,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let by = by.authorize()?;
        let suspended_at = (!active).then(|| self.now());
        if !self
            .store
            .set_application_suspended(application_id, suspended_at)
            .await?
        {
            return Err(no_such_application());
        }
        let event = if active {
            "application_resumed"
        } else {
            "application_suspended"
        };
        let detail = format!("application {application_id}, {by}");
        self.audit(None, event, "success", remote, Some(&detail)).await;
        Ok(())
    }

    /// Lets the application's users without a second factor pass (`preauth` answers
    /// `allow`), or not (the default).
    pub async fn set_application_allow_unenrolled(
        &self,
        application_id: i64,
        allow: bool,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let by = by.authorize()?;
        if !self
            .store
            .set_application_allow_unenrolled(application_id, allow)
            .await?
        {
            return Err(no_such_application());
        }
        let policy = match allow {
            true => "may pass",
            false => "must enrol",
        };
        let detail = format!("application {application_id}: unenrolled users {policy}, {by}");
        self.audit(None, "application_policy_changed", "success", remote, Some(&detail))
            .await;
        Ok(())
    }

    pub async fn applications(&self, by: Operator<'_>) -> Result<Vec<ApplicationSummary>, Error> {
        by.authorize()?;
        let (apps, keys) = self.store.applications().await?;
        apps.into_iter().map(|app| summary(app, &keys)).collect()
    }

    /// The application whose key `authorization` carries (`Bearer tfk_...`, or Basic
    /// `key_id:secret`), if the key is live, its application active, and `remote` in its
    /// networks. Every refusal is a bare 401 (403 for a network) to the caller; the audit
    /// says which.
    pub async fn authenticate_application(
        &self,
        authorization: Option<&str>,
        remote: Option<&str>,
    ) -> Result<AppCaller, Error> {
        let refuse = |key_id: Option<&str>, why: &str| {
            let detail = format!("key {}: {why}", key_id.unwrap_or("(none)"));
            async move {
                self.audit(None, "application_auth", "failure", remote, Some(&detail))
                    .await;
                Error::InvalidApiKey
            }
        };
        let Some((key_id, secret)) = authorization.and_then(crate::core::applications::from_authorization) else {
            return Err(refuse(None, "no key, or not a key").await);
        };
        let Some(found) = self.store.application_key(&key_id).await? else {
            return Err(refuse(Some(&key_id), "unknown key").await);
        };
        let now = self.now();
        if !secret_matches(&self.application_key_hash_key, &key_id, &secret, &found.secret_hash) {
            return Err(refuse(Some(&key_id), "wrong secret").await);
        }
        if found.key.revoked_at.is_some() {
            return Err(refuse(Some(&key_id), "revoked").await);
        }
        if found.key.expires_at.is_some_and(|at| at <= now) {
            return Err(refuse(Some(&key_id), "expired").await);
        }
        let app = found.application;
        if app.suspended_at.is_some() {
            return Err(refuse(Some(&key_id), "application suspended").await);
        }
        let networks = parse_networks(&network_list(&app.networks)).map_err(Error::Internal)?;
        let address = remote.and_then(|r| r.parse().ok());
        if !network_allows(&networks, address) {
            refuse(Some(&key_id), "outside the application's networks").await;
            return Err(Error::Forbidden);
        }
        // A key's last use is kept to the minute: a busy key costs no write per call.
        if found.key.last_used_at.is_none_or(|at| at < now - 60) {
            self.store.note_application_key_used(&key_id, now).await?;
        }
        Ok(AppCaller {
            id: app.id,
            kinds: Kinds::parse(&app.kinds).ok_or_else(|| Error::Internal(format!("application {}", app.id)))?,
            scopes: parse_scopes(&app.scopes),
            allow_unenrolled: app.allow_unenrolled,
            name: app.name,
            key_id,
            remote: remote.map(str::to_string),
        })
    }
}

/// The networks as stored: comma-separated.
fn network_list(text: &str) -> Vec<String> {
    text.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
}

fn no_such_application() -> Error {
    Error::NotFound("No such application.".into())
}
