-- Approved actions: requests (with approvals and outcomes), the append-only
-- audit log, and outbox messages that update an earlier message (the
-- "running…" line that becomes the outcome).

CREATE TABLE action_requests (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id       INTEGER NOT NULL REFERENCES incidents (id),
    action            TEXT    NOT NULL,
    params            TEXT    NOT NULL,
    plan              TEXT    NOT NULL,
    target            TEXT    NOT NULL,
    requested_by      TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'running', 'succeeded', 'failed', 'interrupted')),
    decided_by        TEXT,
    requested_at      INTEGER NOT NULL,
    expires_at        INTEGER,
    started_at        INTEGER,
    finished_at       INTEGER,
    outcome           TEXT,
    message_outbox_id INTEGER
);
CREATE INDEX action_requests_running ON action_requests (target) WHERE state = 'running';

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    incident_id INTEGER,
    request_id  INTEGER,
    actor       TEXT,
    event       TEXT    NOT NULL,
    action      TEXT,
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_by_incident ON audit_log (incident_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- SQLite cannot change a CHECK constraint in place: rebuild the outbox with the
-- new kind 'update' and the column naming the message it updates.
CREATE TABLE outbox_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id      INTEGER REFERENCES incidents (id),
    ordering_key     TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('root', 'reply', 'update_root', 'ephemeral', 'direct', 'update')),
    channel          TEXT    NOT NULL,
    user_id          TEXT,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    slack_ts         TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    ref_outbox_id    INTEGER
);
INSERT INTO outbox_new (id, incident_id, ordering_key, kind, channel, user_id, payload, state, attempts,
                        next_attempt_at, lease_owner, lease_expires_at, last_error, slack_ts, created_at, sent_at)
SELECT id, incident_id, ordering_key, kind, channel, user_id, payload, state, attempts,
       next_attempt_at, lease_owner, lease_expires_at, last_error, slack_ts, created_at, sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (ordering_key, id) WHERE state = 'pending';
