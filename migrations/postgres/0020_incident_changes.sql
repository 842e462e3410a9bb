-- Every transaction that changes what /incident list shows of an incident
-- notifies channel klaxon_incidents (PostgreSQL delivers it at commit, once
-- per transaction: identical notifications of one transaction are folded into
-- one). The other replicas then know their copy of the open incidents is
-- stale. Per row, so a statement that changes no row notifies nothing; only
-- the columns the list shows or sorts by, so the busy updates of other
-- columns (the thread's ts, the ladder's step) add no notification.
CREATE FUNCTION klaxon_incidents_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('klaxon_incidents', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER incidents_changed
    AFTER INSERT OR DELETE
       OR UPDATE OF title, severity, state, owner, channel, opened_at, room, room_archived_at
    ON incidents
    FOR EACH ROW EXECUTE FUNCTION klaxon_incidents_changed();
