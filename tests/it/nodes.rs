//! Several real `twofold serve` processes on one PostgreSQL database behave as one node.
//!
//! These nodes read the real clock (they are real processes), so the codes here come from
//! the real clock too.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use twofold::core::totp::{code_at, step_at, TotpParams};

use crate::support::{assert_single_use, change_settings, error_code, fresh_postgres_url, race, Client, PASSWORD};

/// Unix time from the real clock: these servers are real processes reading it.
#[allow(clippy::disallowed_methods)]
fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn code(secret: &str, steps: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
    code_at(&secret, TotpParams::default(), step_at(real_now(), 30) + steps).unwrap()
}

/// A cluster's shared configuration: one database, one master key.
pub struct Cluster {
    pub database_url: String,
    master_key: String,
    dir: tempfile::TempDir,
    extra_env: Vec<(String, String)>,
}

/// A running `twofold serve` process, killed when dropped.
pub struct Node {
    pub base: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown, no cleanup.
    fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder().cookie_store(true).build().unwrap(),
            base: self.base.clone(),
        }
    }
}

impl Cluster {
    pub async fn new(extra_env: &[(&str, &str)]) -> Cluster {
        Cluster::on(fresh_postgres_url().await, extra_env)
    }

    pub fn on(database_url: String, extra_env: &[(&str, &str)]) -> Cluster {
        Cluster {
            database_url,
            master_key: data_encoding::BASE64.encode(&twofold::random::bytes::<32>().unwrap()),
            dir: tempfile::tempdir().unwrap(),
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn command(&self, node: &str) -> Command {
        let data_dir = self.dir.path().join(node);
        let mut command = Command::new(env!("CARGO_BIN_EXE_twofold"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TWOFOLD_DATA_DIR", data_dir)
            .env("TWOFOLD_DATABASE_URL", &self.database_url)
            .env("TWOFOLD_MASTER_KEY", &self.master_key)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts `twofold serve`, its log piped; the process is owned by a `Node` from the
    /// start, so it is killed whatever happens next.
    fn spawn(&self, name: &str) -> Node {
        let child = self
            .command(name)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn();
        Node {
            base: String::new(),
            child: child.unwrap(),
        }
    }

    /// Starts a node and waits until it listens.
    pub fn node(&self, name: &str) -> Node {
        let mut node = self.spawn(name);
        let mut stderr = BufReader::new(node.child.stderr.take().unwrap());
        let mut log = String::new();
        loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "node {name} exited: {log}");
            log.push_str(&line);
            if let Some(at) = line.find("listening on http://") {
                node.base = line[at + "listening on ".len()..].trim().to_string();
                // Keep draining the log so the node never blocks on a full pipe.
                std::thread::spawn(move || for _ in stderr.lines() {});
                return node;
            }
        }
    }

    /// The one-time setup token a node wrote into its data directory.
    pub fn setup_token(&self, node: &str) -> String {
        let path = self.dir.path().join(node).join("setup-token");
        std::fs::read_to_string(path).unwrap().trim().to_string()
    }

    /// Runs a `twofold` subcommand against the cluster's database.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let output = self.command("cli").args(args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr),
        )
    }

    /// A full administrator, made with the command line.
    pub fn create_admin(&self, username: &str) {
        let password_file = self.dir.path().join("admin-password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        let (ok, out) = self.run(&[
            "admin",
            "create",
            "--username",
            username,
            "--password-file",
            password_file.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
    }

    pub fn create_client(&self, username: &str) {
        let password_file = self.dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        let (ok, out) = self.run(&[
            "client",
            "create",
            "--username",
            username,
            "--email",
            &format!("{username}@example.com"),
            "--password-file",
            password_file.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
    }
}

/// Enrols `username` through `node`; returns the secret and the backup code.
async fn enrol(node: &Node, username: &str) -> (String, String) {
    let client = node.client();
    assert_eq!(client.login("client", username).await.1["status"], "authenticated");
    let (_, enrolment) = client.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    let (status, confirmed) = client
        .post(
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    (secret, confirmed["backup_code"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_code_raced_across_two_nodes_succeeds_once() {
    // Lockout is raised so all twenty reach the code check: this is about the used step.
    let cluster = Cluster::new(&[
        ("TWOFOLD_LOCKOUT__MAX_FAILURES", "1000"),
        ("TWOFOLD_LOCKOUT__ACCOUNT_MAX_FAILURES", "1000"),
    ])
    .await;
    cluster.create_client("ana");
    let nodes = [cluster.node("a"), cluster.node("b")];
    let (secret, _) = enrol(&nodes[0], "ana").await;

    let mut sessions = Vec::new();
    for i in 0..20 {
        let client = nodes[i % 2].client();
        assert_eq!(
            client.login("client", "ana").await.1["status"],
            "second_factor_required"
        );
        sessions.push(client);
    }
    let code = code(&secret, 1);
    let answers = race(sessions, "/api/v1/login/second-factor", json!({"code": code})).await;
    assert_single_use(&answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_codes_spread_across_nodes_lock_at_the_same_count_and_sessions_move() {
    let cluster = Cluster::new(&[]).await;
    cluster.create_client("ben");
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let (secret, _) = enrol(&a, "ben").await;

    // A session started on A is valid on B (same cookie), and logging out on B ends it on A.
    let on_a = a.client();
    on_a.login("client", "ben").await;
    let cookie_jar_moves = Client {
        http: on_a.http.clone(),
        base: b.base.clone(),
    };
    assert_eq!(
        error_code(&cookie_jar_moves.get("/api/v1/me").await),
        "second_factor_required",
        "same stage on B"
    );
    let done = cookie_jar_moves
        .post("/api/v1/login/second-factor", json!({"code": code(&secret, 1)}))
        .await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    assert_eq!(on_a.get("/api/v1/me").await.1["username"], "ben");
    assert_eq!(
        cookie_jar_moves.post_empty("/api/v1/logout").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(error_code(&on_a.get("/api/v1/me").await), "unauthenticated");

    // Five wrong codes, alternating nodes, then both refuse even the right one.
    let attacker_a = a.client();
    attacker_a.login("client", "ben").await;
    let attacker_b = Client {
        http: attacker_a.http.clone(),
        base: b.base.clone(),
    };
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| (-25..=25).all(|d| *c != code(&secret, d)))
        .unwrap();
    for i in 0..5 {
        let node = if i % 2 == 0 { &attacker_a } else { &attacker_b };
        assert_eq!(
            error_code(&node.post("/api/v1/login/second-factor", json!({"code": wrong})).await),
            "invalid_code"
        );
    }
    for node in [&attacker_a, &attacker_b] {
        let refused = node
            .post("/api/v1/login/second-factor", json!({"code": code(&secret, 1)}))
            .await;
        assert_eq!(error_code(&refused), "locked_out");
    }
}

/// A TCP relay between the nodes and PostgreSQL that the test can cut: PostgreSQL
/// "stopping" as the nodes see it (refused and reset connections), without stopping the
/// machine's server that other tests share.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (target, flag, open) = (target.to_string(), down.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if flag.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let target = target.clone();
                open.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay {
            port,
            down,
            connections,
        }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_the_nodes_recover_by_themselves() {
    let relay = Relay::start("127.0.0.1:5432").await;
    let url = fresh_postgres_url()
        .await
        .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port), 1);
    let cluster = Cluster::on(url, &[("TWOFOLD_DATABASE_ACQUIRE_TIMEOUT_SECS", "2")]);
    cluster.create_client("cy");
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let (secret, backup) = enrol(&a, "cy").await;
    let signed_in = b.client();
    signed_in.login("client", "cy").await;
    let done = signed_in
        .post("/api/v1/login/second-factor", json!({"code": code(&secret, 1)}))
        .await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    let half = a.client();
    half.login("client", "cy").await;

    relay.cut();
    for (client, request) in [
        (&signed_in, "me"),
        (&half, "code"),
        (&a.client(), "login"),
        (&b.client(), "login"),
    ] {
        let answer = match request {
            "me" => client.get("/api/v1/me").await,
            "code" => {
                client
                    .post("/api/v1/login/second-factor", json!({"code": code(&secret, 1)}))
                    .await
            }
            _ => client.login("client", "cy").await,
        };
        assert_eq!(
            (answer.0, error_code(&answer)),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            "{request}: {}",
            answer.1
        );
    }

    relay.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if signed_in.get("/api/v1/me").await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "node B recovered without a restart");
    let answer = half
        .post("/api/v1/login/backup-code", json!({"backup_code": backup}))
        .await;
    assert_eq!(answer.0, StatusCode::OK, "node A recovered: {}", answer.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_load_leaves_no_half_enrolment_and_no_twice_used_backup_code() {
    let cluster = Cluster::new(&[
        ("TWOFOLD_LOCKOUT__MAX_FAILURES", "1000"),
        ("TWOFOLD_LOCKOUT__ACCOUNT_MAX_FAILURES", "1000"),
    ])
    .await;
    let names: Vec<String> = (0..24).map(|i| format!("user{i}")).collect();
    for name in &names {
        cluster.create_client(name);
    }
    let mut doomed = cluster.node("doomed");
    // Half the accounts are mid-enrolment (QR shown), half are enrolled and at the code step.
    let (enrolling, enrolled) = names.split_at(12);
    let mut confirmations = Vec::new();
    for name in enrolling {
        let client = doomed.client();
        client.login("client", name).await;
        let (_, enrolment) = client.post_empty("/api/v1/me/two-factor/totp/enrollment").await;
        confirmations.push((client, enrolment["secret"].as_str().unwrap().to_string()));
    }
    let mut backup_logins = Vec::new();
    for name in enrolled {
        let (_, backup) = enrol(&doomed, name).await;
        let (first, second) = (doomed.client(), doomed.client());
        first.login("client", name).await;
        second.login("client", name).await;
        backup_logins.push((name.clone(), backup, first, second));
    }

    // Fire everything at once; kill the node when a third of the answers are back.
    let total = confirmations.len() + 2 * backup_logins.len();
    let (answered, third_answered) = (
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let mut tasks = Vec::new();
    let post = |client: Client, path: &'static str, body: serde_json::Value, name: Option<String>| {
        let (answered, third_answered) = (answered.clone(), third_answered.clone());
        tokio::spawn(async move {
            let answer = client
                .http
                .post(format!("{}{path}", client.base))
                .json(&body)
                .send()
                .await;
            if answered.fetch_add(1, Ordering::SeqCst) + 1 == total / 3 {
                third_answered.notify_one();
            }
            (name, answer.map(|r| r.status()).ok())
        })
    };
    for (client, secret) in confirmations {
        let body = json!({"code": code(&secret, 0)});
        tasks.push(post(
            client,
            "/api/v1/me/two-factor/totp/enrollment/confirm",
            body,
            None,
        ));
    }
    for (name, backup, first, second) in &backup_logins {
        for client in [first, second] {
            let body = json!({"backup_code": backup});
            tasks.push(post(
                client.clone(),
                "/api/v1/login/backup-code",
                body,
                Some(name.clone()),
            ));
        }
    }
    third_answered.notified().await;
    doomed.kill_hard();
    let mut accepted_before: std::collections::HashMap<String, usize> = Default::default();
    let mut statuses = Vec::new();
    for task in tasks {
        let (name, status) = task.await.unwrap();
        if let (Some(name), Some(StatusCode::OK)) = (name, status) {
            *accepted_before.entry(name).or_default() += 1;
        }
        statuses.push(status.map(|s| s.as_u16()));
    }

    eprintln!("answers before the kill (None: cut off): {statuses:?}");
    // What the database holds: every account fully enrolled (credential and backup code)
    // or not at all.
    let store = twofold::store::Store::open(
        &twofold::store::Database::Postgres(cluster.database_url.clone()),
        twofold::store::PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    for name in &names {
        let account = store
            .find_account(twofold::core::policy::AccountKind::Client, name)
            .await
            .unwrap()
            .unwrap();
        let credential = !store.credentials(account.id).await.unwrap().is_empty();
        let backup = store.backup_code(account.id).await.unwrap().is_some();
        assert_eq!(credential, backup, "{name}: half enrolled");
    }

    // No backup code is accepted twice: not by the two racing requests before the kill,
    // nor once more on another node after it.
    let survivor = cluster.node("survivor");
    for (name, backup, _, _) in &backup_logins {
        let client = survivor.client();
        client.login("client", name).await;
        let after = client
            .post("/api/v1/login/backup-code", json!({"backup_code": backup}))
            .await;
        let accepted = accepted_before.get(name).copied().unwrap_or(0) + usize::from(after.0 == StatusCode::OK);
        assert!(accepted <= 1, "{name}'s backup code was accepted {accepted} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_master_key_cannot_open_the_secrets_refuses_to_start() {
    let cluster = Cluster::new(&[]).await;
    cluster.create_client("dee");
    enrol(&cluster.node("a"), "dee").await;

    let stranger = Cluster::on(cluster.database_url.clone(), &[]);
    let mut node = stranger.spawn("b");
    let mut waited = 0;
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            waited < 200,
            "the node started with a master key that cannot open the stored secrets"
        );
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut node.child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success());
    assert!(
        log.contains("master key") && log.contains("not the one the stored secrets were sealed with"),
        "{log}"
    );
    assert!(
        !log.contains(&stranger.master_key) && !log.contains(&cluster.master_key),
        "keys never appear in logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_saved_on_one_node_apply_on_the_other_at_once() {
    let cluster = Cluster::new(&[]).await;
    cluster.create_client("eve");
    cluster.create_admin("root");
    let (a, b) = (cluster.node("a"), cluster.node("b"));

    let admin = a.client();
    admin.login("admin", "root").await;
    let (_, mut settings) = admin.get("/api/v1/admin/two-factor/settings").await;
    settings.as_object_mut().unwrap().remove("server_time_utc");
    settings["force_clients"] = json!(true);
    assert_eq!(
        admin.put("/api/v1/admin/two-factor/settings", settings).await.0,
        StatusCode::OK
    );
    assert_eq!(
        b.client().login("client", "eve").await.1["status"],
        "enrollment_required"
    );
}

/// The second step reads the settings with the credentials, in the same query: a TOTP
/// window saved on one node judges the next answer on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_totp_window_saved_on_one_node_judges_the_next_code_on_the_other() {
    let cluster = Cluster::new(&[]).await;
    cluster.create_client("eve");
    cluster.create_admin("root");
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let (secret, _) = enrol(&a, "eve").await;
    let admin = a.client();
    admin.login("admin", "root").await;
    let window = |steps: u32| {
        change_settings(&admin, move |settings| {
            settings["services"]["totp"]["settings"]["window"] = json!(steps);
            settings["services"]["totp"]["settings"]["max_drift"] = json!(0);
        })
    };
    let on_b = b.client();
    assert_eq!(on_b.login("client", "eve").await.1["status"], "second_factor_required");

    assert_eq!(window(0).await.0, StatusCode::OK);
    let next_step = json!({"code": code(&secret, 1)});
    let refused = on_b.post("/api/v1/login/second-factor", next_step.clone()).await;
    assert_eq!(error_code(&refused), "invalid_code", "{}", refused.1);

    assert_eq!(window(1).await.0, StatusCode::OK);
    let accepted = on_b.post("/api/v1/login/second-factor", next_step).await;
    assert_eq!(accepted.0, StatusCode::OK, "{}", accepted.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_starting_together_on_an_empty_database_migrate_it_once() {
    let cluster = Cluster::new(&[]).await;
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| cluster.node("a"));
        let b = scope.spawn(|| cluster.node("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for node in [&a, &b] {
        assert_eq!(
            reqwest::get(format!("{}/healthz", node.base)).await.unwrap().status(),
            StatusCode::OK
        );
    }
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&cluster.database_url).await.unwrap();
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "each migration applied exactly once: {applied:?}");
}

/// The README's nginx example, without TLS: two nodes behind one address.
fn nginx_config(dir: &std::path::Path, port: u16, nodes: [&Node; 2]) -> String {
    let upstream = |node: &Node| node.base.trim_start_matches("http://").to_string();
    let d = dir.display();
    format!(
        "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    upstream twofold {{
        server {a} max_fails=2 fail_timeout=5s;
        server {b} max_fails=2 fail_timeout=5s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://twofold;
            proxy_set_header Host $http_host;
            proxy_next_upstream error timeout;
        }}
    }}
}}
",
        a = upstream(nodes[0]),
        b = upstream(nodes[1]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_behind_nginx_serve_logins_and_survive_losing_one() {
    let cluster = Cluster::new(&[]).await;
    cluster.create_client("fay");
    let (mut a, b) = (cluster.node("a"), cluster.node("b"));
    let (secret, _) = enrol(&a, "fay").await;

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, nginx_config(dir.path(), port, [&a, &b])).unwrap();
    let nginx = Command::new("nginx")
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (Debian package nginx-light)");
    let nginx = Nginx {
        base: format!("http://127.0.0.1:{port}"),
        child: nginx,
    };
    let mut ready = false;
    for _ in 0..100 {
        if reqwest::get(format!("{}/healthz", nginx.base))
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "nginx did not come up: {}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );

    // A browser-like login through the proxy: requests alternate between the nodes.
    let browser = Client {
        http: reqwest::Client::builder().cookie_store(true).build().unwrap(),
        base: nginx.base.clone(),
    };
    let login = browser
        .send(
            browser
                .http
                .post(format!("{}/api/v1/login", nginx.base))
                .header("origin", &nginx.base)
                .json(&json!({"username": "fay", "password": PASSWORD, "area": "client"})),
        )
        .await;
    assert_eq!(
        login.1["status"], "second_factor_required",
        "the Origin matches the forwarded Host"
    );
    let done = browser
        .post("/api/v1/login/second-factor", json!({"code": code(&secret, 1)}))
        .await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    for _ in 0..4 {
        assert_eq!(browser.get("/api/v1/me").await.1["username"], "fay");
    }

    // One node dies: the proxy sends everything to the other; the session lives on.
    a.kill_hard();
    for _ in 0..4 {
        assert_eq!(browser.get("/api/v1/me").await.1["username"], "fay");
    }
    assert_eq!(browser.post_empty("/api/v1/logout").await.0, StatusCode::NO_CONTENT);
    drop(b);
}

/// nginx, stopped gracefully (SIGTERM) so that its workers go with it.
struct Nginx {
    base: String,
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A code no step near now has (so it is wrong, not "out of sync").
fn far_wrong_code(secret: &str) -> String {
    let near: Vec<String> = (-25..=25).map(|delta| code(secret, delta)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// When the database refuses writes, an attempt that cannot be counted is not checked:
/// wrong codes, wrong passwords and the right code alike answer 503 (never a 401 that a
/// guesser could keep receiving without limit, never a 500); once writes work again the
/// login completes, and none of the refused attempts was counted.
async fn a_database_that_refuses_writes_is_unavailable(cluster: Cluster, refuse_writes: impl Fn(&Node, bool)) {
    cluster.create_client("wendy");
    let node = cluster.node("a");
    let (secret, _) = enrol(&node, "wendy").await;
    let next = code(&secret, 1);
    let half = node.client();
    assert_eq!(
        half.login("client", "wendy").await.1["status"],
        "second_factor_required"
    );

    refuse_writes(&node, true);
    let unavailable = |answer: &crate::support::Answer| {
        (answer.0, error_code(answer)) == (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
    };
    for attempt in 0..7 {
        let wrong = half
            .post("/api/v1/login/second-factor", json!({"code": far_wrong_code(&secret)}))
            .await;
        assert!(unavailable(&wrong), "wrong code #{attempt}: {wrong:?}");
        let password = node.client().login_with("client", "wendy", "wrong password!").await;
        assert!(unavailable(&password), "wrong password #{attempt}: {password:?}");
    }
    let right = half.post("/api/v1/login/second-factor", json!({"code": next})).await;
    assert!(unavailable(&right), "the right code: {right:?}");

    refuse_writes(&node, false);
    let right = half.post("/api/v1/login/second-factor", json!({"code": next})).await;
    assert_eq!(right.0, StatusCode::OK, "{right:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_beyond_its_file_size_limit_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::on(format!("sqlite://{}", dir.path().join("twofold.db").display()), &[]);
    a_database_that_refuses_writes_is_unavailable(cluster, |node, refuse| {
        // The soft limit only: no write to any file can succeed while it is 0.
        let limit = if refuse { "--fsize=0:" } else { "--fsize=unlimited:" };
        let status = Command::new("prlimit")
            .args(["--pid", &node.pid().to_string(), limit])
            .status()
            .expect("prlimit (util-linux) runs");
        assert!(status.success());
    })
    .await;
}

/// Another process (here a plain SQLite connection; in life the command line) holding
/// SQLite's write lock makes a login wait for it, not fail, and not stop the server: the
/// page answers meanwhile, and the code is accepted once the lock is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_waits_for_another_process_writing_sqlite() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("twofold.db");
    let cluster = Cluster::on(format!("sqlite://{}", database.display()), &[]);
    cluster.create_client("olga");
    let node = cluster.node("a");
    let (secret, _) = enrol(&node, "olga").await;
    let half = node.client();
    half.login("client", "olga").await;

    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let answer = tokio::spawn({
        let half = half.clone();
        let released = released.clone();
        let code = code(&secret, 1);
        async move {
            let answer = half.post("/api/v1/login/second-factor", json!({"code": code})).await;
            (answer, released.load(Ordering::SeqCst))
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !answer.is_finished(),
        "the code was answered while another process held the lock"
    );
    assert_eq!(node.client().get("/healthz").await.0, StatusCode::OK);
    released.store(true, Ordering::SeqCst);
    other.execute("COMMIT").await.unwrap();

    let (answer, after_release) = answer.await.unwrap();
    assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    assert!(after_release, "answered before the lock was let go");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_in_read_only_mode_is_unavailable() {
    let database = OwnDatabase::create().await;
    let cluster = Cluster::on(database.url(), &[]);
    let switch = |refuse: bool| {
        let database = database.clone();
        // The switch runs on its own thread and runtime: the test's runtime is busy awaiting.
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let setting = if refuse {
                    "SET default_transaction_read_only = on"
                } else {
                    "RESET default_transaction_read_only"
                };
                database
                    .admin(&format!("ALTER DATABASE {} {setting}", database.name))
                    .await;
                // The node's open connections keep their old setting: end them.
                database.end_connections().await;
            })
        })
        .join()
        .unwrap();
    };
    a_database_that_refuses_writes_is_unavailable(cluster, |_, refuse| switch(refuse)).await;
    database.drop().await;
}

/// The server ending a node's idle connections (PostgreSQL restarted, or an operator's
/// `pg_terminate_backend`) costs no login: each next request runs on new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_go_on_after_postgres_ends_the_connections() {
    let database = OwnDatabase::create().await;
    let cluster = Cluster::on(database.url(), &[]);
    cluster.create_client("nina");
    let node = cluster.node("a");
    let (secret, _) = enrol(&node, "nina").await;
    let half = node.client();

    database.end_connections().await;
    assert_eq!(half.login("client", "nina").await.1["status"], "second_factor_required");
    database.end_connections().await;
    let wrong = half
        .post("/api/v1/login/second-factor", json!({"code": far_wrong_code(&secret)}))
        .await;
    assert_eq!(error_code(&wrong), "invalid_code", "{wrong:?}");
    database.end_connections().await;
    let right = half
        .post("/api/v1/login/second-factor", json!({"code": code(&secret, 1)}))
        .await;
    assert_eq!(right.0, StatusCode::OK, "{right:?}");
    database.end_connections().await;
    assert_eq!(half.get("/api/v1/me").await.1["username"], "nina");
    database.drop().await;
}

/// A right code is counted like any guess: it waits for a guess counted beside it that is
/// not yet committed, and is refused if that guess filled the limit. (On PostgreSQL, a look
/// at the committed counters would let a right guess among many parallel ones through past
/// the limit.) The guess here is another connection's transaction, holding the address's
/// counter at the limit while the code is sent.
async fn a_right_code_waits_for_a_guess_counted_beside_it(cluster: Cluster) {
    cluster.create_client("rita");
    let node = cluster.node("a");
    let (secret, _) = enrol(&node, "rita").await;
    let half = node.client();
    half.login("client", "rita").await;

    let count_at_the_limit = format!(
        "INSERT INTO lockouts (subject, factor, source, window_start, window_secs, attempts, failures)
         SELECT 'account:' || id, 'second_factor', '127.0.0.1', {}, 900, 5, 5
         FROM accounts WHERE username = 'rita'",
        real_now()
    );
    let mut guess = OtherConnection::connect(&cluster.database_url).await;
    guess.run("BEGIN").await;
    guess.run(&count_at_the_limit).await;
    let answer = tokio::spawn({
        let half = half.clone();
        let code = code(&secret, 1);
        async move { half.post("/api/v1/login/second-factor", json!({"code": code})).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !answer.is_finished(),
        "the right code was settled beside an uncommitted guess"
    );
    guess.run("COMMIT").await;
    let answer = answer.await.unwrap();
    assert_eq!(answer.0, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    assert_eq!(error_code(&answer), "locked_out");
}

/// Another connection to a cluster's database, whichever it is.
enum OtherConnection {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl OtherConnection {
    async fn connect(url: &str) -> OtherConnection {
        use sqlx::Connection;
        if url.starts_with("sqlite:") {
            OtherConnection::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap())
        } else {
            OtherConnection::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
        }
    }

    async fn run(&mut self, statement: &str) {
        use sqlx::Executor;
        match self {
            OtherConnection::Postgres(connection) => connection.execute(statement).await.map(drop),
            OtherConnection::Sqlite(connection) => connection.execute(statement).await.map(drop),
        }
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_code_waits_for_a_guess_counted_beside_it_on_postgres() {
    a_right_code_waits_for_a_guess_counted_beside_it(Cluster::new(&[]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_code_waits_for_a_guess_counted_beside_it_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("twofold.db").display());
    a_right_code_waits_for_a_guess_counted_beside_it(Cluster::on(url, &[])).await;
}

/// A PostgreSQL database of a test's own (not a schema of the shared one), for a test
/// that ends the connections to it.
#[derive(Clone)]
struct OwnDatabase {
    server: String,
    name: String,
}

impl OwnDatabase {
    async fn create() -> OwnDatabase {
        let base = crate::support::postgres_base_url();
        let (server, _) = base.rsplit_once('/').unwrap();
        let name = format!(
            "twofold_own_{}",
            data_encoding::HEXLOWER.encode(&twofold::random::bytes::<6>().unwrap())
        );
        let database = OwnDatabase {
            server: server.to_string(),
            name,
        };
        database.admin(&format!("CREATE DATABASE {}", database.name)).await;
        database
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Runs `statement` on the server's `postgres` database.
    async fn admin(&self, statement: &str) {
        use sqlx::{Connection, Executor};
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .unwrap();
        admin.execute(statement).await.unwrap();
    }

    /// Ends every connection to this database, and waits until each has ended.
    async fn end_connections(&self) {
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ))
        .await;
    }

    async fn drop(self) {
        self.admin(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await;
    }
}

/// Each node of a new installation writes its own setup token; two setups raced on two
/// nodes, each with its node's token, create exactly one first administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_setups_raced_on_two_nodes_create_one_first_administrator() {
    let cluster = Cluster::new(&[]).await;
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let (token_a, token_b) = (cluster.setup_token("a"), cluster.setup_token("b"));
    assert_ne!(token_a, token_b);
    let setup = |node: &Node, token: String, username: &'static str| {
        let client = node.client();
        async move {
            client
                .post(
                    "/api/v1/setup",
                    json!({"setup_token": token, "username": username, "password": PASSWORD}),
                )
                .await
        }
    };
    let (first, second) = tokio::join!(setup(&a, token_a, "alpha"), setup(&b, token_b, "bravo"));
    let created = [&first, &second].iter().filter(|answer| answer.0.is_success()).count();
    assert_eq!(created, 1, "{first:?} {second:?}");
    let (ok, listed) = cluster.run(&["admin", "list"]);
    assert!(ok, "{listed}");
    let admins = ["alpha", "bravo"].iter().filter(|name| listed.contains(*name)).count();
    assert_eq!(admins, 1, "{listed}");
}

/// A Duo push started through one node completes through the other: the transaction is in
/// the session's challenge in the shared database, not in a node's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duo_push_started_on_one_node_completes_on_the_other() {
    use crate::duo_double::{DuoDouble, DuoUser, IKEY, SKEY};
    let double = DuoDouble::start(IKEY, SKEY).await;
    double.add_user("dan", DuoUser::default());
    let ca_file = double.ca_file.to_str().unwrap().to_string();
    let cluster = Cluster::new(&[("TWOFOLD_TLS_CA_FILE", &ca_file)]).await;
    cluster.create_client("dan");
    cluster.create_admin("root");
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let admin = a.client();
    admin.login("admin", "root").await;
    let (status, saved) = change_settings(&admin, |settings| {
        settings["services"]["duo"] = crate::duo::duo("auth_api", IKEY, json!(SKEY), &double.host);
        settings["services"]["duo"]["active"] = json!(true);
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");

    // Enrolled through node a with a passcode.
    let client = a.client();
    client.login("client", "dan").await;
    client.post("/api/v1/me/two-factor/duo/enrollment", json!({})).await;
    let (status, enabled) = client
        .post(
            "/api/v1/me/two-factor/duo/enrollment/confirm",
            json!({"code": "123456"}),
        )
        .await;
    assert_eq!(
        (status, &enabled["status"]),
        (StatusCode::OK, &json!("enabled")),
        "{enabled}"
    );

    // The push starts on node a; the same session polls node b until Duo says yes.
    let on_a = a.client();
    assert_eq!(on_a.login("client", "dan").await.1["status"], "second_factor_required");
    let (_, pushed) = on_a
        .post(
            "/api/v1/login/second-factor",
            json!({"service": "duo", "type": "choose", "option": "push:0"}),
        )
        .await;
    assert_eq!(pushed["challenge"]["type"], "approval", "{pushed}");
    let cookie = on_a.http.clone();
    let on_b = Client {
        http: cookie,
        base: b.base.clone(),
    };
    let mut last = None;
    for _ in 0..5 {
        let answer = on_b
            .post("/api/v1/login/second-factor", json!({"service": "duo", "type": "poll"}))
            .await;
        if answer.1["pending"] != true {
            last = Some(answer);
            break;
        }
    }
    let (status, done) = last.expect("decided within five polls");
    assert_eq!(
        (status, &done["status"]),
        (StatusCode::OK, &json!("authenticated")),
        "{done}"
    );
}
