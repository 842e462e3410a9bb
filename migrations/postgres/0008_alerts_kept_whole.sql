-- Alerts are kept whole: every label, annotation and link as received (what
-- Slack shows of them is cut, never what is stored).
ALTER TABLE alerts ADD COLUMN detail TEXT NOT NULL DEFAULT '{}';
CREATE INDEX alerts_by_group ON alerts (incident_id, group_id, status);

-- A group's size is what a notification listed plus what the sender left out
-- (`truncatedAlerts`, Alertmanager's `max_alerts`): both, as last received.
ALTER TABLE alert_groups ADD COLUMN listed BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE alert_groups ADD COLUMN truncated BIGINT  NOT NULL DEFAULT 0;

-- Alerts seen resolved, by fingerprint and start: a firing notification for the
-- same alert and start that arrives later (out of order: HA peers, retries) is
-- stale and opens nothing. Pruned after a week.
CREATE TABLE resolved_alerts (
    source      TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    starts_at   BIGINT  NOT NULL,
    resolved_at BIGINT  NOT NULL,
    PRIMARY KEY (source, fingerprint, starts_at)
);
CREATE INDEX resolved_alerts_by_age ON resolved_alerts (resolved_at);
