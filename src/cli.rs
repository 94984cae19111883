//! The `twofold` command line. Every subcommand reads the same configuration (file,
//! `TWOFOLD_*` variables, flags) as the server.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{Config, Overrides};
use crate::core::applications::{Kinds, Scope};
use crate::core::policy::{AccountKind, Role};
use crate::services::admin::AccountRequest;
use crate::services::admin::Operator;
use crate::services::applications::NewApplication;

#[derive(Parser, Debug)]
#[command(
    name = "twofold",
    version,
    about = "Twofold: a two-factor authentication server (TOTP, backup codes, admin and client areas, JSON API)",
    after_help = "Configuration comes from defaults, then the TOML file (--config or TWOFOLD_CONFIG), then \
                  TWOFOLD_* environment variables (TWOFOLD_DATA_DIR, TWOFOLD_LISTEN, TWOFOLD_ISSUER, \
                  TWOFOLD_LOCKOUT__MAX_FAILURES, ...), then flags. See the README for every key."
)]
pub struct Cli {
    /// TOML configuration file [env: TWOFOLD_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the master key and the setup token [default: ./data] [env: TWOFOLD_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH [default: sqlite://<data-dir>/twofold.db] [env: TWOFOLD_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (admin area at /admin, client area at /, JSON API at /api/v1)
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080] [env: TWOFOLD_LISTEN]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Create the database if needed, apply migrations and exit
    Migrate,
    /// Manage administrators
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage clients
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Break-glass operations on any account
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Database operations
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// YubiKey keys for the local mode (Twofold checks OTPs itself)
    Yubikey {
        #[command(subcommand)]
        command: YubikeyCommand,
    },
    /// Applications that call the validate API (/api/v1/validate), and their keys
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Register an application and print its first key (shown this once)
    Create {
        #[arg(long)]
        name: String,
        /// The kinds of account it may act for
        #[arg(long, value_enum, default_value_t = KindsArg::Client)]
        kinds: KindsArg,
        /// What it may do (repeat the flag for several): check, challenge, accounts
        #[arg(long = "scope", value_name = "SCOPE", default_value = "check")]
        scopes: Vec<String>,
        /// A network it may call from, CIDR or address (repeat for several); none: anywhere
        #[arg(long = "network", value_name = "CIDR")]
        networks: Vec<String>,
        /// Let its users without a second factor pass (`preauth` answers `allow`); without
        /// it, they must enrol
        #[arg(long)]
        allow_unenrolled: bool,
    },
    /// Change whether an application's users without a second factor may pass
    Policy {
        /// The application's id
        id: i64,
        /// yes: they pass (`preauth` answers `allow`); no: they must enrol
        #[arg(long, value_name = "yes|no", action = clap::ArgAction::Set, required = true,
              value_parser = clap::builder::BoolishValueParser::new())]
        allow_unenrolled: bool,
    },
    /// List the applications and their keys (never the secrets)
    List,
    /// Issue another key for an application (the others keep working) and print it once
    Key {
        /// The application's id
        id: i64,
        /// The key stops working after this many days
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// Revoke a key at once
    Revoke {
        /// The application's id
        id: i64,
        /// The key id (the part after tfk_ and before the next _)
        key_id: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindsArg {
    Admin,
    Client,
    Both,
}

#[derive(Subcommand, Debug)]
pub enum YubikeyCommand {
    /// Import keys with their AES secrets from the CSV that YubiKey Manager (`ykman otp
    /// yubiotp --config-output FILE`) or the personalization tool ("Yubico format") writes:
    /// serial,public ID,private ID,AES key per line. All or nothing.
    Import {
        /// The key file ("-" reads standard input)
        file: PathBuf,
        /// Assign every key of the file to this account (username or e-mail address);
        /// without it, the first account that touches a key may enrol it
        #[arg(long, value_name = "NAME")]
        assign_to: Option<String>,
        /// The kind of the account of --assign-to
        #[arg(long, value_enum, default_value_t = KindArg::Client)]
        kind: KindArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Copy everything from the configured database to another, in one transaction (for
    /// example from the default SQLite to PostgreSQL before running several nodes)
    Copy {
        /// The target: postgres://USER@HOST/DB or sqlite://PATH (migrated if needed)
        #[arg(long, value_name = "URL")]
        to: String,
        /// Delete what the target already holds instead of refusing a non-empty target
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an administrator
    Create {
        #[arg(long)]
        username: String,
        /// File holding the password (first line; "-" reads standard input)
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// full: everything, including System settings; staff: no settings, no changes to others
        #[arg(long, value_enum, default_value_t = RoleArg::Full)]
        role: RoleArg,
        #[arg(long)]
        email: Option<String>,
    },
    /// List administrators with their 2FA status
    List,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create a client
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// File holding the password (first line; "-" reads standard input)
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
    /// List clients with their 2FA status
    List,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Turn off an account's 2FA and lift its lockouts (for a locked-out administrator)
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// Username or e-mail address
        name: String,
        #[arg(long, value_enum, default_value_t = KindArg::Admin)]
        kind: KindArg,
    },
    /// Lift an account's lockouts and end its sessions
    Unlock {
        name: String,
        #[arg(long, value_enum, default_value_t = KindArg::Admin)]
        kind: KindArg,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Full,
    Staff,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Admin,
    Client,
}

impl From<KindArg> for AccountKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Admin => AccountKind::Admin,
            KindArg::Client => AccountKind::Client,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen } => *listen,
        _ => None,
    };
    let config = Config::load(&Overrides {
        config_file: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        listen,
        database_url: cli.database_url.clone(),
    })?;
    let app = App::start(config, Arc::new(SystemClock)).await?;
    match cli.command {
        Command::Serve { .. } => serve(app).await,
        Command::Db {
            command: DbCommand::Copy { to, replace },
        } => copy_database(&app, &to, replace).await,
        Command::Migrate => {
            println!("the database is up to date");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    username,
                    password_file,
                    role,
                    email,
                },
        } => {
            let role = match role {
                RoleArg::Full => Role::Full,
                RoleArg::Staff => Role::Staff,
            };
            let password = read_password(&password_file)?;
            let request = AccountRequest {
                kind: AccountKind::Admin,
                role: Some(role),
                username: &username,
                email: email.as_deref(),
                password: &password,
            };
            let id = app.create_account(&request).await?;
            let _ = std::fs::remove_file(app.config.setup_token_path());
            println!("created administrator {username} ({}) with id {id}", role.as_str());
            Ok(())
        }
        Command::Client {
            command:
                ClientCommand::Create {
                    username,
                    email,
                    password_file,
                },
        } => {
            let password = read_password(&password_file)?;
            let request = AccountRequest {
                kind: AccountKind::Client,
                role: None,
                username: &username,
                email: Some(&email),
                password: &password,
            };
            let id = app.create_account(&request).await?;
            println!("created client {username} with id {id}");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::List,
        } => list(&app, AccountKind::Admin).await,
        Command::Client {
            command: ClientCommand::List,
        } => list(&app, AccountKind::Client).await,
        Command::User {
            command: UserCommand::Reset2fa { name, kind },
        } => {
            let removed = app.reset_two_factor_by_name(kind.into(), &name).await?;
            if removed {
                println!("two-factor authentication is now off for {name}; lockouts lifted");
            } else {
                println!("{name} had no two-factor authentication; lockouts lifted");
            }
            Ok(())
        }
        Command::Yubikey {
            command: YubikeyCommand::Import { file, assign_to, kind },
        } => {
            let text = read_file_or_stdin(&file)?;
            let assign = assign_to.as_deref().map(|name| (AccountKind::from(kind), name));
            let count = app.import_yubikeys(&text, assign, Operator::CommandLine, None).await?;
            match assign_to {
                Some(name) => println!("imported {count} YubiKey(s), assigned to {name}"),
                None => {
                    println!("imported {count} YubiKey(s); each may be enrolled by the first account that touches it")
                }
            }
            Ok(())
        }
        Command::App { command } => app_command(&app, command).await,
        Command::User {
            command: UserCommand::Unlock { name, kind },
        } => {
            app.unlock_by_name(AccountKind::from(kind), &name).await?;
            println!("lockouts lifted and sessions ended for {name}");
            Ok(())
        }
    }
}

async fn copy_database(app: &App, to: &str, replace: bool) -> anyhow::Result<()> {
    let target_config = Config {
        database_url: Some(to.to_string()),
        ..app.config.clone()
    };
    let target = target_config.database()?;
    if target == app.config.database()? {
        anyhow::bail!("the target is the configured database itself");
    }
    let snapshot = app.store.export().await?;
    let target = crate::store::Store::open(&target, app.config.pool_settings()).await?;
    target.import(&snapshot, replace).await.map_err(|error| match error {
        crate::store::StoreError::NotEmpty => {
            anyhow::anyhow!("the target database is not empty; use --replace to overwrite what it holds")
        }
        other => other.into(),
    })?;
    for (table, rows) in snapshot.counts() {
        println!("{table:>20}: {rows} rows copied");
    }
    println!(
        "copied to the {} database; use the same master key there",
        target.backend_name()
    );
    Ok(())
}

async fn list(app: &App, kind: AccountKind) -> anyhow::Result<()> {
    let accounts = app.store.list_accounts(kind, app.now(), &app.config.lockout).await?;
    println!(
        "{:>5}  {:<24} {:<32} {:<6} {:<10} LOCKED",
        "ID", "USERNAME", "EMAIL", "ROLE", "2FA"
    );
    for account in accounts {
        println!(
            "{:>5}  {:<24} {:<32} {:<6} {:<10} {}",
            account.id,
            account.username,
            account.email.unwrap_or_default(),
            account.role.map_or("-", Role::as_str),
            if account.two_factor_services.is_empty() {
                "off".to_string()
            } else {
                account.two_factor_services.join(",")
            },
            if account.locked { "yes" } else { "no" },
        );
    }
    Ok(())
}

fn read_password(path: &PathBuf) -> anyhow::Result<String> {
    let text = read_file_or_stdin(path)?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// The whole text of `path`, or of standard input for "-".
fn read_file_or_stdin(path: &PathBuf) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    }
    Ok(text)
}

