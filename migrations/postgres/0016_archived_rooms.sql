-- When Klaxon began archiving an incident's own channel: later messages (a
-- follow-up recorded after the archive, a postmortem reminder) go to the thread.
ALTER TABLE incidents ADD COLUMN room_archived_at BIGINT;

-- Follow-ups are numbered per incident (#1, #2 … of INC-7), as people say them.
ALTER TABLE followups ADD COLUMN number BIGINT;
