DROP TABLE legacy_scores;
DROP TABLE legacy_codes;