async fn app_command(app: &App, command: AppCommand) -> anyhow::Result<()> {
    const BY: Operator = Operator::CommandLine;
    match command {
        AppCommand::Create {
            name,
            kinds,
            scopes,
            networks,
            allow_unenrolled,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| anyhow::anyhow!("--scope {s:?}: one of check, challenge, accounts"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let kinds = match kinds {
                KindsArg::Admin => Kinds::Admin,
                KindsArg::Client => Kinds::Client,
                KindsArg::Both => Kinds::Both,
            };
            let new = NewApplication {
                name,
                kinds,
                scopes,
                networks,
                allow_unenrolled,
            };
            let (id, key) = app.create_application(&new, BY, None).await?;
            println!(
                "application {id} created; its key (shown this once, keep it secret):\n{}",
                key.key
            );
        }
        AppCommand::List => {
            for application in app.applications(BY).await? {
                let state = if application.active { "active" } else { "suspended" };
                let unenrolled = if application.allow_unenrolled {
                    "pass"
                } else {
                    "must-enrol"
                };
                let scopes: Vec<&str> = application.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{} {:?} kinds={} scopes={} networks={} unenrolled={unenrolled} {state}",
                    application.id,
                    application.name,
                    application.kinds.as_str(),
                    scopes.join(","),
                    if application.networks.is_empty() {
                        "any".to_string()
                    } else {
                        application.networks.join(",")
                    },
                );
                for key in application.keys {
                    let state = match key.revoked_at {
                        Some(_) => "revoked",
                        None => "live",
                    };
                    println!("  key {} {state}", key.key_id);
                }
            }
        }
        AppCommand::Key { id, expires_in_days } => {
            let key = app.issue_application_key(id, expires_in_days, BY, None).await?;
            println!(
                "new key for application {id} (shown this once, keep it secret):\n{}",
                key.key
            );
        }
        AppCommand::Policy { id, allow_unenrolled } => {
            app.set_application_allow_unenrolled(id, allow_unenrolled, BY, None)
                .await?;
            let policy = if allow_unenrolled { "may pass" } else { "must enrol" };
            println!("application {id}: users without a second factor {policy}");
        }
        AppCommand::Revoke { id, key_id } => {
            app.revoke_application_key(id, &key_id, BY, None).await?;
            println!("key {key_id} of application {id} revoked");
        }
    }
    Ok(())
}

