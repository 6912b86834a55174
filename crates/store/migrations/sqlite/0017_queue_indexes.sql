-- The back office's queues count over 100,000 cases at every visit of its home page: the
-- few flagged cases and the unassigned ones get small partial indexes, so those counts
-- (and the orphan rule's unassigned half) read only them. Keep in step with
-- ../postgres/0017_queue_indexes.sql.
CREATE INDEX cases_flagged ON cases(received_at) WHERE flags <> '[]';
CREATE INDEX cases_unassigned ON cases(received_on) WHERE assignee_id IS NULL;
-- A citizen's cases, newest first (the citizen panel of the case page).
CREATE INDEX cases_citizen_received ON cases(citizen_id, received_at);
