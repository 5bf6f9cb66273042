-- Reverts 0005_change_ledger.
DROP TABLE sync_conflicts;
DROP TABLE sync_pruned;
DROP TABLE sync_peers;
DROP TABLE sync_changes;
DROP TABLE sync_counters;
DROP TABLE sync_replica;
