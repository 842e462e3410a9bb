-- Escalation: the last ladder step paged per incident, every page sent (so an
-- "ack" typed in a direct message finds its incident), and the Slack event ids
-- already handled (the Events API delivers at least once).
ALTER TABLE incidents ADD COLUMN escalation_step INTEGER;

CREATE TABLE pages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    step        INTEGER NOT NULL,
    level_name  TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX pages_by_user ON pages (user_id, id);
CREATE INDEX pages_by_incident ON pages (incident_id, step);

CREATE TABLE slack_events (
    event_id    TEXT    PRIMARY KEY,
    received_at INTEGER NOT NULL
);

CREATE INDEX jobs_by_incident ON jobs (incident_id, kind);
