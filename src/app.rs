//! `App`: builds the [`Services`] once at start-up (the store, the clock, the keys, the
//! factors, the configuration), shared by the web layer and the command line.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::config::Config;
use crate::core::secretbox::{MasterKey, OpenError};
use crate::outbound::Outbound;
use crate::random;
use crate::services::factors::{sealing_context, setting_sealing_context, Factors};
use crate::services::password_threads::PasswordThreads;
use crate::services::{Error, Services};
use crate::store::Store;

/// The running server's one [`Services`], shared by the web layer and the command line.
#[derive(Clone)]
pub struct App(Arc<Services>);

impl std::ops::Deref for App {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot use the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("outbound HTTPS: {0}")]
    Outbound(String),
    #[error("cannot start the password threads: {0}")]
    Threads(std::io::Error),
}

impl App {
    /// Opens the database (migrating it), loads or creates the master key and checks that it
    /// opens the secrets already stored.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<App, StartError> {
        create_private_dir(&config.data_dir)?;
        let master_key = load_master_key(&config)?;
        let store = Store::open(&config.database()?, config.pool_settings()).await?;
        check_master_key(&store, &master_key).await?;
        let outbound = Outbound::new(config.tls_ca_file.as_deref()).map_err(StartError::Outbound)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password_threads = PasswordThreads::start(cores * 2).map_err(StartError::Threads)?;
        Ok(App(Arc::new(Services {
            backup_code_key: master_key.derive("twofold backup codes"),
            name_key: master_key.derive("twofold lockout names"),
            application_key_hash_key: master_key.derive("twofold application keys"),
            factors: Factors::new(),
            outbound,
            password_slots: Semaphore::new(cores * 2),
            password_threads,
            password_checks: Default::default(),
            duo_clock: Default::default(),
            trusted_proxies: config.trusted_networks(),
            password_scratch_pool: Default::default(),
            config,
            store,
            clock,
            master_key,
        })))
    }

    /// Writes the one-time setup token when there is no administrator yet, and returns its
    /// path; the token itself is never logged.
    pub async fn prepare_setup_token(&self) -> Result<Option<std::path::PathBuf>, Error> {
        if self.store.has_admin().await? {
            let _ = std::fs::remove_file(self.config.setup_token_path());
            return Ok(None);
        }
        let path = self.config.setup_token_path();
        if !path.exists() {
            let token = random::token().map_err(|e| Error::Internal(e.to_string()))?;
            write_private_file(&path, token.as_bytes())
                .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        }
        Ok(Some(path))
    }
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let fail = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = std::fs::metadata(path).map_err(fail)?.permissions();
        if permissions.mode() & 0o077 != 0 {
            permissions.set_mode(0o700);
            std::fs::set_permissions(path, permissions).map_err(fail)?;
        }
    }
    Ok(())
}

/// Creates `path` readable by its owner only (mode 0600), refusing to overwrite.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn load_master_key(config: &Config) -> Result<MasterKey, StartError> {
    let fail = |message: String| StartError::MasterKey(message);
    let encoded = match (&config.master_key, &config.master_key_file) {
        (Some(key), _) => key.expose_secret().trim().to_string(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| fail(format!("cannot read master_key_file {}: {e}", file.display())))?
            .trim()
            .to_string(),
        (None, None) => {
            let path = config.default_master_key_path();
            if !path.exists() {
                let key = random::bytes::<32>().map_err(|e| fail(e.to_string()))?;
                let encoded = data_encoding::BASE64.encode(&key);
                write_private_file(&path, format!("{encoded}\n").as_bytes())
                    .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
                tracing::info!(path = %path.display(), "generated a new master key; back it up with the database");
            }
            std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
                .trim()
                .to_string()
        }
    };
    let bytes = data_encoding::BASE64
        .decode(encoded.as_bytes())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| fail("the master key must be the base64 encoding of 32 bytes".into()))?;
    Ok(MasterKey::from_bytes(bytes))
}

/// Refuses to start when the master key is not the one the stored secrets (a credential, a
/// write-only setting) were sealed with; a secret that does not open for another reason is
/// logged, and only that secret fails when it is used.
async fn check_master_key(store: &Store, master_key: &MasterKey) -> Result<(), StartError> {
    let mut samples = Vec::new();
    if let Some((account_id, service, sealed)) = store.any_sealed_credential().await? {
        samples.push((sealed, sealing_context(&service, account_id)));
    }
    if let Some((service, name, sealed)) = store.any_setting_secret().await? {
        samples.push((sealed, setting_sealing_context(&service, &name)));
    }
    for (sealed, context) in samples {
        match master_key.open(&sealed, &context) {
            Err(OpenError::WrongKey) => {
                return Err(StartError::MasterKey(
                    "the configured master key is not the one the stored secrets were sealed with; \
                     configure the original key"
                        .into(),
                ))
            }
            Err(OpenError::Corrupt) => tracing::warn!(%context, "a stored secret does not open"),
            Ok(_) => {}
        }
    }
    Ok(())
}
