//! Load on the login steps over HTTP on loopback: requests/s and latency percentiles.
//! Run: `cargo bench --bench http_login` (prints a table, then each target of issue #13
//! beside its figure; takes about two minutes; `TWOFOLD_BENCH_ONLY=sqlite` or `postgres`).
//! The second step is measured in rounds (`TWOFOLD_BENCH_ROUNDS`, default 5) and each
//! figure is the median of the rounds': a single run of a second or two moves with the
//! machine by ±20 %. `TWOFOLD_DATABASE_MAX_CONNECTIONS` sets the nodes' connections to
//! PostgreSQL (default as `twofold serve`'s, 10).
//!
//! Three scenarios: SQLite with one node, PostgreSQL with one node, and PostgreSQL with two
//! nodes sharing the database and master key, the load split evenly between them
//! (`TWOFOLD_BENCH_POSTGRES_URL`, default the tests' database; each run makes a schema).
//! The servers run in this process on their own runtime (two workers) with a manual clock;
//! the load comes from a separate runtime over real TCP connections. Accounts, enrolments
//! and half-logged-in sessions are prepared through the store and services directly (a
//! password login per account would measure argon2, not the second-factor step); what is
//! measured is only HTTP requests to the running server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Wall-clock time is what a benchmark measures.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use twofold::app::App;
use twofold::clock::{Clock, ManualClock};
use twofold::config::Config;
use twofold::core::policy::{AccountKind, ServiceId};
use twofold::core::totp::{code_at, step_at, TotpParams};
use twofold::services::login::session_token_hash;
use twofold::services::{Answer, EnrolmentSetup};
use twofold::store::{NewAccount, Session, Stage};

/// Accounts per scenario, each answering the second step once (`TWOFOLD_BENCH_ACCOUNTS`,
/// default 2,000; more gives steadier figures and a longer set-up).
fn accounts() -> usize {
    number_from_env("TWOFOLD_BENCH_ACCOUNTS", 2000)
}

/// The positive number the environment variable `name` holds, or `default`.
fn number_from_env<N: std::str::FromStr + Default + PartialOrd>(name: &str, default: N) -> N {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > N::default())
        .unwrap_or(default)
}
const PASSWORD: &str = "correct horse battery staple";

