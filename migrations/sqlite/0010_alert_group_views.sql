-- What the latest notification of an alert group said of its size, so counts
-- follow the sender rather than what Klaxon happens to hold: how many listed
-- alerts fire, how many the sender left out (its max_alerts), the exact number
-- that fire when Alertmanager's API was asked since (NULL: not asked), and
-- the most alerts the group had at once (for the resolution summary).
ALTER TABLE alert_groups ADD COLUMN listed_firing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alert_groups ADD COLUMN active INTEGER;
ALTER TABLE alert_groups ADD COLUMN peak INTEGER NOT NULL DEFAULT 0;
UPDATE alert_groups SET
    listed_firing = (SELECT COUNT(*) FROM alerts a
                     WHERE a.incident_id = alert_groups.incident_id
                       AND a.group_id = alert_groups.group_id AND a.status = 'firing'),
    peak = listed + truncated;
