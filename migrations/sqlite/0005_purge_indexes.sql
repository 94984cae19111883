-- What the purge looks for, by index: it deletes in small batches through the one writer,
-- and a batch that scanned a million sessions or ten million audit events would hold every
-- login behind it.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);
CREATE INDEX used_tokens_by_expiry ON used_tokens (expires_at);
CREATE INDEX audit_events_by_time ON audit_events (at);
CREATE INDEX lockouts_by_window ON lockouts (window_start);
