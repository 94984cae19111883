//! Upgrades never lose data: a database made by the previous release (schema 0001: one
//! TOTP row per account) is opened by this version, which migrates it on start; the account
//! then logs in with its next code and its backup code, its used step still refuses a replay,
//! its remembered clock offset still applies, and a lockout still holds. And `twofold db
//! copy` copies every table of the migrated schema.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor};
use twofold::app::App;
use twofold::config::Config;
use twofold::core::backup_codes::BackupCode;
use twofold::core::policy::ServiceId;
use twofold::core::secretbox::MasterKey;
use twofold::core::totp::{code_at, step_at, TotpParams};
use twofold::services::factors::Sealer;
use twofold::store::{SecretWrite, Store};

use crate::support::*;

/// A release's migrations up to `last` (its schema), applied as its own migrator would, so
/// that this version's migrator sees them as already applied (same versions, checksums).
async fn release_migrator(backend: Backend, last: i64) -> sqlx::migrate::Migrator {
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let up_to_last = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    for file in std::fs::read_dir(source).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name[..4].parse::<i64>().unwrap() <= last {
            std::fs::copy(&path, up_to_last.path().join(name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(up_to_last.path()).await.unwrap();
    assert_eq!(migrator.iter().count() as i64, last);
    migrator
}

/// Builds a database of schema `last` holding `rows` (in `dialect`), in `dir` for SQLite;
/// returns the PostgreSQL database's URL.
async fn database_of_release(backend: Backend, last: i64, dir: &std::path::Path, rows: &[String]) -> Option<String> {
    let migrator = release_migrator(backend, last).await;
    match backend {
        Backend::Sqlite => {
            let path = dir.join("twofold.db");
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            migrator.run(&mut connection).await.unwrap();
            for row in rows {
                connection.execute(dialect(row, backend).as_str()).await.unwrap();
            }
            connection.close().await.unwrap();
            None
        }
        Backend::Postgres => {
            let url = fresh_postgres_url().await;
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            migrator.run(&mut connection).await.unwrap();
            for row in rows {
                connection.execute(dialect(row, backend).as_str()).await.unwrap();
            }
            connection
                .execute("SELECT setval(pg_get_serial_sequence('accounts', 'id'), (SELECT MAX(id) FROM accounts))")
                .await
                .unwrap();
            connection.close().await.unwrap();
            Some(url)
        }
    }
}

/// What the previous release stored for an enrolled client: the account, its TOTP
/// credential sealed under `totp:<id>` with its last used step and clock offset, a backup
/// code, a pending enrolment and a session; and a second account that is locked out.
fn previous_release_rows(master_key: &MasterKey, secret: &[u8], used_step: i64, backup: &BackupCode) -> Vec<String> {
    let password_hash = twofold::core::password::hash(PASSWORD, [7; 16]).unwrap();
    let sealed = master_key.seal(
        json!({"secret": data_encoding::BASE32_NOPAD.encode(secret),
               "params": {"algorithm": "SHA1", "digits": 6, "period": 30}})
        .to_string()
        .as_bytes(),
        "totp:1",
        [3; 24],
    );
    let hex = |bytes: &[u8]| data_encoding::HEXLOWER.encode(bytes);
    let backup_hash = backup.hash(&master_key.derive("twofold backup codes"));
    vec![
        format!(
            "INSERT INTO accounts (id, kind, role, username, username_key, email, email_key, password_hash, created_at)
             VALUES (1, 'client', NULL, 'olga', 'olga', 'olga@example.com', 'olga@example.com', '{password_hash}', 1)"
        ),
        // Offset +1: the phone runs one step ahead of the server.
        format!(
            "INSERT INTO two_factor (account_id, service, credential, last_used_step, clock_offset, enrolled_at)
             VALUES (1, 'totp', {}, {used_step}, 1, 2)",
            blob(&hex(&sealed))
        ),
        format!(
            "INSERT INTO pending_enrolments (account_id, service, credential, started_at) VALUES (1, 'totp', {}, 3)",
            blob(&hex(&sealed))
        ),
        format!(
            "INSERT INTO backup_codes (account_id, code_hash, issued_at) VALUES (1, {}, 4)",
            blob(&hex(&backup_hash))
        ),
        format!(
            "INSERT INTO sessions (token_hash, account_id, stage, csrf_token, created_at, expires_at)
             VALUES ({}, 1, 'authenticated', 'x', 5, 9999999999)",
            blob("00ff")
        ),
        // The settings as the previous release wrote them: no YubiKey in them yet.
        r#"INSERT INTO settings (name, value, updated_at) VALUES ('two_factor',
             '{"services":{"totp":{"active":true,"clients":true,"admins":false,
               "settings":{"window":1,"max_drift":2,"algorithm":"SHA1","digits":6}}},
               "force_clients":true,"force_admins":false}', 1)"#
            .to_string(),
        // Another account, locked out by sixty wrong passwords in the current window.
        format!(
            "INSERT INTO accounts (id, kind, role, username, username_key, email, email_key, password_hash, created_at)
             VALUES (2, 'client', NULL, 'pia', 'pia', 'pia@example.com', 'pia@example.com', '{password_hash}', 1)"
        ),
        format!(
            "INSERT INTO attempts (account_id, factor, window_start, attempts) VALUES (2, 'password', {}, 60)",
            START_TIME - 60
        ),
    ]
}

