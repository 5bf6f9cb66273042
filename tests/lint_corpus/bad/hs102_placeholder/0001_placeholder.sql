-- A data migration written like an application query.
UPDATE settings
SET value = ?1
WHERE name = 'theme';
