-- Attempt counters by source address and for all addresses together, with growing windows
-- and a count of second-factor failures in a row (see core::lockout). A subject is
-- 'account:<id>', or 'name:<keyed hash>' for a name no account has.
CREATE TABLE lockouts (
    subject      TEXT   NOT NULL,
    factor       TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    window_secs  BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    failures     BIGINT NOT NULL,
    PRIMARY KEY (subject, factor, source)
);

-- The counts of the previous version were per account: they become the counts of all
-- addresses, in a window of the default length (it did not count failures in a row).
INSERT INTO lockouts (subject, factor, source, window_start, window_secs, attempts, failures)
SELECT 'account:' || account_id, factor, '*', window_start, 900, attempts, 0 FROM attempts;

DROP TABLE attempts;
