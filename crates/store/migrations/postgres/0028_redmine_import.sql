-- Issues taken over from a Redmine (`sportello import redmine`, CONTRACT §8.4): which case
-- each became, and which of its journals and attachments are already on that case, so a
-- second run changes nothing and a run stopped midway picks up where it was.
-- Keep in step with ../sqlite/0028_redmine_import.sql.
CREATE TABLE imported_issues (
    source      TEXT    NOT NULL,
    issue_id    BIGINT  NOT NULL,
    case_id     BIGINT  NOT NULL REFERENCES cases(id),
    updated_on  TEXT    NOT NULL,
    items       TEXT    NOT NULL,
    imported_at BIGINT  NOT NULL,
    PRIMARY KEY (source, issue_id)
);
CREATE INDEX imported_issues_case ON imported_issues(case_id);
