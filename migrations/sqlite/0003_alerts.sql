-- Alerts: which alert groups feed which incident (a storm incident collects
-- many), each alert's last known state, notifications already processed (so a
-- repeated delivery changes nothing), and silences created from Slack.
DROP INDEX incidents_by_alert_group;
ALTER TABLE incidents DROP COLUMN alert_group;
ALTER TABLE incidents ADD COLUMN alert_route TEXT;
CREATE INDEX incidents_by_alert_route ON incidents (alert_route, opened_at) WHERE alert_route IS NOT NULL;

CREATE TABLE alert_groups (
    group_id    TEXT    NOT NULL,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    source      TEXT    NOT NULL,
    route       TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    labels      TEXT    NOT NULL,
    announced   INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (group_id, incident_id)
);
CREATE INDEX alert_groups_by_incident ON alert_groups (incident_id);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    group_id    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    name        TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER,
    updated_at  INTEGER NOT NULL,
    UNIQUE (incident_id, fingerprint)
);

CREATE TABLE alert_notifications (
    dedupe_key  TEXT    PRIMARY KEY,
    received_at INTEGER NOT NULL
);

CREATE TABLE silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    silence_id  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    ends_at     INTEGER NOT NULL,
    expired_at  INTEGER
);
CREATE INDEX silences_by_incident ON silences (incident_id);
