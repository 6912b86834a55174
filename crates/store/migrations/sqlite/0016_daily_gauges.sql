-- The office's gauges once a day (open, overdue and orphan cases), so that their course
-- over time can be charted: orphans cannot be recomputed for a past day. Keep in step
-- with ../postgres/0016_daily_gauges.sql.
CREATE TABLE daily_gauges (
    day         TEXT    NOT NULL PRIMARY KEY,
    open        INTEGER NOT NULL,
    overdue     INTEGER NOT NULL,
    orphan      INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