/// A byte string in a statement, written in each backend's own syntax by `dialect`.
fn blob(hex: &str) -> String {
    format!("BLOB_{hex}")
}

fn dialect(statement: &str, backend: Backend) -> String {
    let mut out = String::new();
    let mut rest = statement;
    while let Some(at) = rest.find("BLOB_") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 5..];
        let end = tail.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(tail.len());
        let hex = &tail[..end];
        out.push_str(&match backend {
            Backend::Sqlite => format!("X'{hex}'"),
            Backend::Postgres => format!("'\\x{hex}'::bytea"),
        });
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

async fn an_installation_of_the_previous_release_upgrades_with_nothing_lost(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let key_bytes = [42u8; 32];
    std::fs::write(dir.path().join("master.key"), data_encoding::BASE64.encode(&key_bytes)).unwrap();
    let master_key = MasterKey::from_bytes(key_bytes);
    let secret = b"12345678901234567890".to_vec();
    let server_step = step_at(START_TIME, 30);
    let backup = BackupCode::from_random([9; 10]);
    let rows = previous_release_rows(&master_key, &secret, server_step, &backup);

    let database_url = database_of_release(backend, 1, dir.path(), &rows).await;

    // This version starts on it (migrating it) and the master key opens what was sealed.
    let server = TestServer::start_in(dir, database_url).await;
    let code = |step: i64| code_at(&secret, TotpParams::default(), step).unwrap();

    let client = server.client();
    let (status, login) = client.login("client", "olga").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["status"], "second_factor_required");
    assert_eq!(login["methods"][0]["service"], "totp");
    assert_eq!(login["methods"][0]["label"], "Time-Based Tokens");
    // The used step moved over: its code is still refused.
    let replay = client
        .post("/api/v1/login/second-factor", json!({"code": code(server_step)}))
        .await;
    assert_eq!(error_code(&replay), "code_already_used", "{replay:?}");
    // The clock offset moved over: two steps ahead is inside the window centred one step
    // ahead (without the offset, it would be out of sync).
    let next = client
        .post("/api/v1/login/second-factor", json!({"code": code(server_step + 2)}))
        .await;
    assert_eq!(next.0, StatusCode::OK, "{next:?}");
    let (_, mine) = client.get("/api/v1/me/two-factor").await;
    assert_eq!(mine["credentials"].as_array().unwrap().len(), 1, "{mine}");
    assert!(mine["backup_code"]["issued_at"].is_string(), "{mine}");

    // The backup code moved over.
    let other = server.client();
    other.login("client", "olga").await;
    let (status, used) = other
        .post("/api/v1/login/backup-code", json!({"backup_code": backup.display()}))
        .await;
    assert_eq!(status, StatusCode::OK, "{used}");

    // The settings are read as they were, with the services added since off.
    let settings = server.app.two_factor_settings().await.unwrap();
    assert!(settings.force_clients && !settings.services.totp.admins);
    assert_eq!(settings.services.totp.settings.window, 1);
    assert!(!settings.services.yubikey.active && !settings.services.duo.active);

    // The lockout moved over (as the count of all addresses).
    let locked = server.client().login("client", "pia").await;
    assert_eq!(error_code(&locked), "locked_out", "{locked:?}");
}

async fn db_copy_copies_every_table_of_the_schema(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut tables: Vec<String> = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", server.dir.path().join("twofold.db").display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .fetch_all(&mut connection)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let url = server.config_database_url().unwrap();
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .fetch_all(&mut connection)
            .await
            .unwrap()
        }
    };
    tables.retain(|name| name != "_sqlx_migrations");
    tables.sort();
    let mut copied: Vec<String> = twofold::store::copied_tables().into_iter().map(String::from).collect();
    copied.sort();
    assert_eq!(copied, tables, "twofold db copy must copy every table of the schema");
}

