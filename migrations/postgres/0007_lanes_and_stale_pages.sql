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
-- incident was acknowledged or resolved is dropped, not delivered late.
ALTER TABLE outbox ADD COLUMN page BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'sent', 'failed', 'dropped'));
