-- Accounts, Time-Based Tokens, backup codes, lockout counters, sessions, settings, audit.
-- Times are Unix seconds. Secrets are sealed (XChaCha20-Poly1305) before they get here;
-- backup codes and session tokens are stored only as hashes.

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL CHECK (kind IN ('admin', 'client')),
    role          TEXT             CHECK (role IN ('full', 'staff')),
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL,
    email         TEXT,
    email_key     TEXT,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    UNIQUE (kind, username_key),
    UNIQUE (kind, email_key)
);

CREATE TABLE two_factor (
    account_id     INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    service        TEXT    NOT NULL,
    credential     BLOB    NOT NULL,
    last_used_step BIGINT,
    clock_offset   BIGINT  NOT NULL DEFAULT 0,
    enrolled_at    BIGINT  NOT NULL
);

CREATE TABLE pending_enrolments (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    service    TEXT    NOT NULL,
    credential BLOB    NOT NULL,
    started_at BIGINT  NOT NULL
);

CREATE TABLE backup_codes (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL,
    issued_at  BIGINT  NOT NULL
);

CREATE TABLE attempts (
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    factor       TEXT    NOT NULL,
    window_start BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL,
    PRIMARY KEY (account_id, factor)
);

CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stage      TEXT    NOT NULL CHECK (stage IN ('second_factor', 'enrolment', 'authenticated')),
    csrf_token TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE settings (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT  NOT NULL,
    account_id  BIGINT,
    event       TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    remote_addr TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_by_account ON audit_events (account_id, at);
