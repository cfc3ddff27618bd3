-- The databases the local stack's MariaDB holds (src/stack/mariadb.ts: MARIADB_DATABASES).
CREATE DATABASE IF NOT EXISTS trustsync_source;
CREATE DATABASE IF NOT EXISTS trustsync_dest;