type Request = (String, &'static str, Option<serde_json::Value>);

struct Prepared {
    account_id: i64,
    secret: Vec<u8>,
    username: String,
}

fn main() {
    println!(
        "{} accounts per scenario; servers: 2 worker threads per node; load: 2 worker threads; loopback HTTP/1.1",
        accounts()
    );
    println!(
        "{:<52} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "scenario / step", "requests", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    // TWOFOLD_BENCH_ONLY=sqlite (or postgres) runs only those scenarios.
    let only = std::env::var("TWOFOLD_BENCH_ONLY").unwrap_or_default();
    if std::env::var("TWOFOLD_BENCH_LARGE").is_ok_and(|v| v == "1") {
        let postgres = std::env::var("TWOFOLD_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/twofold_test".into());
        for (name, database) in [
            ("SQLite, 1 node", None),
            ("PostgreSQL, 1 node", Some(postgres.as_str())),
        ] {
            let small = scenario_with(name, database, 1, false);
            let large = scenario_with(&format!("{name}, large data"), database, 1, true);
            for (step, small, large) in [
                ("accepted code", small.accepted_rate(), large.accepted_rate()),
                ("wrong code", small.wrong_rate(), large.wrong_rate()),
                ("password step", small.password.rate, large.password.rate),
            ] {
                let ratio = large / small;
                target(
                    &format!("{name}: {step} with large data within 20 %"),
                    format!("{large:.0}/s vs {small:.0}/s: {ratio:.2} x"),
                    ratio >= 0.8,
                );
            }
        }
        return;
    }
    if only.is_empty() || only == "sqlite" {
        let sqlite = scenario("SQLite, 1 node", None, 1);
        sqlite.share_of_healthz_target("accepted code", |r| r.accepted);
        sqlite.share_of_healthz_target("wrong code", |r| r.wrong);
        sqlite.password_targets();
    }
    if only.is_empty() || only == "postgres" {
        let postgres = std::env::var("TWOFOLD_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/twofold_test".into());
        let one = scenario("PostgreSQL, 1 node", Some(&postgres), 1);
        let (rate, p99) = (one.accepted_rate(), one.median(|r| r.accepted.p99_ms));
        target(
            "accepted code >= 3,000/s, p99 <= 30 ms",
            format!("{rate:.0}/s, p99 {p99:.1} ms"),
            rate >= 3000.0 && p99 <= 30.0,
        );
        one.password_targets();
        let two = scenario("PostgreSQL, 2 nodes (load split evenly)", Some(&postgres), 2);
        let ratio = two.accepted_rate() / one.accepted_rate();
        target(
            "two nodes accept no slower than one",
            format!("{:.0}/s, {ratio:.2} x one node", two.accepted_rate()),
            ratio >= 1.0,
        );
    }
}

/// What a scenario measured.
struct Scenario {
    rounds: Vec<Round>,
    password: Figures,
    raw_argon2: f64,
    /// An accepted code while password logins flood in.
    accepted_under_passwords: Figures,
}

/// One round of the second step: `/healthz`, then the right code and a wrong code, back to
/// back, so that a step's share of `/healthz` compares figures taken moments apart.
struct Round {
    healthz: Figures,
    accepted: Figures,
    wrong: Figures,
}

/// Rounds of the second step per scenario (`TWOFOLD_BENCH_ROUNDS`, default 5), each at the
/// next TOTP step; a figure is the median of the rounds'.
fn rounds() -> usize {
    number_from_env("TWOFOLD_BENCH_ROUNDS", 5)
}

impl Scenario {
    /// The median over the rounds of what `figure` takes from each.
    fn median(&self, figure: impl Fn(&Round) -> f64) -> f64 {
        let mut values: Vec<f64> = self.rounds.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        if values.len() % 2 == 1 {
            values[middle]
        } else {
            (values[middle - 1] + values[middle]) / 2.0
        }
    }

    fn accepted_rate(&self) -> f64 {
        self.median(|r| r.accepted.rate)
    }

    fn wrong_rate(&self) -> f64 {
        self.median(|r| r.wrong.rate)
    }

    /// The SQLite target of a second-factor step whose figures `figures` takes from a round.
    fn share_of_healthz_target(&self, step: &str, figures: impl Fn(&Round) -> Figures) {
        let share = self.median(|r| figures(r).rate / r.healthz.rate);
        let p99 = self.median(|r| figures(r).p99_ms);
        target(
            &format!("{step} >= 25 % of /healthz, p99 <= 25 ms"),
            format!("{:.1} %, p99 {p99:.1} ms", share * 100.0),
            share >= 0.25 && p99 <= 25.0,
        );
    }

    fn password_targets(&self) {
        let share = self.password.rate / self.raw_argon2;
        target(
            "password step >= 90 % of raw argon2id",
            format!(
                "{:.0}/s of {:.0}/s: {:.0} %",
                self.password.rate,
                self.raw_argon2,
                share * 100.0
            ),
            share >= 0.9,
        );
        let growth = self.accepted_under_passwords.p99_ms / self.median(|r| r.accepted.p99_ms);
        target(
            "under a password flood, accepted code p99 at most x2",
            format!("p99 {:.1} ms, {growth:.2} x", self.accepted_under_passwords.p99_ms),
            growth <= 2.0,
        );
    }
}

/// Starts `nodes` servers on one database, prepares the accounts, and measures each step.
fn scenario(name: &str, postgres: Option<&str>, nodes: usize) -> Scenario {
    scenario_with(name, postgres, nodes, false)
}

/// The large data set of issue #13, beside the accounts the steps use: 200,000 accounts,
/// 1,000,000 live sessions and 10,000,000 audit events over 400 days. Written with SQL
/// straight into the database (each backend's fastest way), not through the services:
/// argon2 and one request per row would take hours, and only the tables' sizes matter.
async fn add_large_data(database: &LargeTarget, now: i64) {
    use sqlx::{Connection, Executor};
    let statements: Vec<String> =
        match database {
            LargeTarget::Sqlite(_) => vec![
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
             INSERT INTO accounts (kind, role, username, username_key, email, email_key, password_hash, created_at)
             SELECT 'client', NULL, 'bulk' || i, 'bulk' || i, 'bulk' || i || '@example.com',
                    'bulk' || i || '@example.com', 'not a hash', 0 FROM n"
                    .into(),
                format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
             INSERT INTO sessions (token_hash, account_id, stage, csrf_token, created_at, expires_at)
             SELECT randomblob(32), (SELECT MIN(id) FROM accounts WHERE username LIKE 'bulk%') + i % 200000,
                    'authenticated', 'x', {now}, {now} + 86400 FROM n"
                ),
                format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000)
             INSERT INTO audit_events (at, account_id, event, outcome, remote_addr, detail)
             SELECT {now} - (i % 34560000), (SELECT MIN(id) FROM accounts WHERE username LIKE 'bulk%') + i % 200000,
                    'login_totp', 'success', '192.0.2.1', NULL FROM n"
                ),
            ],
            LargeTarget::Postgres(_) => {
                vec![
            "INSERT INTO accounts (kind, role, username, username_key, email, email_key, password_hash, created_at)
             SELECT 'client', NULL, 'bulk' || i, 'bulk' || i, 'bulk' || i || '@example.com',
                    'bulk' || i || '@example.com', 'not a hash', 0 FROM generate_series(1, 200000) AS i".into(),
            format!("INSERT INTO sessions (token_hash, account_id, stage, csrf_token, created_at, expires_at)
             SELECT decode(md5(i::text), 'hex') || decode(md5('s' || i::text), 'hex'),
                    (SELECT MIN(id) FROM accounts WHERE username LIKE 'bulk%') + i % 200000,
                    'authenticated', 'x', {now}, {now} + 86400 FROM generate_series(1, 1000000) AS i"),
            format!("INSERT INTO audit_events (at, account_id, event, outcome, remote_addr, detail)
             SELECT {now} - (i % 34560000), (SELECT MIN(id) FROM accounts WHERE username LIKE 'bulk%') + i % 200000,
                    'login_totp', 'success', '192.0.2.1', NULL FROM generate_series(1, 10000000) AS i"),
            "ANALYZE".into(),
        ]
            }
        };
    let started = Instant::now();
    match database {
        LargeTarget::Sqlite(path) => {
            let url = format!("sqlite://{}", path.display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            for statement in &statements {
                connection.execute(statement.as_str()).await.unwrap();
            }
            connection.execute("ANALYZE").await.unwrap();
        }
        LargeTarget::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            for statement in &statements {
                connection.execute(statement.as_str()).await.unwrap();
            }
        }
    }
    println!("  (large data set written in {:.0} s)", started.elapsed().as_secs_f64());
}

enum LargeTarget {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

fn scenario_with(name: &str, postgres: Option<&str>, nodes: usize, large: bool) -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_010));
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let database_url = postgres.map(|url| server_runtime.block_on(fresh_schema(url)));
    let master_key = data_encoding::BASE64.encode(&twofold::random::bytes::<32>().unwrap());
    let mut apps = Vec::new();
    let mut bases = Vec::new();
    for node in 0..nodes {
        let config = Config {
            data_dir: dir.path().join(format!("node{node}")),
            database_url: database_url.clone(),
            master_key: Some(master_key.clone().into()),
            database_max_connections: number_from_env(
                "TWOFOLD_DATABASE_MAX_CONNECTIONS",
                Config::default().database_max_connections,
            ),
            ..Config::default()
        };
        let (app, base) = server_runtime.block_on(async {
            let app = App::start(config, clock.clone()).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(twofold::web::serve(app.clone(), listener, std::future::pending()));
            (app, base)
        });
        apps.push(app);
        bases.push(base);
    }
    let app = &apps[0];
    if large {
        let target = match &database_url {
            Some(url) => LargeTarget::Postgres(url.clone()),
            None => LargeTarget::Sqlite(dir.path().join("node0").join("twofold.db")),
        };
        server_runtime.block_on(add_large_data(&target, clock.now()));
    }
    let prepared = server_runtime.block_on(prepare(app, "user"));
    // Wrong codes go to accounts of their own, so that every round's right codes find no
    // attempt counter left by the round before.
    let guessed = server_runtime.block_on(prepare(app, "guessed"));

    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{name}");
    let rounds: Vec<Round> = (1..=rounds())
        .map(|round| {
            clock.advance(30);
            println!("  round {round}");
            // Five times as many: about as long as the steps that follow.
            let baseline: Vec<Request> = (0..5 * accounts()).map(|_| (String::new(), "/healthz", None)).collect();
            let healthz = load.block_on(run(
                "    GET /healthz (HTTP only: no database, no crypto)",
                &bases,
                baseline,
                32,
            ));
            let right = server_runtime.block_on(right_codes(app, &prepared, clock.now()));
            let accepted = load.block_on(run("    second factor, right code (accepted)", &bases, right, 32));
            let sessions = server_runtime.block_on(half_logged_in_sessions(app, &guessed));
            let wrong: Vec<_> = sessions
                .into_iter()
                .map(|cookie| (cookie, "/api/v1/login/second-factor", Some(json!({ "code": "000000" }))))
                .collect();
            let wrong = load.block_on(run(
                "    second factor, wrong code (refused, audited)",
                &bases,
                wrong,
                32,
            ));
            Round {
                healthz,
                accepted,
                wrong,
            }
        })
        .collect();

    let passwords: Vec<_> = prepared
        .iter()
        .take(200)
        .map(|p| {
            let body = json!({ "username": p.username, "password": PASSWORD, "area": "client" });
            (String::new(), "/api/v1/login", Some(body))
        })
        .collect();
    let password = load.block_on(run(
        "  password step (argon2id 19 MiB, t=2)",
        &bases,
        passwords.clone(),
        8,
    ));
    let stored = server_runtime.block_on(app.hash_password(PASSWORD)).unwrap();
    let raw_argon2 = raw_argon2_rate(&stored);
    println!("  raw argon2id on this machine (a thread per core, no server): {raw_argon2:.0}/s");

    // The next step's codes on fresh sessions, while password logins arrive faster than
    // they can be served (more than 200 a second).
    clock.advance(30);
    let right = server_runtime.block_on(right_codes(app, &prepared, clock.now()));
    let flood: Vec<_> = passwords.iter().cycle().take(2_000).cloned().collect();
    let accepted_under_passwords = load.block_on(async {
        let bases_for_flood = bases.clone();
        let flood = tokio::spawn(async move {
            run(
                "  (password logins saturating argon2, 16 concurrent)",
                &bases_for_flood,
                flood,
                16,
            )
            .await
        });
        let figures = run("  second factor, right code, argon2 saturated", &bases, right, 32).await;
        flood.abort();
        figures
    });
    drop(load);
    // Servers and load generator share this process: its peak is an upper bound of the
    // servers' (the target is under 150 MB).
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find(|l| l.starts_with("VmHWM")).map(str::to_string))
        .unwrap_or_default();
    println!(
        "  peak resident memory of the whole bench process so far: {}",
        peak.trim_start_matches("VmHWM:").trim()
    );
    drop(apps);
    server_runtime.shutdown_background();
    Scenario {
        rounds,
        password,
        raw_argon2,
        accepted_under_passwords,
    }
}

