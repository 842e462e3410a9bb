-- Heartbeats (dead man's switches): one row per configured heartbeat, made
-- when it first matters. A beat moves `deadline_at`; the heartbeat's job opens
-- an incident when the deadline passes with no beat (`incident_id` holds it
-- until beats resume and resolve it).
CREATE TABLE heartbeats (
    name          TEXT    PRIMARY KEY,
    last_beat_at  INTEGER,
    deadline_at   INTEGER NOT NULL,
    beats         INTEGER NOT NULL DEFAULT 0,
    incident_id   INTEGER REFERENCES incidents (id)
);

-- Maintenance windows: while one is active over a route, the route's new
-- alert groups open no incident and its incidents' ladders are paused.
-- Started by hand (`created_by`) or by a configured schedule (`schedule`, one
-- row per occurrence). `message_id` is the outbox row of its announcement,
-- which is edited to list the alert groups it held.
CREATE TABLE maintenance_windows (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    route       TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    reason      TEXT,
    created_by  TEXT,
    schedule    TEXT,
    message_id  INTEGER,
    silence_id  TEXT,
    ended_at    INTEGER,
    ended_by    TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (schedule, starts_at)
);
CREATE INDEX maintenance_windows_active ON maintenance_windows (route) WHERE ended_at IS NULL;

-- Alert groups a window held instead of opening incidents: the last
-- notification's alerts, whole.
CREATE TABLE maintenance_held (
    window_id     INTEGER NOT NULL REFERENCES maintenance_windows (id),
    group_id      TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    firing        INTEGER NOT NULL,
    alerts        TEXT    NOT NULL,
    notifications INTEGER NOT NULL DEFAULT 1,
    first_at      INTEGER NOT NULL,
    last_at       INTEGER NOT NULL,
    PRIMARY KEY (window_id, group_id)
);

-- Ladders a window paused: the step each resumes at when the window ends.
CREATE TABLE maintenance_paused (
    window_id   INTEGER NOT NULL REFERENCES maintenance_windows (id),
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    next_step   INTEGER NOT NULL,
    PRIMARY KEY (window_id, incident_id)
);
