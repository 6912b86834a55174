-- A document is never deleted while its case is open or while the protocol register
-- names its bytes: the database itself refuses, whatever code or person asks.
-- Keep in step with ../postgres/0006_retention.sql.
CREATE INDEX protocol_register_document ON protocol_register(document_sha256);
CREATE TRIGGER documents_retained BEFORE DELETE ON documents
WHEN EXISTS (SELECT 1 FROM cases c WHERE c.id = old.case_id AND c.status <> 'closed')
  OR EXISTS (SELECT 1 FROM protocol_register r WHERE r.document_sha256 = old.sha256)
BEGIN
    SELECT RAISE(ABORT, 'document retained: its case is open or the protocol register names it');
END;
