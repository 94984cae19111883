-- Applications (a web product with its own login, a VPN through RADIUS) that ask Twofold for
-- the second factor through the validate API. `kinds`: the kinds of account it may act for
-- ('admin', 'client' or 'both'); `scopes`: what it may do, comma-separated ('check',
-- 'challenge', 'accounts'); `networks`: the CIDR it may call from, comma-separated (empty:
-- anywhere); `suspended_at`: NULL while it is active.
CREATE TABLE applications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    kinds        TEXT    NOT NULL CHECK (kinds IN ('admin', 'client', 'both')),
    scopes       TEXT    NOT NULL,
    networks     TEXT    NOT NULL,
    suspended_at BIGINT,
    created_at   BIGINT  NOT NULL
);

-- An application's API keys (`tfk_<key_id>_<secret>`): the secret only as a keyed hash
-- (HMAC-SHA-256 under a key derived from the master key).
CREATE TABLE application_keys (
    key_id         TEXT    PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    secret_hash    BLOB    NOT NULL,
    created_at     BIGINT  NOT NULL,
    last_used_at   BIGINT,
    expires_at     BIGINT,
    revoked_at     BIGINT
);
CREATE INDEX application_keys_by_application ON application_keys (application_id);
