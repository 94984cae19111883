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
