-- trustsync's position ledger and decision history in a MariaDB destination (database trustsync).
-- Keys are any text: rows are found by the SHA-256 of the key (an index cannot hold long text),
-- and the text itself is kept beside it.

-- The position ledger: the newest position applied per destination key, deletes included (tombstones).
CREATE TABLE IF NOT EXISTS trustsync.key_positions (
  target            VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  key_hash          BINARY(32) NOT NULL,
  `key`             LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  position          DECIMAL(40,0) NOT NULL,
  deleted           BOOLEAN NOT NULL,
  changed_at        DATETIME(6) NOT NULL,
  deleted_at        DATETIME(6) NULL,
  -- Columns whose stored value an older change set than the row's (unchanged TOAST): column → position.
  column_positions  LONGTEXT NULL,
  PRIMARY KEY (target, key_hash),
  KEY key_positions_deleted (deleted_at)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS trustsync.truncations (
  target        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  position      DECIMAL(40,0) NOT NULL,
  truncated_at  DATETIME(6) NOT NULL
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS trustsync.history (
  id               BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  flow             VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  target           VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  entity           VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  key_hash         BINARY(32) NOT NULL,
  `key`            LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  op               VARCHAR(8) NULL,
  decision         VARCHAR(32) NOT NULL,
  reason           LONGTEXT NULL,
  position         DECIMAL(40,0) NULL,
  stored_position  DECIMAL(40,0) NULL,
  origin_topic     VARCHAR(255) NULL,
  origin_partition INT NULL,
  origin_offset    BIGINT NULL,
  tx_id            VARCHAR(255) NULL,
  source_ts        DATETIME(6) NULL,
  capture_ts       DATETIME(6) NULL,
  decided_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  new_values       LONGTEXT NULL,
  fields           LONGTEXT NULL,
  field            VARCHAR(255) NULL,
  old_values       LONGTEXT NULL,
  correlation_id   VARCHAR(512) NULL,
  idempotency_key  VARCHAR(512) NULL,
  KEY history_by_key (target, key_hash, id),
  KEY history_by_flow (flow, decided_at)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS trustsync.entity_snapshots (
  target      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  key_hash    BINARY(32) NOT NULL,
  `key`       LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  history_id  BIGINT NOT NULL,
  decided_at  DATETIME(6) NOT NULL,
  believed    LONGTEXT NULL,
  PRIMARY KEY (target, key_hash, history_id)
) ENGINE = InnoDB;