/// A write beyond the process's file-size limit (`ulimit -f`) raises SIGXFSZ, which would
/// end the server; with it handled, the write fails instead, and the server answers 503 until
/// the database can be written again.
fn survive_file_size_limits() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut exceeded = signal(SignalKind::from_raw(libc::SIGXFSZ))?;
    tokio::spawn(async move {
        while exceeded.recv().await.is_some() {
            tracing::error!("a write went beyond the file-size limit: the database cannot be written");
        }
    });
    Ok(())
}

async fn serve(app: App) -> anyhow::Result<()> {
    if let Some(path) = app.prepare_setup_token().await? {
        tracing::warn!(
            path = %path.display(),
            "no administrator exists yet: open /admin/setup and enter the one-time setup token from this file \
             (or run `twofold admin create`)"
        );
    }
    survive_file_size_limits()?;
    let listener = tokio::net::TcpListener::bind(app.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", app.config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    let sweeper = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            match sweeper.purge_expired().await {
                Ok([sessions, challenges, tokens, counters, events, enrolment_links, transactions]) => {
                    tracing::debug!(
                        sessions,
                        challenges,
                        tokens,
                        counters,
                        events,
                        enrolment_links,
                        transactions,
                        "deleted what had expired"
                    )
                }
                Err(error) => tracing::warn!(%error, "could not delete what has expired"),
            }
        }
    });
    let clock_watch = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
        loop {
            every.tick().await;
            if let Err(error) = clock_watch.check_duo_clock().await {
                tracing::warn!(%error, "could not compare the clock with Duo's");
            }
        }
    });
    crate::web::serve(app, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
