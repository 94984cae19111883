-- The name a credential is known by outside Twofold: a YubiKey's public ID (later a WebAuthn
-- credential ID). A key belongs to one account only, so the name is unique per service;
-- credentials without one (TOTP) leave it NULL, which any number of rows may.
ALTER TABLE credentials ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX credentials_by_external_id ON credentials (service, external_id);
