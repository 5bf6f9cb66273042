-- The down file is not exempt either.
DROP TRIGGER trg_documents_touch;
