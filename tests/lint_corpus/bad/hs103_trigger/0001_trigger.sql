-- Mutation tracking belongs to the application, not to a trigger.

CREATE TRIGGER trg_documents_touch AFTER UPDATE ON documents
BEGIN
    UPDATE documents SET title = title WHERE id = NEW.id;
END;
