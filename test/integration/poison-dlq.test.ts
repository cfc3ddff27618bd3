import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Partitioners, type Producer } from 'kafkajs';
import pino from 'pino';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { FlowConfig } from '../../src/flow/config.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { listDeadLetters, replayDeadLetters } from '../../src/flow/replay.js';
import { kafkaClient, readRecords, type SourceCapture, type Variant } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, flowDocument, startFlow } from '../support/flow.js';
import { trustsync } from '../support/cli.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { waitFor } from '../support/wait.js';

/**
 * Bad input gets a clear error and costs no other data: each poison record lands in the DLQ with its
 * origin and reason, the partition keeps flowing, and a replay goes through the same guards.
 */
describe.each<Variant>(['json', 'avro'])('poison records and the dead-letter topic (%s)', (variant) => {
  const f = new SyncFixture(`poison_${variant}`);
  const { schema, destSchema } = f;
  const pairs = f.pairs(['customers']);
  let source: pg.Client;
  let dest: pg.Client;
  let producer: Producer;
  let capture: SourceCapture;
  let config: FlowConfig;
  let runner: FlowRunner;
  const injected: { key: Buffer | null; value: Buffer | null; code: string }[] = [];

  const nameOf = async (id: number) => (await dest.query(`SELECT name FROM ${destSchema}.customers WHERE id = $1`, [id])).rows[0]?.name as string | undefined;

  beforeAll(async () => {
    ({ source, dest } = await f.open({ demoTables: true }));
    // A rule the destination enforces and the source does not: rows breaking it are the destination's to reject.
    await dest.query(`ALTER TABLE ${destSchema}.customers ADD CONSTRAINT no_banned CHECK (tier <> 'banned')`);
    for (let id = 1; id <= 5; id++) await source.query(`INSERT INTO ${schema}.customers (id, email, name) VALUES ($1, $2, 'before')`, [id, `p${id}@x`]);
    capture = f.captureTables(['customers'], variant);
    await capture.start();
    config = flowConfig({ name: schema, decoding: variant, topics: f.flowTables(['customers']) });
    runner = f.runner = await startFlow(config);
    await waitForConvergence(source, dest, pairs);
    producer = kafkaClient().producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
  });

  afterAll(async () => {
    await producer?.disconnect();
    await f.close();
  });

  it('dead-letters each kind of poison with its reason while the partition keeps flowing', async () => {
    // Poison goes into the partition that holds customer 1, ahead of customer 1's next change.
    const records = await readRecords(kafkaClient(), capture.topic('customers'), 5);
    const partition = records[0]!.partition;
    const keyBytes = records[0]!.key;
    const poison =
      variant === 'json'
        ? [
            { key: keyBytes, value: Buffer.from('{"before":null,"after":{"id":1'), code: 'malformed-json' },
            { key: null, value: records[0]!.value, code: 'missing-key' },
            { key: keyBytes, value: Buffer.from('{"hello":"world"}'), code: 'not-a-change-event' },
          ]
        : [
            { key: keyBytes, value: Buffer.from('{"op":"u"}'), code: 'bad-magic-byte' },
            { key: keyBytes, value: Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0x00]), Buffer.from('xx')]), code: 'unknown-schema' },
          ];
    injected.push(...poison);
    // The producer's own headers travel with each record (tracing, say): a dead letter keeps them.
    await producer.send({
      topic: capture.topic('customers'),
      messages: poison.map((p) => ({ key: p.key, value: p.value, partition, headers: { traceparent: `trace-${p.code}` } })),
    });
    // One change of customer 2 breaks the destination's rule: exactly one row to reject, however the
    // changes fall into batches (two changes of the key in two batches would each be rejected).
    await source.query(`UPDATE ${schema}.customers SET tier = 'banned', name = 'after poison' WHERE id = 2`);
    await source.query(`UPDATE ${schema}.customers SET name = 'after poison' WHERE id = ANY($1)`, [[1, 3, 4, 5]]);

    await waitFor(async () => (await nameOf(1)) === 'after poison' && (await nameOf(5)) === 'after poison', 'changes after the poison to apply');
    const letters = await listDeadLetters(config);
    const codes = letters.map((l) => l.code).sort();
    expect(codes).toEqual([...poison.map((p) => p.code), 'row-rejected'].sort());
    for (const p of poison) {
      const letter = letters.find((l) => l.code === p.code)!;
      expect(letter.origin.topic).toBe(capture.topic('customers'));
      expect(letter.origin.partition).toBe(partition);
      expect(letter.value?.equals(p.value!)).toBe(true);
      expect(letter.message.length).toBeGreaterThan(0);
      expect(String(letter.headers.traceparent)).toBe(`trace-${p.code}`);
      expect(letter.attempts).toBe(1);
    }
    const rejected = letters.find((l) => l.code === 'row-rejected')!;
    expect(rejected.message).toContain('no_banned');
    expect(await runner.metrics.total('dead_lettered')).toBe(poison.length + 1);
    // Every dead letter is in the history too, with its reason.
    const { rows } = await dest.query(`SELECT reason FROM trustsync.history WHERE flow = $1 AND decision = 'dead-lettered' ORDER BY id`, [config.flow]);
    expect(rows).toHaveLength(poison.length + 1);
    for (const p of poison) expect(rows.some((r) => String(r.reason).startsWith(`${p.code}:`))).toBe(true);
  });

  it('replays a dead letter through the same engine once its cause is fixed, and never over newer data; replayed letters leave the list', async () => {
    const log = pino({ level: 'silent' });
    const isRejected = (e: { code: string }) => e.code === 'row-rejected';
    const tierOf = async (id: number) => (await dest.query(`SELECT tier FROM ${destSchema}.customers WHERE id = $1`, [id])).rows[0]?.tier as string;
    // Customer 2's newest change (tier 'banned', renamed) was rejected; the destination still holds the one before.
    expect(await tierOf(2)).toBe('standard');
    // Customer 3's change is rejected too, then overtaken at the source by a newer one the destination takes.
    await source.query(`UPDATE ${schema}.customers SET tier = 'banned' WHERE id = 3`);
    await waitFor(async () => (await listDeadLetters(config)).filter(isRejected).length === 2, "customer 3's change dead-lettered");
    await source.query(`UPDATE ${schema}.customers SET tier = 'gold' WHERE id = 3`);
    await waitFor(async () => (await tierOf(3)) === 'gold', 'the newer change of customer 3 to apply');

    await dest.query(`ALTER TABLE ${destSchema}.customers DROP CONSTRAINT no_banned`);
    const replayed = await replayDeadLetters(config, isRejected, false, log);
    expect(replayed.map((r) => r.outcome).sort()).toEqual(['applied', 'stale']);
    // Applied where it is the newest change; a replay never overwrites newer data.
    expect(await tierOf(2)).toBe('banned');
    expect(await tierOf(3)).toBe('gold');
    await waitForConvergence(source, dest, pairs);
    // Settled, both leave the list: nothing more to replay.
    expect((await listDeadLetters(config)).filter(isRejected)).toEqual([]);
    expect(await replayDeadLetters(config, isRejected, false, log)).toEqual([]);

    // Poison stays poison: replaying it fails again, with its reason, and changes nothing; the DLQ
    // then holds it with one attempt more, its first failure's time and its own headers.
    const before = new Map((await listDeadLetters(config)).filter((e) => !isRejected(e)).map((e) => [e.code, e]));
    const poisonReplay = await replayDeadLetters(config, (e) => !isRejected(e), false, log);
    expect(poisonReplay.every((r) => r.outcome === 'failed')).toBe(true);
    expect(poisonReplay).toHaveLength(injected.length);
    const after = (await listDeadLetters(config)).filter((e) => !isRejected(e));
    expect(after).toHaveLength(injected.length);
    for (const letter of after) {
      expect(letter.attempts).toBe(2);
      expect(letter.firstFailure.toISOString()).toBe(before.get(letter.code)!.firstFailure.toISOString());
      expect(String(letter.headers.traceparent)).toBe(`trace-${letter.code}`);
    }
    const dry = await replayDeadLetters(config, () => true, true, log);
    expect(dry.every((r) => r.outcome === 'would replay')).toBe(true);
  });

  it('discards dead letters by code through the CLI, on record in the history; the others stay', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'trustsync-dlq-')), 'flow.yaml');
    writeFileSync(file, stringify(flowDocument({ name: schema, decoding: variant, topics: f.flowTables(['customers']) })));
    const code = injected[0]!.code;
    const listed = await trustsync(['dlq', 'list', '--config', file, '--code', code, '--json']);
    expect(listed.status, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { code: string }[]).map((e) => e.code)).toEqual([code]);

    const bad = await trustsync(['dlq', 'discard', '--config', file, '--partition', 'first', '--why', 'x']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--partition first: not a whole number');
    const unfiltered = await trustsync(['dlq', 'discard', '--config', file, '--why', 'x']);
    expect(unfiltered.status).toBe(2);
    expect(unfiltered.stderr).toContain('which dead letters?');

    const dry = await trustsync(['dlq', 'discard', '--config', file, '--code', code, '--why', 'test poison', '--dry-run']);
    expect(dry.stdout).toContain('would discard 1 dead letter');
    expect((await listDeadLetters(config)).map((e) => e.code)).toContain(code);

    const done = await trustsync(['dlq', 'discard', '--config', file, '--code', code, '--why', 'test poison, never a real change']);
    expect(done.status, done.stderr).toBe(0);
    expect(done.stdout).toContain('discarded 1 dead letter');
    const left = (await listDeadLetters(config)).map((e) => e.code).sort();
    expect(left).toEqual(
      injected
        .slice(1)
        .map((p) => p.code)
        .sort(),
    );
    const { rows } = await dest.query(`SELECT reason FROM trustsync.history WHERE flow = $1 AND decision = 'discarded'`, [config.flow]);
    expect(rows).toHaveLength(1);
    expect(rows[0].reason).toMatch(new RegExp(`^discarded from the dead-letter topic \\(DLQ offset \\d+; ${code}: .*\\): test poison, never a real change$`));
  });
});
