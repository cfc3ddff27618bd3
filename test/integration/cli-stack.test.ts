import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { ConnectClient, readConnectorFile, stackConnectorVars } from '../../src/stack/connectors.js';
import { removePostgresSource } from '../../src/stack/postgres-source.js';
import { endpoints, pgClient, settings, uniqueName } from '../support/capture.js';
import { trustsync as cli } from '../support/cli.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('trustsync stack, as a person runs it', () => {
  it('status --json shows every component up, with port, version and PID, and exits 0', async () => {
    const r = await cli(['stack', 'status', '--json']);
    expect(r.status).toBe(0);
    const status = JSON.parse(r.stdout);
    expect(status.healthy).toBe(true);
    expect(status.components.map((c: { name: string }) => c.name).sort()).toEqual(['connect', 'kafka', 'mariadb', 'postgres', 'registry']);
    for (const c of status.components) {
      expect(c.state).toBe('up');
      expect(c.pid).toBeGreaterThan(0);
      expect(c.port).toBeGreaterThan(1024);
      expect(c.version.length).toBeGreaterThan(0);
    }
  });

  it("runs a MariaDB of its own, its binary log as Debezium's capture needs it, holding the stack's databases", async () => {
    const status = JSON.parse((await cli(['stack', 'status', '--json'])).stdout);
    const maria = status.components.find((c: { name: string }) => c.name === 'mariadb');
    expect(maria).toMatchObject({ state: 'up', port: settings.ports.mariadb, detail: 'binlog ROW, FULL row images' });
    expect(status.endpoints.mariadb).toBe(`mariadb://root@127.0.0.1:${settings.ports.mariadb}/<database>`);
    // Asked directly, with MariaDB's own client: the server on the stack's port, not the system's service.
    const { stdout } = await run('mariadb', [
      '--no-defaults',
      '--protocol=TCP',
      '-h',
      '127.0.0.1',
      '-P',
      String(settings.ports.mariadb),
      '-u',
      'root',
      '--batch',
      '--skip-column-names',
      '-e',
      "SELECT @@port, @@datadir, @@binlog_format, @@gtid_strict_mode; SHOW DATABASES LIKE 'trustsync\\_%'",
    ]);
    const [server, ...databases] = stdout.trim().split('\n');
    expect(server!.split('\t')).toEqual([String(settings.ports.mariadb), expect.stringContaining(settings.stateDir), 'ROW', '1']);
    expect(databases.sort()).toEqual(['trustsync_dest', 'trustsync_source']);
  });

  it('up on a running stack is harmless: same processes, still healthy', async () => {
    const before = JSON.parse((await cli(['stack', 'status', '--json'])).stdout);
    const r = await cli(['stack', 'up', '--json']);
    expect(r.status).toBe(0);
    const after = JSON.parse(r.stdout);
    expect(after.healthy).toBe(true);
    expect(after.components.map((c: { pid: number }) => c.pid)).toEqual(before.components.map((c: { pid: number }) => c.pid));
    expect(r.stderr).toContain('already running');
  });
});

describe('trustsync connectors apply', () => {
  const schema = uniqueName('cliconn');
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-connectors-'));
  const vars = { SERVER: schema, SCHEMAS: schema, TABLES: `${schema}.things` };

  afterAll(async () => {
    const connect = new ConnectClient(endpoints.connectUrl);
    for (const [server, tables] of [
      [schema, vars.TABLES],
      [`${schema}_bad`, `${schema}.missing`],
      [`${schema}_held`, vars.TABLES],
    ]) {
      const config = readConnectorFile(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json'), {
        ...stackConnectorVars(settings),
        ...vars,
        SERVER: server!,
        TABLES: tables!,
      });
      await removePostgresSource(connect, config);
    }
    const source = await pgClient();
    await source.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await source.end();
  });

  it('creates a connector, waits for RUNNING, and a second apply updates it in place', async () => {
    const source = await pgClient();
    await source.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.things (id int PRIMARY KEY)`);
    await source.end();
    writeFileSync(
      join(dir, 'source.json'),
      JSON.stringify({
        name: `trustsync-\${SERVER}-source-json`,
        config: readConnectorFile(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json'), { ...stackConnectorVars(settings), ...vars }).config,
      }),
    );
    const first = await cli(['connectors', 'apply', '--dir', dir], vars);
    expect(first.stderr).toContain(`trustsync-${schema}-source-json: created, RUNNING`);
    expect(first.status).toBe(0);
    const second = await cli(['connectors', 'apply', '--dir', dir], vars);
    expect(second.stderr).toContain(`trustsync-${schema}-source-json: updated, RUNNING`);
  });

  it('prints the failed task trace and exits 3 (the stack) when the connector cannot run', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'trustsync-connectors-bad-'));
    // A table that does not exist: Debezium cannot build its publication, and the task fails.
    writeFileSync(join(bad, 'bad.json'), readFileSync(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json')));
    const r = await cli(['connectors', 'apply', '--dir', bad], { ...vars, SERVER: `${schema}_bad`, TABLES: `${schema}.missing` });
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`connector trustsync-${schema}_bad-source-json FAILED`);
    expect(r.stderr).toContain('Unable to create filtered publication');
    expect(r.stderr).toContain('fix:');
  });
  it('names the open transactions a new replication slot waits for, then runs once they end', async () => {
    const dirHeld = mkdtempSync(join(tmpdir(), 'trustsync-connectors-held-'));
    writeFileSync(join(dirHeld, 'held.json'), readFileSync(join(PACKAGE_DIR, 'connectors', 'postgres-source-json.json')));
    const env = { ...vars, SERVER: `${schema}_held` };
    // A writing transaction anywhere in the cluster holds up every logical slot created after it began.
    const holder = new pg.Client({ connectionString: endpoints.postgresUrl('trustsync_dest'), application_name: 'slot-holder-test' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_current_xact_id()');
      const held = await cli(['connectors', 'apply', '--dir', dirHeld, '--wait', '8'], env);
      expect(held.status).toBe(3);
      expect(held.stderr).toContain(`replication slot trustsync_${schema}_held_json is still being created`);
      expect(held.stderr).toMatch(/open now: pid \d+ \(slot-holder-test, database trustsync_dest, idle in transaction, open \d+ s\)/);
      await holder.query('COMMIT');
      const after = await cli(['connectors', 'apply', '--dir', dirHeld], env);
      expect(after.stderr).toContain(`trustsync-${schema}_held-source-json: updated, RUNNING`);
      expect(after.status).toBe(0);
    } finally {
      await holder.end();
    }
  });
});

describe('trustsync run waiting for its topics', () => {
  it('says what it waits for, and a SIGTERM ends it cleanly (exit 0)', async () => {
    const { spawn } = await import('node:child_process');
    const { stringify } = await import('yaml');
    const { flowDocument } = await import('../support/flow.js');
    const name = uniqueName('waiting');
    const file = join(mkdtempSync(join(tmpdir(), 'trustsync-wait-')), 'flow.yaml');
    writeFileSync(file, stringify(flowDocument({ name, topics: [{ topic: `cdc.${name}.none.yet`, table: `${name}.t` }] })));
    const child = spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!out.includes('waiting for topics to exist') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(out).toContain(`cdc.${name}.none.yet`);
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
