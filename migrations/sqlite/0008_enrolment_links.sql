-- Enrolment links: an application whose user has no second factor yet gets a one-time link
-- (valid minutes, single use, bound to the account) to enrol in Twofold's pages without a
-- Twofold password. Only the token's hash is kept.
CREATE TABLE enrolment_links (
    token_hash     BLOB    PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    used_at        BIGINT
);
CREATE INDEX enrolment_links_by_expiry ON enrolment_links (expires_at);

-- Whether the application's unenrolled users may pass without a second factor (its
-- `preauth` answers `allow`): off unless an administrator turns it on.
ALTER TABLE applications ADD COLUMN allow_unenrolled BOOLEAN NOT NULL DEFAULT FALSE;

-- A session opened by an enrolment link ('link_enrolment') may only enrol, and ends when it
-- has. SQLite cannot change a CHECK constraint, so the sessions table is rebuilt; dropping it
-- would delete the challenges that hang on sessions (their foreign key cascades), so they
-- are kept aside and put back.
CREATE TEMP TABLE kept_challenges AS SELECT * FROM challenges;
CREATE TABLE sessions_rebuilt (
    token_hash  BLOB    PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stage       TEXT    NOT NULL
                CHECK (stage IN ('second_factor', 'enrolment', 'authenticated', 'link_enrolment')),
    csrf_token  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    verified_at BIGINT
);
INSERT INTO sessions_rebuilt (token_hash, account_id, stage, csrf_token, created_at, expires_at, verified_at)
SELECT token_hash, account_id, stage, csrf_token, created_at, expires_at, verified_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_rebuilt RENAME TO sessions;
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
INSERT INTO challenges SELECT * FROM kept_challenges;
DROP TABLE kept_challenges;
