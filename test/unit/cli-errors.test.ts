import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trustsync as cli } from '../support/cli.js';

/** What a person sees from the built command when the input is wrong: the problem, where, and the fix. */
describe('trustsync run with a bad flow file', () => {
  it('fails at start, listing every problem by field path, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, ['flow: bad flow', 'source:', '  brokers: [localhost]', '  decoding: protobuf', 'destination:', '  url: mysql://x', '  tables: []', 'batchh: {}'].join('\n'));
    const r = await cli(['run', '--config', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${file} is not a valid flow:`);
    for (const path of ['flow:', 'source.brokers.0:', 'source.decoding:', 'destination.url:', 'destination.tables:', 'unknown field batchh']) expect(r.stderr).toContain(path);
    expect(r.stderr).toContain('fix:');
  });

  it('names a variable the file uses but the environment lacks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-cli-'));
    const file = join(dir, 'vars.yaml');
    writeFileSync(file, 'flow: ${TRUSTSYNC_TEST_UNSET_FLOW_NAME}\n');
    const r = await cli(['run', '--config', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('${TRUSTSYNC_TEST_UNSET_FLOW_NAME} has no value');
  });

  it('says which file cannot be read', async () => {
    const r = await cli(['run', '--config', '/nonexistent/flow.yaml']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/nonexistent/flow.yaml is not a valid flow');
    expect(r.stderr).toContain('cannot be read');
  });
});