/// A write-only setting is sealed in its own table (Time-Based Tokens has none; the test
/// lends it one): `db copy` carries it, and a node whose master key cannot open it refuses
/// to start, as for the credentials.
async fn sealed_settings_are_carried_by_db_copy_and_guard_the_master_key(backend: Backend) {
    let server = TestServer::start(backend).await;
    let sealed = Sealer::for_setting(&server.app.master_key, ServiceId::Totp, "probe")
        .seal(b"probe value")
        .unwrap();
    let document = serde_json::to_string(&server.app.two_factor_settings().await.unwrap()).unwrap();
    let write = SecretWrite {
        service: "totp",
        name: "probe",
        sealed: Some(sealed.clone()),
    };
    server
        .app
        .store
        .put_setting_with_secrets("two_factor", &document, &[write], server.now())
        .await
        .unwrap();
    assert_eq!(
        server.app.store.setting_secrets_set().await.unwrap(),
        [("totp".to_string(), "probe".to_string())]
    );

    // Copied into a new database of the same kind, as `twofold db copy` does.
    let target_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", server.dir.path().join("copy.db").display()),
        Backend::Postgres => fresh_postgres_url().await,
    };
    let target_config = Config {
        database_url: Some(target_url.clone()),
        ..Config::default()
    };
    let target = Store::open(&target_config.database().unwrap(), target_config.pool_settings())
        .await
        .unwrap();
    target
        .import(&server.app.store.export().await.unwrap(), false)
        .await
        .unwrap();
    drop(target);
    let moved = server.moved_to(target_url.clone()).await;
    let copied = moved.app.store.setting_secret("totp", "probe").await.unwrap().unwrap();
    assert_eq!(copied, sealed);
    let opened = Sealer::for_setting(&moved.app.master_key, ServiceId::Totp, "probe")
        .open(&copied)
        .unwrap();
    assert_eq!(opened, b"probe value");

    // A node with another master key (a new data directory makes one) refuses to start.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: elsewhere.path().to_path_buf(),
        database_url: Some(target_url),
        ..Config::default()
    };
    let clock = std::sync::Arc::new(twofold::clock::ManualClock::new(moved.now()));
    match App::start(config, clock).await {
        Err(error) => assert!(
            error
                .to_string()
                .contains("not the one the stored secrets were sealed with"),
            "{error}"
        ),
        Ok(_) => panic!("a node started with a master key that cannot open a sealed setting"),
    }
}

on_both_backends!(
    an_installation_of_the_previous_release_upgrades_with_nothing_lost,
    sessions_and_their_challenges_survive_the_enrolment_links_migration,
    db_copy_copies_every_table_of_the_schema,
    sealed_settings_are_carried_by_db_copy_and_guard_the_master_key,
);

/// Migration 0008 rebuilds SQLite's sessions table (to allow the enrolment link's stage):
/// a database of schema 0007 keeps its sessions, the state their logins and enrolments keep,
/// and its applications, which must enrol their unenrolled users as before.
async fn sessions_and_their_challenges_survive_the_enrolment_links_migration(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), data_encoding::BASE64.encode(&[42u8; 32])).unwrap();
    let password_hash = twofold::core::password::hash(PASSWORD, [7; 16]).unwrap();
    let token = "a-session-token-of-release-0007";
    let token_hash = data_encoding::HEXLOWER.encode(&twofold::services::login::session_token_hash(token));
    let rows = vec![
        format!(
            "INSERT INTO accounts (id, kind, role, username, username_key, email, email_key, password_hash, created_at)
             VALUES (1, 'client', NULL, 'olga', 'olga', NULL, NULL, '{password_hash}', 1)"
        ),
        format!(
            "INSERT INTO sessions (token_hash, account_id, stage, csrf_token, created_at, expires_at, verified_at)
             VALUES ({}, 1, 'enrolment', 'csrf-0007', 5, {}, NULL)",
            blob(&token_hash),
            START_TIME + 3600
        ),
        format!(
            "INSERT INTO challenges (session_hash, purpose, service, label, sealed, expires_at)
             VALUES ({}, 'enrolment', 'totp', 'Phone', {}, {})",
            blob(&token_hash),
            blob("00112233"),
            START_TIME + 3600
        ),
        "INSERT INTO applications (id, name, kinds, scopes, networks, suspended_at, created_at)
         VALUES (1, 'Shop', 'client', 'check', '', NULL, 1)"
            .to_string(),
    ];
    let database_url = database_of_release(backend, 7, dir.path(), &rows).await;
    let server = TestServer::start_in(dir, database_url).await;

    let session = server.app.session(token).await.unwrap().expect("the session lives on");
    assert_eq!(session.session.stage, twofold::store::Stage::Enrolment);
    assert_eq!(session.session.csrf_token, "csrf-0007");
    let pending = server
        .app
        .store
        .challenge(
            &session.session.token_hash,
            twofold::store::Purpose::Enrolment,
            START_TIME,
        )
        .await
        .unwrap()
        .expect("its enrolment in progress lives on");
    assert_eq!(
        (pending.service.as_str(), pending.label.as_deref()),
        ("totp", Some("Phone"))
    );
    assert_eq!(pending.sealed, vec![0x00, 0x11, 0x22, 0x33]);
    server.full_admin("boss").await;
    let admin = server.client();
    admin.login("admin", "boss").await;
    let (_, listed) = admin.get("/api/v1/admin/applications").await;
    assert_eq!(listed[0]["name"], "Shop");
    assert_eq!(listed[0]["allow_unenrolled"], false, "{listed}");
}
