-- Indexes for the reports (issue #6). Keep in step with ../sqlite/0014_reports.sql.

-- Cases closed in a period, and cases still open at an instant (closed_at NULL or later).
CREATE INDEX cases_closed ON cases(closed_at, case_type, channel, received_at, received_on,
    paused_days, due_on, service_days, id);

-- The open cases (a few thousand at most, so a small index to keep up): the SLA lists, the
-- orphans, the operators' load, the backlog. Without it PostgreSQL reads the whole table.
CREATE INDEX cases_open ON cases(received_at) WHERE closed_at IS NULL;

-- Cases received per day, case type and channel.
CREATE INDEX cases_received_on ON cases(received_on, case_type, channel);

-- A case's "first answer" (sportello_store::reports): the journal entries of a person that
-- the citizen sees. The predicate must stay word for word the one in reports.rs
-- (ANSWER_PREDICATE_POSTGRES), or the planner cannot prove the index applies.
CREATE INDEX case_events_answers ON case_events(case_id, at)
WHERE actor <> 'system' AND ((kind = 'action' AND (detail::json ->> 'action') IN
    ('request_integration', 'notify_rejection', 'approve', 'reject', 'issue', 'confirm', 'annul'))
    OR (kind = 'document_added' AND (detail::json ->> 'protocol') IS NOT NULL));
