import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AssignerProtocol } from 'kafkajs';
import { runWorkload } from '../../src/demo/workload.js';
import type { FlowConfig } from '../../src/flow/config.js';
import type { FlowRunner } from '../../src/flow/run-flow.js';
import { waitForConvergence } from '../../src/demo/row-compare.js';
import { kafkaClient } from '../support/capture.js';
import { SyncFixture } from '../support/fixture.js';
import { flowConfig, startFlow } from '../support/flow.js';

/** A flow scales like Kafka does: processes with the same flow file share its partitions as one group. */
describe('two trustsync processes, one flow', () => {
  const f = new SyncFixture('scale');
  const tables = ['customers', 'orders'];
  let config: FlowConfig;
  let second: FlowRunner;

  /** Partitions each member of the flow's group holds, as the broker sees it. */
  const assignments = async (): Promise<number[]> => {
    const admin = kafkaClient().admin();
    await admin.connect();
    try {
      const { groups } = await admin.describeGroups([config.group]);
      return groups[0]!.members.map((m) => {
        const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
        return Object.values(a?.assignment ?? {}).reduce((n, ps) => n + ps.length, 0);
      });
    } finally {
      await admin.disconnect();
    }
  };

  /** Waits until `count` members hold all 12 partitions (6 per topic) between them, each some. */
  const waitForMembers = async (count: number) => {
    const deadline = Date.now() + 60_000;
    let last: number[] = [];
    while (Date.now() < deadline) {
      last = await assignments();
      if (last.length === count && last.every((n) => n > 0) && last.reduce((a, b) => a + b, 0) === 12) return last;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`group never settled on ${count} members with partitions: ${JSON.stringify(last)}`);
  };

  beforeAll(async () => {
    await f.open({ demoTables: true });
    await runWorkload(f.source, f.schema, 50, 11);
    await f.captureTables(tables, 'json').start();
    config = flowConfig({ name: f.schema, topics: f.flowTables(tables) });
    f.runner = await startFlow(config);
    second = await startFlow(config);
  });

  afterAll(async () => {
    await second?.stop();
    await f.close();
  });

  it('shares the partitions between the processes and converges', async () => {
    await waitForMembers(2);
    await runWorkload(f.source, f.schema, 300, 12);
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
    expect(await f.runner!.metrics.total('applied')).toBeGreaterThan(0);
    expect(await second.metrics.total('applied')).toBeGreaterThan(0);
  });

  it('hands a leaving process its partitions to the one that stays, losing nothing', async () => {
    const writing = runWorkload(f.source, f.schema, 300, 13);
    await second.stop();
    await writing;
    expect(await waitForMembers(1)).toEqual([12]);
    await waitForConvergence(f.source, f.dest, f.pairs(tables));
  });
});
