-- Finding an incident's messages (its failed root, its thread) without a scan.
CREATE INDEX outbox_by_incident ON outbox (incident_id, kind);
