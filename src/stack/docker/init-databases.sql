-- The databases `trustsync stack up` creates, for the docker-compose stack.
CREATE DATABASE trustsync_source;
CREATE DATABASE trustsync_dest;
CREATE DATABASE trustsync_registry;
