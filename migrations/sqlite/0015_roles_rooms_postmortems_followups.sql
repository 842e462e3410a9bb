-- Big incidents. A channel of their own ("room"): its id and name once Klaxon
-- created it, and the outbox row of the copy of the root message posted there (edited
-- whenever the root is). When the postmortem was last produced.
ALTER TABLE incidents ADD COLUMN room TEXT;
ALTER TABLE incidents ADD COLUMN room_name TEXT;
ALTER TABLE incidents ADD COLUMN room_root_message INTEGER;
ALTER TABLE incidents ADD COLUMN postmortem_at INTEGER;
CREATE UNIQUE INDEX incidents_by_room ON incidents (room) WHERE room IS NOT NULL;

-- Who holds each role of an incident (commander, comms, scribe …): one
-- holder per role; a new holder replaces the old one.
CREATE TABLE incident_roles (
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    role         TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    assigned_by  TEXT,
    assigned_at  INTEGER NOT NULL,
    PRIMARY KEY (incident_id, role)
);

-- Follow-ups (action items) recorded on an incident; `tracker_state` says
-- where its copy in the team's issue tracker stands when a webhook is set
-- ('pending', 'filed', 'failed').
CREATE TABLE followups (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id    INTEGER NOT NULL REFERENCES incidents (id),
    text           TEXT    NOT NULL,
    owner          TEXT,
    created_by     TEXT,
    created_at     INTEGER NOT NULL,
    tracker_state  TEXT,
    tracker_ref    TEXT
);
CREATE INDEX followups_by_incident ON followups (incident_id);

-- The outbox learns two kinds: 'post' (a message of its own in an
-- incident's room) and 'file' (a file shared through Slack's upload flow).
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE outbox_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id      INTEGER REFERENCES incidents (id),
    ordering_key     TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('root', 'reply', 'update_root', 'ephemeral', 'direct', 'update', 'post', 'file')),
    channel          TEXT    NOT NULL,
    user_id          TEXT,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'dropped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    slack_ts         TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    ref_outbox_id    INTEGER,
    page             INTEGER NOT NULL DEFAULT 0,
    paging_epoch     INTEGER,
    urgent           INTEGER NOT NULL DEFAULT 0,
    maybe_posted     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_new (id, incident_id, ordering_key, kind, channel, user_id, payload, state, attempts,
                        next_attempt_at, lease_owner, lease_expires_at, last_error, slack_ts, created_at,
                        sent_at, ref_outbox_id, page, paging_epoch, urgent, maybe_posted)
SELECT id, incident_id, ordering_key, kind, channel, user_id, payload, state, attempts,
       next_attempt_at, lease_owner, lease_expires_at, last_error, slack_ts, created_at,
       sent_at, ref_outbox_id, page, paging_epoch, urgent, maybe_posted FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (ordering_key, id) WHERE state = 'pending';
CREATE INDEX outbox_by_incident ON outbox (incident_id, kind);
CREATE INDEX outbox_delivered_pages ON outbox (user_id, sent_at) WHERE kind = 'direct' AND page = 1 AND state = 'sent';
