-- Job lanes: paging and other short local jobs never queue behind jobs that
-- wait on the outside world. Each job row names its lane; each lane claims its
-- own due jobs.
ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'paging';
UPDATE jobs SET lane = 'actions' WHERE kind = 'action_run';
UPDATE jobs SET lane = 'outside' WHERE kind IN ('silence', 'expire_silences');
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (lane, run_at);
-- Running jobs renew their leases every 2 s by owner; a lane looks for the
-- next lease to run out after every claim.
CREATE INDEX jobs_by_lease_owner ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX jobs_leased ON jobs (lane, lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- Pages are re-checked before they are sent: a page still waiting when its
-- incident was acknowledged or resolved is dropped, not delivered late. The
-- outbox gains the `page` flag and the state 'dropped' (SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt).
CREATE TABLE outbox_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id      INTEGER REFERENCES incidents (id),
    ordering_key     TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('root', 'reply', 'update_root', 'ephemeral', 'direct', 'update')),
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
    page             INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_new (id, incident_id, ordering_key, kind, channel, user_id, payload, state, attempts,
                        next_attempt_at, lease_owner, lease_expires_at, last_error, slack_ts, created_at,
                        sent_at, ref_outbox_id)
SELECT id, incident_id, ordering_key, kind, channel, user_id, payload, state, attempts,
       next_attempt_at, lease_owner, lease_expires_at, last_error, slack_ts, created_at,
       sent_at, ref_outbox_id FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (ordering_key, id) WHERE state = 'pending';
CREATE INDEX outbox_by_incident ON outbox (incident_id, kind);
