-- The attachments of an inbound message are written in the message's transaction and
-- follow it when staff move the message to another case.
-- Keep in step with ../sqlite/0004_message_documents.sql.
ALTER TABLE documents ADD COLUMN inbound_message_id BIGINT REFERENCES inbound_messages(id);
CREATE INDEX documents_inbound_message ON documents(inbound_message_id);
