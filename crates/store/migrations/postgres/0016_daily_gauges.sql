-- The office's gauges once a day (open, overdue and orphan cases), so that their course
-- over time can be charted: orphans cannot be recomputed for a past day. Keep in step
-- with ../sqlite/0016_daily_gauges.sql.
CREATE TABLE daily_gauges (
    day         TEXT    NOT NULL PRIMARY KEY,
    open        BIGINT NOT NULL,
    overdue     BIGINT NOT NULL,
    orphan      BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
