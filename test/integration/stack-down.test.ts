import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { benchDestinationSettings, stackSettings } from '../../src/stack/settings.js';
import { postgresClusterDown, postgresClusterUp } from '../../src/stack/stack.js';
import { postgresDataDir } from '../../src/stack/postgres.js';
import { trustsync as cli } from '../support/cli.js';

const accepts = async (port: number) => {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  return client.connect().then(
    async () => (await client.end(), true),
    () => false,
  );
};

describe('trustsync stack down', () => {
  // A stack of its own (nothing else of it running), so that the shared one stays up.
  const env = { TRUSTSYNC_STATE_DIR: mkdtempSync(join(tmpdir(), 'trustsync-down-')), TRUSTSYNC_PG_PORT: '15650' };
  const destination = benchDestinationSettings(stackSettings({ ...process.env, ...env }), env);

  afterAll(async () => {
    // Whatever the test's outcome, no cluster or data of it stays behind.
    await postgresClusterDown(destination);
    for (const dir of [postgresDataDir(destination), env.TRUSTSYNC_STATE_DIR]) rmSync(dir, { recursive: true, force: true });
  });

  it("stops the bench's destination cluster a killed bench left up, and --purge removes its data", async () => {
    expect(destination.ports.postgres).toBe(15651);
    await postgresClusterUp(destination, 'TRUSTSYNC_BENCH_PG_PORT', () => undefined);
    expect(await accepts(15651)).toBe(true);

    const r = await cli(['stack', 'down', '--purge'], env);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("stopped the bench's destination postgres (port 15651)");
    expect(await accepts(15651)).toBe(false);
    expect(existsSync(postgresDataDir(destination))).toBe(false);
    expect(existsSync(env.TRUSTSYNC_STATE_DIR)).toBe(false);
  });
});
