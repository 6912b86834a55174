-- A document is never deleted while its case is open or while the protocol register
-- names its bytes: the database itself refuses, whatever code or person asks.
-- Keep in step with ../sqlite/0006_retention.sql.
CREATE INDEX protocol_register_document ON protocol_register(document_sha256);
CREATE FUNCTION documents_retained() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM cases c WHERE c.id = OLD.case_id AND c.status <> 'closed')
       OR EXISTS (SELECT 1 FROM protocol_register r WHERE r.document_sha256 = OLD.sha256) THEN
        RAISE EXCEPTION 'document retained: its case is open or the protocol register names it';
    END IF;
    RETURN OLD;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER documents_retained BEFORE DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_retained();
