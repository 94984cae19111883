-- Write-only settings (a Duo Secret Key, a Yubico API key): sealed under the master key,
-- bound to their service and name, kept apart from the settings document, which only says
-- whether each one is set.
CREATE TABLE setting_secrets (
    service    TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    sealed     BLOB  NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (service, name)
);

-- When the session's owner last proved every factor the account has (the login's end):
-- operations that lower security ask for a recent proof ("sudo mode"). Sessions opened before
-- this version have none, and must log in again for those.
ALTER TABLE sessions ADD COLUMN verified_at BIGINT;
