-- Indexes for the reports (issue #6): each report reads a year of cases from indexes
-- alone, without touching the wide case rows. Keep in step with ../postgres/0014_reports.sql.

-- Cases closed in a period, and cases still open at an instant (closed_at NULL or later):
-- everything the throughput and SLA figures need of them.
CREATE INDEX cases_closed ON cases(closed_at, case_type, channel, received_at, received_on,
    paused_days, due_on, service_days, id);

-- The open cases (a few thousand at most, so a small index to keep up): the SLA lists, the
-- orphans, the operators' load, the backlog. Without it PostgreSQL reads the whole table.
CREATE INDEX cases_open ON cases(received_at) WHERE closed_at IS NULL;

-- Cases received per day, case type and channel.
CREATE INDEX cases_received_on ON cases(received_on, case_type, channel);

-- A case's "first answer" (sportello_store::reports): the journal entries of a person that
-- the citizen sees. Only those entries are indexed, with what the query looks at, so that
-- finding a case's first one reads the index alone. The predicate must stay word for word
-- the one in reports.rs (ANSWER_PREDICATE_SQLITE), or the index is not used.
CREATE INDEX case_events_answers ON case_events(case_id, at, actor, kind,
    json_extract(detail, '$.action'), json_extract(detail, '$.protocol'))
WHERE actor <> 'system' AND ((kind = 'action' AND json_extract(detail, '$.action') IN
    ('request_integration', 'notify_rejection', 'approve', 'reject', 'issue', 'confirm', 'annul'))
    OR (kind = 'document_added' AND json_extract(detail, '$.protocol') IS NOT NULL));
