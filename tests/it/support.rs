//! A real Twofold on a random loopback port, with a fresh database in a temporary
//! directory and a manual clock; and an HTTP client that keeps its session cookie.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use twofold::app::App;
use twofold::clock::ManualClock;
use twofold::config::Config;
use twofold::core::policy::{AccountKind, Role};
use twofold::core::totp::{code_at, step_at, TotpParams};
use twofold::services::admin::AccountRequest;

/// Mid-step, so a test can move a few seconds without crossing a step by accident.
pub const START_TIME: i64 = 1_800_000_010;
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub app: App,
    pub dir: TempDir,
    config: Config,
    stop: StopOnDrop,
}

/// Stops the server when the test ends.
struct StopOnDrop(Option<oneshot::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// The database a test runs on. Every test body runs on both (see `on_both_backends!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Registers each named `async fn(Backend)` as two tests, `NAME::sqlite` and
/// `NAME::postgres`: one test body, two databases.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}

/// The PostgreSQL database the tests use (`TWOFOLD_TEST_POSTGRES_URL`, created by `.ci/run`
/// for each run; by default `twofold_test` on the local server, created if missing). Each
/// test gets its own schema in it.
pub fn postgres_base_url() -> String {
    std::env::var("TWOFOLD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/twofold_test".into())
}

/// A fresh, empty schema for one test, as a `database_url`.
pub async fn fresh_postgres_url() -> String {
    use sqlx::Connection;
    let base = postgres_base_url();
    let mut connection = match sqlx::PgConnection::connect(&base).await {
        Ok(connection) => connection,
        Err(_) => {
            // The database may not exist yet on a developer's machine: create it.
            let (server, name) = base.rsplit_once('/').unwrap();
            let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                .await
                .unwrap_or_else(|e| {
                    panic!("PostgreSQL is not reachable at {server} ({e}); set TWOFOLD_TEST_POSTGRES_URL")
                });
            let _ = sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await;
            sqlx::PgConnection::connect(&base).await.unwrap()
        }
    };
    let schema = format!(
        "t_{}",
        data_encoding::HEXLOWER.encode(&twofold::random::bytes::<8>().unwrap())
    );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options[search_path]={schema}")
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestServer::start_on(listener, backend, adjust).await
    }

    /// Starts with `public_url` set to the address it listens on, as a server behind its
    /// public name is (Duo's Universal Prompt sends the browser back there).
    pub async fn start_public(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        TestServer::start_on(listener, backend, |config| {
            config.public_url = Some(base);
            adjust(config)
        })
        .await
    }

    async fn start_on(
        listener: tokio::net::TcpListener,
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_url().await),
        };
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            database_url,
            ..Config::default()
        };
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new(START_TIME));
        TestServer::launch_on(listener, dir, config, clock).await
    }

    /// Starts on a data directory (and, for PostgreSQL, a database) prepared beforehand.
    pub async fn start_in(dir: TempDir, database_url: Option<String>) -> TestServer {
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            database_url,
            ..Config::default()
        };
        TestServer::launch(dir, config, Arc::new(ManualClock::new(START_TIME))).await
    }

    async fn launch(dir: TempDir, config: Config, clock: Arc<ManualClock>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestServer::launch_on(listener, dir, config, clock).await
    }

    async fn launch_on(
        listener: tokio::net::TcpListener,
        dir: TempDir,
        config: Config,
        clock: Arc<ManualClock>,
    ) -> TestServer {
        let app = App::start(config.clone(), clock.clone()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = app.clone();
        tokio::spawn(async move {
            twofold::web::serve(served, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            base,
            clock,
            app,
            dir,
            config,
            stop: StopOnDrop(Some(stop)),
        }
    }

    /// Stops this server and starts a new one on the same data directory and clock: what
    /// the database holds survives, nothing else does.
    pub async fn restart(self) -> TestServer {
        let TestServer {
            dir,
            config,
            clock,
            stop,
            ..
        } = self;
        drop(stop);
        TestServer::launch(dir, config, clock).await
    }

    /// Stops this server and starts one on the same data directory (so the same master key)
    /// and clock, on another database.
    pub async fn moved_to(self, database_url: String) -> TestServer {
        let TestServer {
            dir,
            mut config,
            clock,
            stop,
            ..
        } = self;
        drop(stop);
        config.database_url = Some(database_url);
        TestServer::launch(dir, config, clock).await
    }

    /// The `database_url` this server was configured with (PostgreSQL tests).
    pub fn config_database_url(&self) -> Option<String> {
        self.config.database_url.clone()
    }

    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder().cookie_store(true).build().unwrap(),
            base: self.base.clone(),
        }
    }

    pub async fn create_account(&self, kind: AccountKind, role: Option<Role>, username: &str) -> i64 {
        let email = format!("{username}@example.com");
        let request = AccountRequest {
            kind,
            role,
            username,
            email: Some(&email),
            password: PASSWORD,
        };
        self.app.create_account(&request).await.unwrap()
    }

    /// The id of the client account named `username`.
    pub async fn client_id(&self, username: &str) -> i64 {
        self.app
            .store
            .find_account(AccountKind::Client, username)
            .await
            .unwrap()
            .unwrap()
            .id
    }

    pub async fn full_admin(&self, username: &str) -> i64 {
        self.create_account(AccountKind::Admin, Some(Role::Full), username)
            .await
    }

    pub async fn client_account(&self, username: &str) -> i64 {
        self.create_account(AccountKind::Client, None, username).await
    }

    pub fn now(&self) -> i64 {
        use twofold::clock::Clock;
        self.clock.now()
    }

    /// The code an authenticator app shows now, `steps` steps away.
    pub fn code(&self, secret_base32: &str, steps: i64) -> String {
        let secret = data_encoding::BASE32_NOPAD.decode(secret_base32.as_bytes()).unwrap();
        code_at(&secret, TotpParams::default(), step_at(self.now(), 30) + steps).unwrap()
    }

    /// Moves to the next time step, so a fresh code exists.
    pub fn next_step(&self) {
        self.clock.advance(30);
    }
}

