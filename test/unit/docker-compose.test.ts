import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { PACKAGE_DIR, VERSIONS } from '../../src/stack/settings.js';
import { STACK_DATABASES } from '../../src/stack/postgres.js';
import { MARIADB_DATABASES } from '../../src/stack/mariadb.js';

/** Users with Docker get the same components, versions and databases as `trustsync stack up`. */
describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(PACKAGE_DIR, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image: string; ports?: string[] }> };

  it('pins the versions the local stack runs', () => {
    expect(compose.services.kafka!.image).toBe(`apache/kafka:${VERSIONS.kafka}`);
    expect(compose.services.connect!.image).toBe(`quay.io/debezium/connect:${VERSIONS.debezium}`);
    expect(compose.services.registry!.image).toBe(`apicurio/apicurio-registry:${VERSIONS.apicurioRegistry}`);
  });

  it('publishes every port on loopback only', () => {
    for (const service of Object.values(compose.services)) {
      for (const port of service.ports ?? []) expect(port.startsWith('127.0.0.1:')).toBe(true);
    }
  });

  it('creates the databases the local stack holds', () => {
    const sql = readFileSync(join(PACKAGE_DIR, 'src', 'stack', 'docker', 'init-databases.sql'), 'utf8');
    for (const db of STACK_DATABASES) expect(sql).toContain(`CREATE DATABASE ${db};`);
  });

  it("runs MariaDB with the binary log the stack's own starts it with, and its databases", () => {
    const maria = compose.services.mariadb as { image: string; command: string[] };
    expect(maria.image).toBe('mariadb:10.11');
    expect(maria.command).toEqual(expect.arrayContaining(['--binlog-format=ROW', '--binlog-row-image=FULL', '--server-id=1']));
    const sql = readFileSync(join(PACKAGE_DIR, 'src', 'stack', 'docker', 'init-mariadb.sql'), 'utf8');
    for (const db of MARIADB_DATABASES) expect(sql).toContain(`CREATE DATABASE IF NOT EXISTS ${db};`);
  });
});
