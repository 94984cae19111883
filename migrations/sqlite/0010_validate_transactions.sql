-- Transactions an application started through `/validate/challenge` (a Duo push) and polls
-- by id: only the id's hash is kept, with what the factor keeps sealed between two polls.
-- A transaction ends (its row is deleted) at its first final answer.
CREATE TABLE validate_transactions (
    id_hash        BLOB    PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    service        TEXT    NOT NULL,
    sealed         BLOB    NOT NULL,
    -- The user's address, as the application reported it when it started the challenge.
    remote_addr    TEXT,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL
);
CREATE INDEX validate_transactions_by_expiry ON validate_transactions (expires_at);
