-- Enrolment links: an application whose user has no second factor yet gets a one-time link
-- (valid minutes, single use, bound to the account) to enrol in Twofold's pages without a
-- Twofold password. Only the token's hash is kept.
CREATE TABLE enrolment_links (
    token_hash     BYTEA  PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    account_id     BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX enrolment_links_by_expiry ON enrolment_links (expires_at);

-- Whether the application's unenrolled users may pass without a second factor (its
-- `preauth` answers `allow`): off unless an administrator turns it on.
ALTER TABLE applications ADD COLUMN allow_unenrolled BOOLEAN NOT NULL DEFAULT FALSE;

-- A session opened by an enrolment link ('link_enrolment') may only enrol, and ends when it
-- has.
ALTER TABLE sessions DROP CONSTRAINT sessions_stage_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_stage_check
    CHECK (stage IN ('second_factor', 'enrolment', 'authenticated', 'link_enrolment'));
