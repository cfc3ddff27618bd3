-- One row per batch transaction, by the batch's id (the same for every attempt of it): a retry whose
-- earlier attempt committed unacknowledged finds the mark and records no decision a second time.
-- Needed only while a batch's attempts run; the maintenance purge keeps an hour of them.
CREATE TABLE IF NOT EXISTS trustsync.batch_marks (
  batch_id   CHAR(36) NOT NULL PRIMARY KEY,
  flow       VARCHAR(255) NOT NULL,
  marked_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  INDEX batch_marks_marked_at (marked_at)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
