-- trustsync's position ledger and decision history, as every destination had them before
-- migrations were numbered: written so that a database of that shape is brought to it in place.

CREATE SCHEMA IF NOT EXISTS trustsync;
-- The position ledger: the newest position applied per destination key, deletes included (tombstones).
-- Every change claims its key here, so updates must stay HOT (heap-only: no index entry per claim):
-- no indexed column changes for a live key, and pages keep room for the new version. A tombstone's
-- time is therefore its own column, deleted_at, NULL for a live key (the purge's index).
CREATE TABLE IF NOT EXISTS trustsync.key_positions (
  target      text NOT NULL,
  key         text NOT NULL,
  position    numeric(40,0) NOT NULL,
  deleted     boolean NOT NULL,
  changed_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz,
  PRIMARY KEY (target, key)
) WITH (fillfactor = 90);
ALTER TABLE trustsync.key_positions ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
DO $$ BEGIN
  -- A ledger made before deleted_at: its tombstones' index was on changed_at, which every claim moves.
  IF to_regclass('trustsync.key_positions_tombstones') IS NOT NULL THEN
    UPDATE trustsync.key_positions SET deleted_at = changed_at WHERE deleted AND deleted_at IS NULL;
    DROP INDEX trustsync.key_positions_tombstones;
    ALTER TABLE trustsync.key_positions SET (fillfactor = 90);
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS key_positions_deleted ON trustsync.key_positions (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS trustsync.truncations (
  target        text PRIMARY KEY,
  position      numeric(40,0) NOT NULL,
  truncated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SCHEMA IF NOT EXISTS trustsync;
CREATE TABLE IF NOT EXISTS trustsync.history (
  id               bigserial PRIMARY KEY,
  flow             text NOT NULL,
  target           text NOT NULL,
  entity           text,
  key              text NOT NULL,
  op               text,
  decision         text NOT NULL,
  reason           text,
  position         numeric(40,0),
  stored_position  numeric(40,0),
  origin_topic     text,
  origin_partition integer,
  origin_offset    bigint,
  tx_id            text,
  source_ts        timestamptz,
  capture_ts       timestamptz,
  decided_at       timestamptz NOT NULL DEFAULT now(),
  new_values       jsonb
);
CREATE INDEX IF NOT EXISTS history_by_key ON trustsync.history (target, key, id);
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS fields jsonb;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS field text;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS old_values jsonb;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS correlation_id text;
ALTER TABLE trustsync.history ADD COLUMN IF NOT EXISTS idempotency_key text;
CREATE TABLE IF NOT EXISTS trustsync.entity_snapshots (
  target      text NOT NULL,
  key         text NOT NULL,
  history_id  bigint NOT NULL,
  decided_at  timestamptz NOT NULL,
  believed    jsonb,
  PRIMARY KEY (target, key, history_id)
);
-- A retried batch finds what is already on record through history_by_key: an index of its own on
-- the correlation id cost PostgreSQL ~4 µs of every history row's ~15.
DROP INDEX IF EXISTS trustsync.history_by_correlation;
