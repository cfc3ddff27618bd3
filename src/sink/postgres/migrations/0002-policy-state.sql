-- What trustsync keeps beside a database it governs by policy (in every database it keeps its
-- own tables in, used or not):
-- row_state: per record, the version vector and the values the other system is known to agree with;
-- outbound: every write trustsync made into this database, with its transaction id, so the change
--   Debezium captures back from it is recognised as trustsync's own (never by timing or values);
-- review: conflicts waiting for a person.
CREATE SCHEMA IF NOT EXISTS trustsync;
CREATE TABLE IF NOT EXISTS trustsync.row_state (
  target       text NOT NULL,
  key          text NOT NULL,
  vector       jsonb NOT NULL DEFAULT '{}'::jsonb,
  known_xid    bigint,
  known_values jsonb,
  local_edits  jsonb NOT NULL DEFAULT '{}'::jsonb,
  changed_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (target, key)
);
CREATE TABLE IF NOT EXISTS trustsync.outbound (
  id               bigserial PRIMARY KEY,
  target           text NOT NULL,
  key              text NOT NULL,
  xid              bigint NOT NULL,
  flow             text NOT NULL,
  origin_system    text NOT NULL,
  origin_position  numeric(40,0),
  origin_tx_id     bigint,
  origin_values    jsonb,
  fields           text[] NOT NULL,
  op               text NOT NULL,
  vector           jsonb NOT NULL,
  idempotency_key  text NOT NULL UNIQUE,
  written_at       timestamptz NOT NULL DEFAULT now(),
  echoed_at        timestamptz
);
CREATE INDEX IF NOT EXISTS outbound_by_tx ON trustsync.outbound (target, xid, key);
CREATE TABLE IF NOT EXISTS trustsync.review (
  id              text PRIMARY KEY,
  flow            text NOT NULL,
  entity          text NOT NULL,
  target          text NOT NULL,
  key             text NOT NULL,
  field           text NOT NULL,
  owner           text NOT NULL,
  proposer        text NOT NULL,
  kept_value      jsonb,
  proposed_value  jsonb,
  proposer_tx_id  text,
  vectors         jsonb NOT NULL,
  policy          jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'open',
  created_at      timestamptz NOT NULL DEFAULT now(),
  resolved_at     timestamptz,
  resolution      jsonb
);
CREATE INDEX IF NOT EXISTS review_open ON trustsync.review (created_at) WHERE status = 'open';