/// A fresh schema in the PostgreSQL database at `url`, as a `database_url`.
async fn fresh_schema(url: &str) -> String {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .expect("PostgreSQL for the benchmark");
    let schema = format!(
        "bench_{}",
        data_encoding::HEXLOWER.encode(&twofold::random::bytes::<6>().unwrap())
    );
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options[search_path]={schema}")
}

/// Enrolled accounts named `{prefix}{i}`, one for each request of a round.
async fn prepare(app: &App, prefix: &str) -> Vec<Prepared> {
    let hash = app.hash_password(PASSWORD).await.unwrap();
    let mut prepared = Vec::with_capacity(accounts());
    for i in 0..accounts() {
        let username = format!("{prefix}{i}");
        let new = NewAccount {
            kind: AccountKind::Client,
            role: None,
            username: &username,
            email: None,
            password_hash: &hash,
        };
        let id = app.store.create_account(new, app.now()).await.unwrap();
        let account = app.store.account(id).await.unwrap().unwrap();
        let (session, _) = new_session(app, id, Stage::Authenticated).await;
        let EnrolmentSetup::Totp { secret, .. } = app
            .begin_enrolment(&session, &account, ServiceId::Totp, None, None, None)
            .await
            .unwrap()
        else {
            unreachable!("a TOTP enrolment shows its secret")
        };
        let secret = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
        let code = code_at(&secret, TotpParams::default(), step_at(app.now(), 30)).unwrap();
        app.confirm_enrolment(&session, &account, ServiceId::Totp, &Answer::Code(code), None)
            .await
            .unwrap();
        prepared.push(Prepared {
            account_id: id,
            secret,
            username,
        });
    }
    prepared
}

