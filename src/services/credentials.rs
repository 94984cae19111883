//! An account's second-factor credentials: listing, renaming and removing them.
//!
//! Removing one ends the account's other sessions; removing the last one turns 2FA off,
//! exactly as disabling it does, unless the account's kind is forced to use 2FA.

use super::enrolment::{credential_detail, label_or_default};
use super::login::require_stage;
use super::{Error, Services};
use crate::core::policy::ServiceId;
use crate::store::{Account, Removed, Session, Stage};

/// A credential as its owner sees it (never its secret).
#[derive(Clone, Debug)]
pub struct CredentialInfo {
    pub id: i64,
    pub service: ServiceId,
    pub label: String,
    pub enrolled_at: i64,
    pub last_used_at: Option<i64>,
}

/// The account's second factor: its credentials and when its backup code was issued.
pub struct TwoFactorOverview {
    pub credentials: Vec<CredentialInfo>,
    pub backup_code_issued_at: Option<i64>,
}

fn no_such_credential() -> Error {
    Error::NotFound("You have no such second factor.".into())
}

impl Services {
    pub async fn two_factor_overview(&self, account: &Account) -> Result<TwoFactorOverview, Error> {
        let credentials = self.credential_infos(account).await?;
        let backup_code_issued_at = self.store.backup_code(account.id).await?.map(|(_, at)| at);
        Ok(TwoFactorOverview {
            credentials,
            backup_code_issued_at,
        })
    }

    async fn credential_infos(&self, account: &Account) -> Result<Vec<CredentialInfo>, Error> {
        Ok(self
            .store
            .credentials(account.id)
            .await?
            .into_iter()
            // A credential of a service this build does not know is not shown; it still
            // blocks the login (see `login`).
            .filter_map(|c| {
                Some(CredentialInfo {
                    id: c.id,
                    service: ServiceId::parse(&c.service)?,
                    label: c.label,
                    enrolled_at: c.enrolled_at,
                    last_used_at: c.last_used_at,
                })
            })
            .collect())
    }

    pub async fn rename_credential(
        &self,
        session: &Session,
        account: &Account,
        id: i64,
        label: &str,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_stage(session, Stage::Authenticated)?;
        let credential = self.own_credential(account, id).await?;
        let label = label_or_default(Some(label), credential.service)?;
        if !self.store.rename_credential(account.id, id, &label).await? {
            return Err(no_such_credential());
        }
        let detail = format!(
            "{} (was \"{}\")",
            credential_detail(credential.service, id, &label),
            credential.label
        );
        self.audit(Some(account.id), "credential_renamed", "success", remote, Some(&detail))
            .await;
        Ok(())
    }

    /// Removes one credential; the password is required. Returns true when it was the
    /// last one, so 2FA is now off.
    pub async fn remove_credential(
        &self,
        session: &Session,
        account: &Account,
        id: i64,
        password: &str,
        remote: Option<&str>,
    ) -> Result<bool, Error> {
        require_stage(session, Stage::Authenticated)?;
        let credential = self.own_credential(account, id).await?;
        self.confirm_password(account, password, remote).await?;
        let forced = self.two_factor_settings().await?.forced(account.kind);
        let detail = credential_detail(credential.service, id, &credential.label);
        match self
            .store
            .remove_credential(account.id, id, !forced, &session.token_hash)
            .await?
        {
            Removed::Removed { last } => {
                self.audit(Some(account.id), "credential_removed", "success", remote, Some(&detail))
                    .await;
                if last {
                    self.audit(
                        Some(account.id),
                        "two_factor_disabled",
                        "success",
                        remote,
                        Some("its last credential was removed by its owner"),
                    )
                    .await;
                }
                Ok(last)
            }
            Removed::LastRefused => Err(Error::Conflict(
                "Two-factor authentication is required for your account: add another second factor before removing this one."
                    .into(),
            )),
            Removed::NotFound => Err(no_such_credential()),
        }
    }

    async fn own_credential(&self, account: &Account, id: i64) -> Result<CredentialInfo, Error> {
        self.credential_infos(account)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(no_such_credential)
    }
}
