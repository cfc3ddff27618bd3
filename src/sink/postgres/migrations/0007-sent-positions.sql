-- An HTTP destination's requests in flight: the position of each key's newest change sent to the
-- API, written (and committed) before the request goes out. The API cannot join a transaction, so
-- a change is claimed in key_positions only once acknowledged; a process that dies in between has
-- sent what the ledger does not know. A change older than the one sent must then never follow it,
-- and the request itself is kept: sent again, it is the same request under the same idempotency
-- key, and nothing newer goes out before it is finished (it may carry values no later change does).
CREATE TABLE IF NOT EXISTS trustsync.sent_positions (
  target    text NOT NULL,
  key       text NOT NULL,
  position  numeric(40,0) NOT NULL,
  request   jsonb NOT NULL,
  sent_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target, key)
);
