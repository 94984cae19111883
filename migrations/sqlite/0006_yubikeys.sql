-- The name a credential is known by outside Twofold: a YubiKey's public ID (later a WebAuthn
-- credential ID). A key belongs to one account only, so the name is unique per service;
-- credentials without one (TOTP) leave it NULL, which any number of rows may.
ALTER TABLE credentials ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX credentials_by_external_id ON credentials (service, external_id);

-- Keys an administrator imported with their secrets (YubiKey's local mode: the AES key and
-- private ID, sealed under the master key), by service and external ID. A key assigned to
-- an account can be enrolled by that account only; an unassigned one by whoever touches it.
CREATE TABLE imported_keys (
    service     TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    serial      BIGINT,
    sealed      BLOB    NOT NULL,
    account_id  INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    imported_at BIGINT  NOT NULL,
    PRIMARY KEY (service, external_id)
);
