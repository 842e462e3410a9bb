-- A page is re-checked before it is sent against the incident's paging epoch:
-- every acknowledgement, resolution, reopening and change of ladder starts a
-- new epoch, so a page queued before one of them (even an acknowledgement
-- undone by a reopen) is dropped instead of delivered late.
ALTER TABLE incidents ADD COLUMN paging_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN paging_epoch INTEGER;
-- The "ack" a person types in a page's direct message answers the newest page
-- delivered to them.
CREATE INDEX outbox_delivered_pages ON outbox (user_id, sent_at) WHERE kind = 'direct' AND page = 1 AND state = 'sent';