/// A browser-like client: it keeps its cookie.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

pub type Answer = (StatusCode, Value);

impl Client {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// A POST that a trusted proxy forwards from `address` (the server must trust loopback:
    /// see `trusting_loopback_proxies`).
    pub async fn post_from(&self, address: &str, path: &str, body: Value) -> Answer {
        let request = self.http.post(format!("{}{path}", self.base));
        self.send(request.header("x-forwarded-for", address).json(&body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base))).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn login(&self, area: &str, username: &str) -> Answer {
        self.login_with(area, username, PASSWORD).await
    }

    pub async fn login_with(&self, area: &str, username: &str, password: &str) -> Answer {
        self.post(
            "/api/v1/login",
            json!({"username": username, "password": password, "area": area}),
        )
        .await
    }

    /// Enrols in Time-Based Tokens from a signed-in (or enrolling) session; returns the
    /// base32 secret and the backup code.
    pub async fn enrol_totp(&self, server: &TestServer) -> (String, String) {
        let (status, enrolment) = self.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
        assert_eq!(status, StatusCode::OK, "{enrolment}");
        let secret = enrolment["secret"].as_str().unwrap().to_string();
        let code = server.code(&secret, 0);
        let (status, confirmed) = self
            .post("/api/v1/me/two-factor/totp/enrollment/confirm", json!({"code": code}))
            .await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        (secret, confirmed["backup_code"].as_str().unwrap().to_string())
    }
}

