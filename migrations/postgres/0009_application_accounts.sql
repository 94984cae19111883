-- Accounts an application made through the validate API, by the application's own
-- identifier for them (`external_id`, unique per application), so that it can address them
-- by it. Such an account has no Twofold password.
CREATE TABLE application_accounts (
    application_id BIGINT  NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    external_id    TEXT    NOT NULL,
    account_id     BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (application_id, external_id),
    UNIQUE (application_id, account_id)
);
CREATE INDEX application_accounts_by_account ON application_accounts (account_id);
