-- Follow-ups are numbered per incident (#1, #2 … of INC-7), as people say
-- them; those recorded before are numbered in the order they were recorded.
-- (room_archived_at, from 0016, is set when Klaxon begins archiving a room.)
ALTER TABLE followups ADD COLUMN number BIGINT;
UPDATE followups SET number = (
    SELECT COUNT(*) FROM followups earlier
    WHERE earlier.incident_id = followups.incident_id AND earlier.id <= followups.id
);
CREATE UNIQUE INDEX followups_number ON followups (incident_id, number);