impl Client {
    /// Adds another TOTP credential to an account that has 2FA on (the password is
    /// required); returns the new credential's id and its base32 secret.
    pub async fn add_totp(&self, server: &TestServer, label: &str) -> (i64, String) {
        let (status, enrolment) = self
            .post(
                "/api/v1/me/two-factor/totp/enrollment",
                json!({"password": PASSWORD, "label": label}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{enrolment}");
        let secret = enrolment["secret"].as_str().unwrap().to_string();
        let (status, confirmed) = self
            .post(
                "/api/v1/me/two-factor/totp/enrollment/confirm",
                json!({"code": server.code(&secret, 0)}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        (confirmed["credential_id"].as_i64().unwrap(), secret)
    }
}

/// A program of the Python peers' virtual environment (`python`, `st`), which `scripts/test`
/// installs from `tests/python/requirements.txt` and names in `TWOFOLD_TEST_VENV`.
pub fn python_peer(program: &str) -> String {
    let venv = std::env::var("TWOFOLD_TEST_VENV")
        .expect("TWOFOLD_TEST_VENV names the Python peers' virtual environment: run scripts/test, which installs them");
    format!("{venv}/bin/{program}")
}

/// The error code of an error answer.
pub fn error_code(answer: &Answer) -> &str {
    answer.1["error"]["code"].as_str().unwrap_or("<none>")
}

/// A signed-in client account enrolled in TOTP, and a fresh client with no session.
pub async fn enrolled_client(server: &TestServer, username: &str) -> (String, String) {
    server.client_account(username).await;
    let client = server.client();
    assert_eq!(client.login("client", username).await.1["status"], "authenticated");
    let enrolled = client.enrol_totp(server).await;
    server.next_step();
    enrolled
}

/// Changes the two-factor settings as an administrator does through the API: the document
/// read, changed by `change`, and put back. Returns the answer to the PUT.
pub async fn change_settings(admin: &Client, change: impl FnOnce(&mut Value)) -> Answer {
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    change(&mut settings);
    admin.put("/api/v1/admin/two-factor/settings", settings).await
}

/// Sends the same request from every client at the same instant and collects the answers.
pub async fn race(clients: Vec<Client>, path: &'static str, body: Value) -> Vec<Answer> {
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (barrier, body) = (barrier.clone(), body.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.post(path, body).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Of answers to the same code, exactly one succeeded and every other says "already used".
pub fn assert_single_use(answers: &[Answer]) {
    let successes = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
    assert_eq!(successes, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a.0 != StatusCode::OK)
            .all(|a| error_code(a) == "code_already_used"),
        "{answers:?}"
    );
}

/// Settles a right answer through the store itself (no counting, as for an answer counted
/// before a check over the network), as the login's second step would.
pub async fn settle_right_answer(
    store: &twofold::store::Store,
    account_id: i64,
    consumption: twofold::store::Consumption<'_>,
    session: twofold::store::SessionUpgrade<'_>,
    now: i64,
) -> twofold::store::Settled {
    let subject = twofold::core::lockout::account_subject(account_id);
    let attempts = twofold::store::AttemptKey {
        subject: &subject,
        factor: "second_factor",
        source: "127.0.0.1",
    };
    let audit = |settled: &twofold::store::Settled| twofold::store::AuditEvent {
        at: now,
        account_id: Some(account_id),
        event: "test_settlement".into(),
        outcome: format!("{settled:?}"),
        remote_addr: None,
        detail: None,
    };
    let judged = twofold::store::Judged::Right {
        consumption,
        session: Some(session),
    };
    store
        .settle_second_factor(account_id, None, attempts, judged, audit, now)
        .await
        .unwrap()
}

/// A configuration in which the test clients (on loopback) are trusted proxies, so that
/// `Client::post_from` sets the client's address.
pub fn trusting_loopback_proxies(config: &mut Config) {
    config.trusted_proxies = vec!["127.0.0.0/8".into()];
}

/// Lockout limits high enough that every attempt of a race reaches the check (for tests of
/// what the check does, not of lockout).
pub fn raised_lockout(config: &mut Config) {
    config.lockout.max_failures = 1_000;
    config.lockout.account_max_failures = 1_000;
}
