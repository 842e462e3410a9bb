-- Klaxon's schema on SQLite. Instants are integer milliseconds since the Unix
-- epoch; the PostgreSQL migration mirrors this file column for column.

-- One row per incident; its id is the n of INC-n.
CREATE TABLE incidents (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    title                TEXT    NOT NULL,
    severity             TEXT    NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'P3')),
    state                TEXT    NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    owner                TEXT,
    channel              TEXT    NOT NULL,
    thread_ts            TEXT,
    source               TEXT    NOT NULL DEFAULT 'slack',
    alert_group          TEXT,
    previous_incident_id INTEGER REFERENCES incidents (id),
    ladder               TEXT,
    opened_by            TEXT,
    opened_at            INTEGER NOT NULL,
    acknowledged_at      INTEGER,
    acknowledged_by      TEXT,
    resolved_at          INTEGER,
    resolved_by          TEXT,
    root_cause           TEXT,
    resolution           TEXT,
    follow_up            TEXT,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX incidents_open_by_channel ON incidents (channel) WHERE state <> 'resolved';
CREATE INDEX incidents_by_alert_group ON incidents (alert_group) WHERE alert_group IS NOT NULL;

-- What happened, in order: the incident's timeline and part of its summary.
CREATE TABLE timeline_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    actor       TEXT,
    text        TEXT    NOT NULL,
    subject     TEXT
);
CREATE INDEX timeline_by_incident ON timeline_events (incident_id, id);

-- Every message to Slack is a row first. Rows with the same ordering_key are
-- delivered one at a time in id order.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id      INTEGER REFERENCES incidents (id),
    ordering_key     TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('root', 'reply', 'update_root', 'ephemeral', 'direct')),
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
    sent_at          INTEGER
);
CREATE INDEX outbox_pending ON outbox (ordering_key, id) WHERE state = 'pending';

-- Durable jobs and timers (escalation steps, approval expiries, action runs).
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    incident_id      INTEGER REFERENCES incidents (id),
    dedupe_key       TEXT UNIQUE,
    run_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 10,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at);
