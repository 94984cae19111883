//! Configuration: defaults, then a TOML file, then `TWOFOLD_*` environment variables, then
//! command-line flags. One validated `Config`; a bad value stops start-up with its key named.
//!
//! Nested keys use a double underscore in the environment: `TWOFOLD_LOCKOUT__MAX_FAILURES=10`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::core::lockout::LockoutPolicy;
use crate::store::{Database, PoolSettings};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the SQLite database, the generated master key and the setup token live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; empty means `sqlite://<data_dir>/twofold.db`.
    pub database_url: Option<String>,
    /// Most connections a node opens to PostgreSQL: half of them for the logins' hot path
    /// (see `store::pg_connections`), the rest for everything else; at least one each. On
    /// SQLite, the size of sqlx's pool of readers.
    pub database_max_connections: u32,
    /// Longest a request waits for a database connection before it is answered 503.
    pub database_acquire_timeout_secs: u64,
    /// Longest a client may take to send a request's headers, and then its body: a slow or
    /// stalled client is disconnected instead of holding a connection.
    pub http_read_timeout_secs: u64,
    /// Most client connections served at once; more wait to be accepted.
    pub http_max_connections: usize,
    /// The reverse proxies (CIDRs, such as `10.0.0.0/8`) whose `X-Forwarded-For` tells the
    /// client's address; nobody else's is believed.
    pub trusted_proxies: Vec<String>,
    /// A PEM file of certificates trusted for outbound HTTPS (Duo) besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// The master key (base64 of 32 bytes) that seals secrets at rest. Prefer
    /// `master_key_file`; when neither is set, one is generated in `<data_dir>/master.key`.
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    /// The address users reach Twofold at, such as `https://2fa.example.com`. It sets the
    /// accepted `Origin` of API calls, and `https://` makes cookies `Secure`.
    pub public_url: Option<String>,
    /// The issuer name authenticator apps show beside the account.
    pub issuer: String,
    /// Days the audit log keeps an event; 0 keeps them all.
    pub audit_retention_days: u32,
    /// Lifetime of a logged-in session, in seconds.
    pub session_ttl_secs: i64,
    /// Time allowed between the password and the second factor, in seconds.
    pub login_step_ttl_secs: i64,
    pub lockout: LockoutPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 10,
            database_acquire_timeout_secs: 5,
            http_read_timeout_secs: 10,
            http_max_connections: 1024,
            trusted_proxies: Vec::new(),
            tls_ca_file: None,
            master_key: None,
            master_key_file: None,
            public_url: None,
            issuer: "Twofold".into(),
            audit_retention_days: 400,
            session_ttl_secs: 8 * 3600,
            login_step_ttl_secs: 600,
            lockout: LockoutPolicy::default(),
        }
    }
}

/// Values given on the command line; they override everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = overrides
            .config_file
            .clone()
            .or_else(|| std::env::var_os("TWOFOLD_CONFIG").map(PathBuf::from));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("TWOFOLD_").ignore(&["CONFIG"]).split("__"));
        let mut config: Config = figment.extract().map_err(|error| ConfigError(error.to_string()))?;
        if let Some(dir) = &overrides.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(url) = &overrides.database_url {
            config.database_url = Some(url.clone());
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: &str| Err(ConfigError(message.to_string()));
        if self.issuer.trim().is_empty() || self.issuer.contains(':') {
            return fail("issuer must be non-empty and contain no ':' (otpauth label rule)");
        }
        if !(1..=300).contains(&self.http_read_timeout_secs) || self.http_max_connections == 0 {
            return fail("http_read_timeout_secs must be 1 to 300, and http_max_connections at least 1");
        }
        if let Some(bad) = self.trusted_proxies.iter().find(|net| parse_network(net).is_none()) {
            return Err(ConfigError(format!(
                "trusted_proxies: {bad:?} is not an address or a network such as 10.0.0.0/8"
            )));
        }
        if self.session_ttl_secs < 60 {
            return fail("session_ttl_secs must be at least 60");
        }
        if self.login_step_ttl_secs < 30 {
            return fail("login_step_ttl_secs must be at least 30");
        }
        let lockout = &self.lockout;
        if lockout.max_failures == 0 || lockout.window_secs < 1 || lockout.hard_lock_failures == 0 {
            return fail("lockout.max_failures, lockout.window_secs and lockout.hard_lock_failures must be at least 1");
        }
        if lockout.account_max_failures < lockout.max_failures {
            return fail(
                "lockout.account_max_failures (all addresses) must be at least lockout.max_failures (one address)",
            );
        }
        if lockout.max_window_secs < lockout.window_secs {
            return fail("lockout.max_window_secs must be at least lockout.window_secs");
        }
        if let Some(url) = &self.public_url {
            if url::Url::parse(url).map(|u| u.origin().is_tuple()) != Ok(true) {
                return fail("public_url must be an absolute http:// or https:// URL");
            }
        }
        if self.database_max_connections == 0 || self.database_acquire_timeout_secs == 0 {
            return fail("database_max_connections and database_acquire_timeout_secs must be at least 1");
        }
        self.database()?;
        Ok(())
    }

    /// The database to use, from `database_url`.
    pub fn database(&self) -> Result<Database, ConfigError> {
        let Some(url) = self.database_url.as_deref().filter(|url| !url.is_empty()) else {
            return Ok(Database::Sqlite(self.data_dir.join("twofold.db")));
        };
        if let Some(path) = url.strip_prefix("sqlite://").filter(|path| !path.is_empty()) {
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_string()));
        }
        Err(ConfigError(
            "database_url must be sqlite://PATH or postgres://USER@HOST/DATABASE".into(),
        ))
    }

    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: std::time::Duration::from_secs(self.database_acquire_timeout_secs),
        }
    }

    pub fn setup_token_path(&self) -> PathBuf {
        self.data_dir.join("setup-token")
    }

    pub fn default_master_key_path(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }

    /// The trusted proxies' networks (validated at load).
    pub fn trusted_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|net| parse_network(net))
            .collect()
    }

    /// Cookies get `Secure` when users reach Twofold over TLS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// A cookie's name: over TLS with the `__Host-` prefix, which browsers only accept from
    /// this very host, over TLS, for the whole site (no sibling domain can plant it).
    pub fn cookie_name(&self, name: &str) -> String {
        match self.secure_cookies() {
            true => format!("__Host-{name}"),
            false => name.to_string(),
        }
    }

    /// The `; Secure` attribute, over TLS.
    pub fn cookie_security(&self) -> &'static str {
        match self.secure_cookies() {
            true => "; Secure",
            false => "",
        }
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.1`).
fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}
