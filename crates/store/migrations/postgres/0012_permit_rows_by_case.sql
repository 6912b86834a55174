-- Finding the permit a case issued (issuing is idempotent per case) without a scan.
-- Keep in step with ../sqlite/0012_permit_rows_by_case.sql.
CREATE INDEX permit_rows_case ON permit_rows(case_reference);