async fn new_session(app: &App, account_id: i64, stage: Stage) -> (Session, String) {
    let token = twofold::random::token().unwrap();
    let session = Session {
        token_hash: session_token_hash(&token),
        account_id,
        stage,
        csrf_token: String::new(),
        expires_at: app.now() + 3600,
        verified_at: None,
    };
    app.store.create_session(&session, app.now()).await.unwrap();
    (session, format!("twofold_session={token}"))
}

async fn half_logged_in_sessions(app: &App, prepared: &[Prepared]) -> Vec<String> {
    let mut cookies = Vec::with_capacity(prepared.len());
    for p in prepared {
        cookies.push(new_session(app, p.account_id, Stage::SecondFactor).await.1);
    }
    cookies
}

/// Each account's code of the step at `now`, answered on a fresh half-logged-in session.
async fn right_codes(app: &App, prepared: &[Prepared], now: i64) -> Vec<Request> {
    let sessions = half_logged_in_sessions(app, prepared).await;
    prepared
        .iter()
        .zip(sessions)
        .map(|(p, cookie)| {
            let code = code_at(&p.secret, TotpParams::default(), step_at(now, 30)).unwrap();
            (cookie, "/api/v1/login/second-factor", Some(json!({ "code": code })))
        })
        .collect()
}

