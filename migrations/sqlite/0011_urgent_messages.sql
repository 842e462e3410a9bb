-- Pages go to Slack first, and so does the root of a thread a page waits
-- for: such rows are urgent. The sender takes due urgent rows ahead of the
-- rest, and never picks a page whose thread root is still waiting.
ALTER TABLE outbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET urgent = page WHERE state = 'pending';
