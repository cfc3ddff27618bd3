-- One row per batch transaction, by the batch's id (the same for every attempt of it): a retry whose
-- earlier attempt committed unacknowledged finds the mark and records no decision a second time.
-- Needed only while a batch's attempts run; the maintenance purge keeps an hour of them.
CREATE TABLE IF NOT EXISTS trustsync.batch_marks (
  batch_id   uuid PRIMARY KEY,
  flow       text NOT NULL,
  marked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS batch_marks_marked_at ON trustsync.batch_marks (marked_at);