/// What a run measured.
#[derive(Clone, Copy)]
struct Figures {
    rate: f64,
    p99_ms: f64,
}

/// Sends every request once, `concurrency` at a time, and prints the figures.
/// Request `i` goes to node `i % nodes`: the load split evenly, as a load balancer would.
async fn run(name: &str, bases: &[String], requests: Vec<Request>, concurrency: usize) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, requests, next, bases) = (client.clone(), requests.clone(), next.clone(), bases.to_vec());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((cookie, path, body)) = requests.get(i) else {
                        break;
                    };
                    let sent = Instant::now();
                    let base = &bases[i % bases.len()];
                    let mut request = match body {
                        Some(body) => client.post(format!("{base}{path}")).json(body),
                        None => client.get(format!("{base}{path}")),
                    };
                    if !cookie.is_empty() {
                        request = request.header("cookie", cookie);
                    }
                    let response = request.send().await.unwrap();
                    statuses.push(response.status().as_u16());
                    response.bytes().await.unwrap();
                    latencies.push(sent.elapsed());
                }
                (latencies, statuses)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = Vec::new();
    for worker in workers {
        let (l, s) = worker.await.unwrap();
        latencies.extend(l);
        statuses.extend(s);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    statuses.sort();
    statuses.dedup();
    println!(
        "{:<52} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2}   (status {:?}, {} concurrent)",
        name,
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap()),
        statuses,
        concurrency
    );
    Figures {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p99_ms: ms(pct(0.99)),
    }
}

/// Prints a target beside the figure it is about.
fn target(what: &str, measured: String, met: bool) {
    println!(
        "  target: {what:<58} measured: {measured:<28} {}",
        if met { "met" } else { "NOT MET" }
    );
}

/// The raw argon2id rate of this machine: verifications of the benchmark's password on one
/// thread per core, outside any server.
fn raw_argon2_rate(stored: &str) -> f64 {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = 20;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut scratch = twofold::core::password::Scratch::default();
                for _ in 0..per_thread {
                    assert_eq!(
                        twofold::core::password::verify(PASSWORD, stored, &mut scratch),
                        Ok(true)
                    );
                }
            });
        }
    });
    (threads * per_thread) as f64 / started.elapsed().as_secs_f64()
}
