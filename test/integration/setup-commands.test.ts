import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { runWorkload } from '../../src/demo/workload.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { loadFlowFile } from '../../src/flow/config.js';
import { ConnectClient, readConnectorFile, stackConnectorVars } from '../../src/stack/connectors.js';
import { removePostgresSource } from '../../src/stack/postgres-source.js';
import { endpoints, settings } from '../support/capture.js';
import { trustsync } from '../support/cli.js';
import { SyncFixture } from '../support/fixture.js';
import { startFlow } from '../support/flow.js';
import { waitFor } from '../support/wait.js';

/**
 * Getting started on a real system: `trustsync init` reads existing tables at the source and writes
 * a flow file and a Debezium connector that run as written; `trustsync validate --online` reaches
 * everything the flow names before anything runs, and says what is missing and what was meant.
 */
describe('trustsync init and validate --online', () => {
  const f = new SyncFixture('setup');
  const name = f.schema.replace(/_/g, '-');
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-setup-'));
  const sourceUrl = endpoints.postgresUrl('trustsync_source');
  const flowFile = join(dir, `${name}.flow.yaml`);
  const connectorFile = join(dir, `${name}.connector.json`);
  const init = (tables: string[]) =>
    trustsync([
      'init',
      '--source',
      sourceUrl,
      '--tables',
      tables.map((t) => `${f.schema}.${t}`).join(','),
      '--name',
      name,
      '--destination-schema',
      f.destSchema,
      '--out',
      dir,
    ]);

  beforeAll(async () => {
    await f.open({ demoTables: true });
    await f.source.query(`CREATE TABLE ${f.schema}.audit_log (at timestamptz, line text)`);
    await runWorkload(f.source, f.schema, 60, 81);
  });

  afterAll(async () => {
    if (existsSync(connectorFile))
      await removePostgresSource(
        new ConnectClient(endpoints.connectUrl),
        readConnectorFile(connectorFile, { ...stackConnectorVars(settings), ...process.env }),
      );
    await f.close();
  });

  it('refuses a table without a primary key, naming it and the fix, and writes nothing', async () => {
    const r = await init(['customers', 'audit_log']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${f.schema}.audit_log has no primary key`);
    expect(r.stderr).toContain(`ALTER TABLE ${f.schema}.audit_log ADD PRIMARY KEY`);
    expect(existsSync(flowFile)).toBe(false);
  });

  it('writes a flow file and a connector that run as written: the destination ends equal to the source', async () => {
    const r = await init(['customers', 'orders']);
    expect(r.status).toBe(0);
    // The shop's notes are stored out of line: the note says what an update that leaves them alone sends.
    expect(r.stderr).toMatch(new RegExp(`${f.schema}\\.customers: [a-z_, ]*\\bnotes\\b[a-z_, ]* may be stored out of line \\(TOAST\\)`));
    const applied = await trustsync(['connectors', 'apply', '--dir', connectorFile]);
    expect(applied.stderr).toMatch(/RUNNING/);

    // Until Debezium's snapshot creates the topics, validate --online says which are missing.
    let checks: { what: string; ok: boolean; detail: string }[] = [];
    await waitFor(
      async () => {
        const v = await trustsync(['validate', '--config', flowFile, '--online', '--json']);
        checks = (JSON.parse(v.stdout) as { checks: typeof checks }).checks;
        return v.status === 0;
      },
      'validate --online to pass once the topics exist',
      120_000,
    );
    expect(checks.map((c) => c.what)).toEqual([
      'source.brokers',
      'destination.tables.0.topic',
      'destination.tables.1.topic',
      'destination.url',
      'source.database',
      'source.database',
      'destination.tables.0.sourceTable',
      'destination.tables.1.sourceTable',
    ]);

    const config = { ...loadFlowFile(flowFile), metrics: undefined };
    f.runner = await startFlow(config);
    await runWorkload(f.source, f.schema, 60, 82);
    await waitForConvergence(f.source, f.dest, f.pairs(['customers', 'orders']), 90_000);
  });

  it('validate --online names a topic that is not there with the one meant, a source table that is not there, and exits 1', async () => {
    const doc = parse(readFileSync(flowFile, 'utf8')) as { destination: { tables: { topic: string; sourceTable: string }[] } };
    const meant = doc.destination.tables[0]!.topic;
    doc.destination.tables[0]!.topic = meant.replace('customers', 'customer');
    doc.destination.tables[1]!.sourceTable = `${f.schema}.order`;
    const typo = join(dir, 'typo.yaml');
    writeFileSync(typo, stringify(doc));
    const r = await trustsync(['validate', '--config', typo, '--online']);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`${meant.replace('customers', 'customer')} does not exist — did you mean ${meant}?`);
    expect(r.stdout).toContain(`${f.schema}.order does not exist at the source`);
    expect(r.stdout).toMatch(/2 of \d+ checks failed/);

    const offline = await trustsync(['validate', '--config', typo]);
    expect(offline.status).toBe(0);
    expect(offline.stdout).toMatch(/is valid: flow .* 2 table\(s\)/);
  });
});
