-- Signatures of Slack requests already handled: a request replayed within
-- Slack's 5-minute window does nothing the second time. Pruned hourly.
CREATE TABLE slack_requests (
    signature   TEXT    PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX slack_requests_by_age ON slack_requests (received_at);
CREATE INDEX alert_notifications_by_age ON alert_notifications (received_at);
CREATE INDEX slack_events_by_age ON slack_events (received_at);
