-- The status page and the history. Which components (`[[status.components]]`)
-- an incident touches; the updates published for the public (`/incident
-- status --public`), the only incident text the status page shows; and a
-- component state a person set by hand, which wins over the one derived from
-- the open incidents until it is set back to `auto`.
CREATE TABLE incident_components (
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    component   TEXT    NOT NULL,
    PRIMARY KEY (incident_id, component)
);
CREATE INDEX incident_components_by_component ON incident_components (component, incident_id);

CREATE TABLE public_updates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at          INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('investigating', 'update', 'resolved')),
    body        TEXT    NOT NULL,
    posted_by   TEXT
);
CREATE INDEX public_updates_by_incident ON public_updates (incident_id, id);
CREATE INDEX public_updates_by_time ON public_updates (at);

CREATE TABLE component_overrides (
    component TEXT    PRIMARY KEY,
    status    TEXT    NOT NULL CHECK (status IN ('operational', 'degraded_performance', 'partial_outage', 'major_outage', 'under_maintenance')),
    set_by    TEXT,
    set_at    INTEGER NOT NULL
);

-- The history's filters and charts read incidents by when they opened, the
-- status page's bars by when they resolved, and the on-call load by page time.
CREATE INDEX incidents_by_opened_at ON incidents (opened_at);
CREATE INDEX incidents_by_resolved_at ON incidents (resolved_at);
CREATE INDEX pages_by_at ON pages (at);
