import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { stringify } from 'yaml';
import { validateFlow } from '../../src/flow/config.js';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { ConfigError } from '../../src/model/errors.js';
import { PACKAGE_DIR } from '../../src/stack/settings.js';
import { endpoints, kafkaClient, uniqueName } from '../support/capture.js';
import { flowDocument } from '../support/flow.js';

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Whether something accepts connections on the port. */
async function listening(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(true));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
  });
}

/**
 * A flow's life is one state at a time, and its end says how it went: a flow that failed never
 * ends as stopped, whoever else asked it to stop, and a failed start leaves nothing open.
 */
describe('a flow lifecycle you can see', () => {
  const name = uniqueName('life');
  const topic = `${name}.changes`;
  const quiet = `${name}.quiet`;
  const dir = mkdtempSync(join(tmpdir(), 'trustsync-life-'));

  beforeAll(async () => {
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic, numPartitions: 1 },
        { topic: quiet, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    const value = {
      before: null,
      after: { id: 1, v: 'x' },
      source: {
        connector: 'postgresql',
        name: 'cdc.life',
        ts_ms: 1,
        snapshot: 'false',
        db: 'src',
        sequence: '["100","108"]',
        schema: 'life',
        table: 'things',
        txId: 1,
        lsn: 108,
      },
      op: 'c',
      ts_ms: 2,
    };
    await producer.send({ topic, messages: [{ key: JSON.stringify({ id: 1 }), value: JSON.stringify(value) }] });
    await producer.disconnect();
  });

  afterAll(async () => {
    const admin = kafkaClient().admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic, quiet] }).catch(() => undefined);
    await admin.disconnect();
  });

  /** A flow that fails at its first record: its destination table does not exist and may not be created. */
  const failingFlow = (flow: string) =>
    flowDocument({
      name: flow,
      topics: [{ topic, table: `${name}.missing` }],
      extra: { destination: { url: endpoints.postgresUrl('trustsync_dest'), tables: [{ topic, table: `${name}.missing`, createIfMissing: false }] } },
    });

  it('`trustsync run` sent SIGTERM while a failed flow shuts down exits non-zero', async () => {
    const file = join(dir, 'failing.yaml');
    writeFileSync(file, stringify(failingFlow(`${name}-cli`)));
    const child = spawn(process.execPath, [join(PACKAGE_DIR, 'bin', 'trustsync.js'), 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => output.push(l));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // The moment the failure is logged, its shutdown has begun: SIGTERM arrives in the middle of it.
    for await (const line of createInterface({ input: child.stdout! })) {
      output.push(line);
      if (line.includes('"msg":"flow stopped"')) {
        child.kill('SIGTERM');
        break;
      }
    }
    const code = await exit;
    expect(output.join('\n')).toMatch(/does not exist/);
    expect(code).not.toBe(0);
  });

  it('in process: stop() during a failure awaits the same shutdown, and `done` still rejects with the failure', async () => {
    const runner = new FlowRunner(validateFlow(failingFlow(`${name}-lib`), 'flow.yaml'), pino({ level: 'silent' }));
    expect(runner.state).toBe('created');
    await runner.start();
    expect(runner.state).toBe('running');
    const failed = runner.done.then(
      () => 'stopped',
      (err: Error) => err.message,
    );
    // Wait for the failure to begin, then ask for a stop in the middle of its shutdown.
    const deadline = Date.now() + 60_000;
    while (runner.state === 'running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(runner.state).toBe('draining');
    await runner.stop();
    expect(runner.state).toBe('failed');
    expect(await failed).toMatch(/does not exist/);
    // Idempotent: asking again changes nothing.
    await runner.stop();
    expect(runner.state).toBe('failed');
  });

  it('maintenance that fails is logged and counted, never swallowed; maintenance that works reports no failure', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const broken = new FlowRunner(
      validateFlow(
        { ...failingFlow(`${name}-upkeep`), destination: { url: endpoints.postgresUrl(`${name}_no_such_db`), tables: [{ topic, table: `${name}.t` }] } },
        'flow.yaml',
      ),
      log,
    );
    const result = await broken.maintain();
    await broken.stop();
    expect(result.failed).toEqual(['purge-tombstones', 'purge-history', 'snapshot-histories']);
    const metrics = await broken.metrics.registry.metrics();
    for (const task of result.failed) expect(metrics).toContain(`trustsync_maintenance_failures_total{flow="${name}-upkeep",task="${task}"} 1`);
    expect(lines.filter((l) => l.includes('maintenance task failed') && l.includes('does not exist'))).toHaveLength(3);

    const healthy = new FlowRunner(
      validateFlow(flowDocument({ name: `${name}-upkeep-ok`, topics: [{ topic: quiet, table: `${name}.quiet` }] }), 'flow.yaml'),
      pino({ level: 'silent' }),
    );
    await healthy.start();
    expect((await healthy.maintain()).failed).toEqual([]);
    await healthy.stop();
  });

  it('a metrics port another process holds is an input error naming metrics.port, and the flow ends failed', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const { port } = holder.address() as { port: number };
    try {
      const runner = new FlowRunner(validateFlow({ ...failingFlow(`${name}-port`), metrics: { port } }, 'flow.yaml'), pino({ level: 'silent' }));
      const err = await runner.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toBe(`metrics.port ${port}: 127.0.0.1:${port} cannot be served (another process listens there)`);
      expect((err as ConfigError).fix).toContain('choose another metrics.port');
      expect(runner.state).toBe('failed');
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
  });

  it('a start that fails closes what it opened (the metrics port is free again) and ends failed', async () => {
    const port = await freePort();
    const doc = {
      ...failingFlow(`${name}-start`),
      destination: { url: endpoints.postgresUrl(`${name}_no_such_db`), tables: [{ topic, table: `${name}.t` }] },
      metrics: { port },
    };
    const runner = new FlowRunner(validateFlow(doc, 'flow.yaml'), pino({ level: 'silent' }));
    await expect(runner.start()).rejects.toThrow(/does not exist/);
    expect(runner.state).toBe('failed');
    await expect(runner.done).rejects.toThrow(/does not exist/);
    expect(await listening(port)).toBe(false);
    await expect(runner.start()).rejects.toThrow(/started already/);
  });
});
