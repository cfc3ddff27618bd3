-- Records a delete lost to a concurrent destination change, to be put back into the source once the
-- decision has committed here: written in the batch's transaction (under the change's savepoint),
-- carried out in the source afterwards, and deleted when done. A decision rolled back leaves none.
CREATE TABLE IF NOT EXISTS trustsync.pending_restores (
  idempotency_key  text PRIMARY KEY,
  flow             text NOT NULL,
  entity           text NOT NULL,
  key              text NOT NULL,
  origin_system    text NOT NULL,
  source_row       jsonb NOT NULL,
  source_values    jsonb NOT NULL,
  history          jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS pending_restores_flow ON trustsync.pending_restores (flow, created_at);
