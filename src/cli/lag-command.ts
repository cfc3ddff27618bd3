import { Command } from 'commander';
import { Kafka, logLevel } from 'kafkajs';
import { stackEndpoints, stackSettings } from '../stack/settings.js';
import { watchGroupLag } from '../observe/lag.js';
import type { GroupVerdict } from '../observe/lag-status.js';
import { table } from './output.js';

interface LagOptions {
  group?: string[];
  brokers?: string;
  json?: boolean;
  watch?: boolean;
  samples: string;
  interval: string;
}

export function lagCommand(): Command {
  return new Command('lag')
    .description("consumer lag per partition for any consumer group (trustsync's own, a Connect sink, …), with a status per group")
    .option('--group <id...>', 'the groups to report (default: every group)')
    .option('--brokers <list>', 'bootstrap brokers, comma-separated (default: the local stack)')
    .option('--samples <n>', 'samples per evaluation window', '3')
    .option('--interval <seconds>', 'seconds between samples', '2')
    .option('--json', 'machine-readable output')
    .option('--watch', 'evaluate again and again until interrupted')
    .action(async (opts: LagOptions) => {
      const samples = Number(opts.samples);
      const interval = Number(opts.interval);
      if (!Number.isInteger(samples) || samples < 1) throw new Error(`--samples ${opts.samples}: give a whole number ≥ 1`);
      if (!(interval >= 0)) throw new Error(`--interval ${opts.interval}: give a number of seconds ≥ 0`);
      const brokers = opts.brokers ? opts.brokers.split(',') : stackEndpoints(stackSettings()).kafkaBrokers;
      const admin = new Kafka({ clientId: 'trustsync-lag', brokers, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        do {
          const groups = opts.group ?? (await admin.listGroups()).groups.map((g) => g.groupId).sort();
          const verdicts = await Promise.all(groups.map(async (g) => ({ group: g, ...(await watchGroupLag(admin, g, samples, interval * 1000)).verdict })));
          print(verdicts, Boolean(opts.json));
          process.exitCode = verdicts.every((v) => v.status === 'OK') ? 0 : 1;
        } while (opts.watch);
      } finally {
        await admin.disconnect();
      }
    });
}

function print(verdicts: (GroupVerdict & { group: string })[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(verdicts, (_, v) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`);
    return;
  }
  const rows = [['GROUP', 'TOPIC', 'PARTITION', 'LAG', 'STATUS', 'WHY']];
  for (const v of verdicts) {
    rows.push([v.group, '', '', String(v.totalLag), v.status, v.reason]);
    for (const p of v.partitions) rows.push(['', p.topic, String(p.partition), String(p.lag), p.status, p.reason]);
  }
  process.stdout.write(`${table(rows)}\n`);
}
