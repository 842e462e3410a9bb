-- A Slack post whose outcome Klaxon never learned (the call timed out, or
-- recording "sent" failed because the database went away) may have reached
-- the channel. Such a row is marked, and the sender looks for it in Slack
-- (by the message metadata it carries) before posting it again.
ALTER TABLE outbox ADD COLUMN maybe_posted BIGINT NOT NULL DEFAULT 0;

-- Slack paces posts per channel, not per process: every replica draws from
-- the same bucket. `tat` is the bucket's theoretical arrival time (GCRA), in
-- milliseconds since the epoch.
CREATE TABLE slack_pacing (
    bucket TEXT PRIMARY KEY,
    tat    BIGINT NOT NULL
);

-- A job's worker before the current claim: set when a claim takes over a
-- job whose lease ran out before it finished (logged and counted).
ALTER TABLE jobs ADD COLUMN previous_owner TEXT;
