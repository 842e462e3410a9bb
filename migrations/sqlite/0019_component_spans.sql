-- What each incident did to each status-page component, as it happened: a
-- span opens when an open incident touches a component (in the state its
-- severity gives) and closes when that stops (resolved, another severity,
-- other components). The page's 90 days of bars are drawn from these, so a
-- later change never rewrites a day already shown.
CREATE TABLE component_spans (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    component   TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('degraded_performance', 'partial_outage', 'major_outage')),
    from_at     INTEGER NOT NULL,
    to_at       INTEGER
);
CREATE INDEX component_spans_open ON component_spans (incident_id) WHERE to_at IS NULL;
CREATE INDEX component_spans_by_end ON component_spans (to_at);

-- The incidents touching components before: one span each, from opening to
-- resolution, in the state of their severity now.
INSERT INTO component_spans (incident_id, component, status, from_at, to_at)
SELECT i.id, c.component,
       CASE i.severity WHEN 'P0' THEN 'major_outage' WHEN 'P1' THEN 'partial_outage' ELSE 'degraded_performance' END,
       i.opened_at,
       CASE WHEN i.state = 'resolved' THEN COALESCE(i.resolved_at, i.updated_at) ELSE NULL END
FROM incidents i JOIN incident_components c ON c.incident_id = i.id;
