-- How many times a notification of the same content came again (Alertmanager
-- repeats a group every repeat_interval; HA peers each send it). Counting it
-- lets one upsert both remember a notification and say whether it was new.
ALTER TABLE alert_notifications ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
