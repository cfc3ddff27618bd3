-- Every text column of trustsync's tables in utf8mb4: a trustsync database created beforehand with
-- the server's default charset (often latin1) left the unmarked columns (history values, reasons)
-- unable to hold what the source holds, and a record with such text stopped its flow.
ALTER DATABASE trustsync CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE trustsync.key_positions CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE trustsync.truncations CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE trustsync.history CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE trustsync.entity_snapshots CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
