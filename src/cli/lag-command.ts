import { Command } from 'commander';
import { Kafka, logLevel } from 'kafkajs';
import { stackEndpoints, stackSettings } from '../stack/settings.js';
import { recordAges, watchGroupLag, type PartitionRef } from '../observe/lag.js';
import type { GroupVerdict } from '../observe/lag-status.js';
import { table, optionError } from './output.js';

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
      if (!Number.isInteger(samples) || samples < 1) throw optionError(`--samples ${opts.samples}: not a whole number ≥ 1`, 'for example --samples 3');
      if (!(interval >= 0)) throw optionError(`--interval ${opts.interval}: not a number of seconds ≥ 0`, 'for example --interval 2');
      const brokers = opts.brokers ? opts.brokers.split(',') : stackEndpoints(stackSettings()).kafkaBrokers;
      const kafka = new Kafka({ clientId: 'trustsync-lag', brokers, logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      try {
        do {
          const groups =
            opts.group ??
            (await admin.listGroups()).groups
              .map((g) => g.groupId)
              .filter((g) => !g.startsWith('trustsync-lag-probe-'))
              .sort();
          const watched = await Promise.all(groups.map(async (g) => ({ group: g, ...(await watchGroupLag(admin, g, samples, interval * 1000)) })));
          // Time lag of each lagging partition: the age of its oldest unconsumed record, as of the last sample.
          const behind = watched.flatMap((w) =>
            w.samples
              .at(-1)!
              .partitions.filter((p) => p.lag > 0n)
              .map((p) => ({ topic: p.topic, partition: p.partition, offset: p.committed !== null && p.committed > p.low ? p.committed : p.low })),
          );
          const ages = await recordAges(kafka, uniqueRefs(behind));
          const verdicts = watched.map((w) => ({
            group: w.group,
            ...w.verdict,
            partitions: w.verdict.partitions.map((p) => ({ ...p, ageSeconds: p.lag === 0n ? 0 : (ages.get(`${p.topic}/${p.partition}`) ?? null) })),
          }));
          print(verdicts, Boolean(opts.json));
          process.exitCode = verdicts.every((v) => v.status === 'OK') ? 0 : 1;
        } while (opts.watch);
      } finally {
        await admin.disconnect();
      }
    });
}

type Verdict = GroupVerdict & { group: string; partitions: (GroupVerdict['partitions'][number] & { ageSeconds: number | null })[] };

/** Two groups behind on one partition at the same offset need one look. */
function uniqueRefs(refs: PartitionRef[]): PartitionRef[] {
  const byId = new Map<string, PartitionRef>();
  for (const r of refs) {
    const prev = byId.get(`${r.topic}/${r.partition}`);
    if (!prev || r.offset < prev.offset) byId.set(`${r.topic}/${r.partition}`, r);
  }
  return [...byId.values()];
}

const age = (s: number | null) => (s === null ? '?' : s < 120 ? `${Math.round(s)}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`);

function print(verdicts: Verdict[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(verdicts, (_, v) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`);
    return;
  }
  const rows = [['GROUP', 'TOPIC', 'PARTITION', 'LAG', 'TIME LAG', 'STATUS', 'WHY']];
  for (const v of verdicts) {
    rows.push([v.group, '', '', String(v.totalLag), '', v.status, v.reason]);
    for (const p of v.partitions) rows.push(['', p.topic, String(p.partition), String(p.lag), age(p.ageSeconds), p.status, p.reason]);
  }
  process.stdout.write(`${table(rows)}\n`);
}
