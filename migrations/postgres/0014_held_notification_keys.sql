-- The duplicate-check key of the last notification a maintenance window
-- held for a group: forgotten when the window ends, so the sender's next
-- repeat of a group that still fires opens its incident.
ALTER TABLE maintenance_held ADD COLUMN notification_key TEXT;
