-- When an incident's own channel was archived: later messages (a follow-up
-- recorded after the archive, a postmortem reminder) go to the thread.
ALTER TABLE incidents ADD COLUMN room_archived_at INTEGER;
