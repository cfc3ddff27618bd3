import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trustsync as cli } from '../support/cli.js';
import { reportFailure } from '../../src/cli/output.js';
import { RetriesExhausted, SchemaIncompatible, StackError, TransientSinkError } from '../../src/model/errors.js';
import { FlowConfigError } from '../../src/flow/config.js';

/** What a person sees from the built command when the input is wrong: the problem, where, and the fix. */
describe('trustsync run with a bad flow file', () => {
  it('fails at start, listing every problem by field path, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      ['flow: bad flow', 'source:', '  brokers: [localhost]', '  decoding: protobuf', 'destination:', '  url: mongodb://x', '  tables: []', 'batchh: {}'].join(
        '\n',
      ),
    );
    const r = await cli(['run', '--config', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${file} is not a valid flow:`);
    for (const path of ['flow:', 'source.brokers.0:', 'source.decoding:', 'destination.url:', 'destination.tables:', 'unknown field batchh'])
      expect(r.stderr).toContain(path);
    expect(r.stderr).toContain('fix:');
  });

  it('names a variable the file uses but the environment lacks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-cli-'));
    const file = join(dir, 'vars.yaml');
    writeFileSync(file, 'flow: ${TRUSTSYNC_TEST_UNSET_FLOW_NAME}\n');
    const r = await cli(['run', '--config', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('${TRUSTSYNC_TEST_UNSET_FLOW_NAME} has no value');
  });

  it('says which file cannot be read', async () => {
    const r = await cli(['run', '--config', '/nonexistent/flow.yaml']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('/nonexistent/flow.yaml is not a valid flow');
    expect(r.stderr).toContain('cannot be read');
  });
});

describe('every failure exits with its family, so a script can tell them apart', () => {
  afterEach(() => vi.restoreAllMocks());

  const reported = (err: unknown) => {
    let text = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((text += String(chunk)), true));
    const code = reportFailure(err);
    vi.restoreAllMocks();
    return { code, text };
  };

  it('config 2, stack 3, unavailable 4, data 5, each with its fix and no stack trace', () => {
    const cases: [unknown, number][] = [
      [new FlowConfigError('flow.yaml', ['batch.maxRows: too big']), 2],
      [new StackError('port 19092 (kafka) is taken.', 'set TRUSTSYNC_KAFKA_PORT.'), 3],
      [new RetriesExhausted(10, new TransientSinkError('connection refused')), 4],
      [new SchemaIncompatible('t.n is integer but the source sends int64', 'widen the column'), 5],
    ];
    for (const [err, code] of cases) {
      const r = reported(err);
      expect(r.code).toBe(code);
      expect(r.text).toMatch(/^trustsync: .+\n(.|\n)*  fix: /);
      expect(r.text).not.toMatch(/\n +at /);
    }
  });

  it('a server that is not there is unavailable (4); only an unforeseen failure shows its stack, as a defect (70)', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(reported(refused)).toMatchObject({ code: 4 });
    const bug = reported(new TypeError("Cannot read properties of undefined (reading 'x')"));
    expect(bug.code).toBe(70);
    expect(bug.text).toMatch(/\n +at /);
  });

  it('an option a person got wrong is one line and exit 2', async () => {
    const r = await cli(['explain', '--config', '/nonexistent/flow.yaml', 'shop.customers', '1', '--at', 'yesterday']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('trustsync: --at yesterday: not a time\n  fix: give an ISO 8601 time such as 2026-11-23T17:14:34Z\n');
  });

  it('explain of a table the flow does not write is an input error naming its tables, not "never written"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trustsync-cli-'));
    const file = join(dir, 'shop.yaml');
    writeFileSync(
      file,
      [
        'flow: shop',
        'source: { brokers: ["127.0.0.1:1"], decoding: json }',
        'destination:',
        '  url: postgres://postgres@127.0.0.1:1/none',
        '  tables: [{ topic: cdc.shop.demo.customers, table: shop.customers }]',
      ].join('\n'),
    );
    const r = await cli(['explain', '--config', file, 'shop.customrs', '7']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('trustsync: shop.customrs is not a destination table of flow shop: it has no story there\n  fix: name one of shop.customers\n');
  });
});
