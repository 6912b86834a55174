-- When Sportello took a case in, kept apart from received_at, which is when the request
-- was delivered to the office (a PEC's certified daticert time, an IMAP message's arrival
-- on our server, a fax gateway's reception) and from which the legal term runs. Until now
-- both were the same instant, so existing cases take their received_at. Nullable because
-- SQLite adds no NOT NULL column without a constant default; readers fall back to
-- received_at. Keep in step with ../postgres/0020_ingested_at.sql.
ALTER TABLE cases ADD COLUMN ingested_at INTEGER;
UPDATE cases SET ingested_at = received_at;
