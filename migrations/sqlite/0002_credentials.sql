-- Second-factor credentials: any number per account (up to 10, enforced by the service), of
-- any service. Each has a label the user chooses, its sealed secret, a replay counter that
-- must increase (TOTP step, YubiKey counter, WebAuthn signature count) and non-secret state
-- (JSON, such as a TOTP device's clock offset).
CREATE TABLE credentials (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    service      TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    secret       BLOB    NOT NULL,
    counter      BIGINT,
    state        TEXT,
    enrolled_at  BIGINT  NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX credentials_by_account ON credentials (account_id);

-- The one credential of each account moves over with its used step and clock offset. Its
-- secret stays sealed as it was (the sealing context is still `service:account_id`).
INSERT INTO credentials (account_id, service, label, secret, counter, state, enrolled_at)
SELECT account_id, service,
       CASE service WHEN 'totp' THEN 'Time-Based Tokens' ELSE service END,
       credential, last_used_step, '{"clock_offset":' || clock_offset || '}', enrolled_at
FROM two_factor;

-- State a step of a login or an enrolment keeps between requests (a secret being enrolled,
-- a Duo transaction, a WebAuthn challenge): sealed, bound to the session that made it, with
-- an expiry, consumed by the transaction that completes the step. Enrolments in progress
-- were bound to the account; they are not carried over (the user clicks Get Started again).
CREATE TABLE challenges (
    session_hash BLOB    NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('enrolment', 'login')),
    service      TEXT    NOT NULL,
    label        TEXT,
    sealed       BLOB    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    PRIMARY KEY (session_hash, purpose)
);

-- Single-use tokens already accepted (a Duo transaction id, a Universal Prompt state), kept
-- until they could no longer be presented.
CREATE TABLE used_tokens (
    service    TEXT   NOT NULL,
    token_hash BLOB   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (service, token_hash)
);

DROP TABLE two_factor;
DROP TABLE pending_enrolments;
