import { Command } from 'commander';
import { Kafka, logLevel } from 'kafkajs';
import { stackEndpoints, stackSettings } from '../stack/settings.js';
import { loadFlowFile } from '../flow/config.js';
import { checkKafkaCredentials, kafkaOptions } from '../kafka/connection.js';
import { recordAges, watchGroupLag, type PartitionRef } from '../observe/lag.js';
import type { GroupVerdict } from '../observe/lag-status.js';
import { table, optionError } from './output.js';

interface LagOptions {
  group?: string[];
  brokers?: string;
  config?: string;
  json?: boolean;
  watch?: boolean;
  samples: string;
  interval?: string;
  window?: string;
}

/**
 * Seconds a window must span to judge a group that commits every so often: a trustsync flow commits
 * with each batch; a Kafka Connect sink (group `connect-<name>`) every offset.flush.interval.ms, 60 s
 * by default, so a shorter window would call a healthy one STALLED.
 */
const DEFAULT_WINDOW_SECONDS = 4;
const CONNECT_SINK_WINDOW_SECONDS = 70;
const windowFor = (group: string) => (group.startsWith('connect-') ? CONNECT_SINK_WINDOW_SECONDS : DEFAULT_WINDOW_SECONDS);

/** Exit codes: every group OK; a finding (WARN, REWIND, STALLED, STOPPED); a group that cannot be judged (ERR). */
const EXIT = { ok: 0, findings: 1, error: 2 } as const;

export function lagCommand(): Command {
  return new Command('lag')
    .description("consumer lag per partition for any consumer group (trustsync's own, a Connect sink, …), with a status per group")
    .option('--group <id...>', 'the groups to report (default: every group)')
    .option('--brokers <list>', 'bootstrap brokers, comma-separated (default: the local stack)')
    .option('--config <file>', 'a flow file: its brokers, TLS and SASL, and its group unless --group names others')
    .option('--samples <n>', 'samples per evaluation window', '3')
    .option(
      '--window <seconds>',
      `seconds the samples span (default ${DEFAULT_WINDOW_SECONDS}; ${CONNECT_SINK_WINDOW_SECONDS} for Kafka Connect sinks, which commit every 60 s)`,
    )
    .option('--interval <seconds>', 'seconds between samples (instead of --window)')
    .option('--json', 'machine-readable output')
    .option('--watch', 'evaluate again and again until interrupted')
    .action(async (opts: LagOptions) => {
      const samples = Number(opts.samples);
      if (!Number.isInteger(samples) || samples < 1) throw optionError(`--samples ${opts.samples}: not a whole number ≥ 1`, 'for example --samples 3');
      const seconds = (option: string, given: string | undefined) => {
        const n = Number(given);
        if (given !== undefined && !(n >= 0)) throw optionError(`--${option} ${given}: not a number of seconds ≥ 0`, `for example --${option} 10`);
        return given === undefined ? undefined : n;
      };
      const [window, interval] = [seconds('window', opts.window), seconds('interval', opts.interval)];
      // Samples spread over the window: the group's own unless one is given.
      const intervalFor = (group: string) => interval ?? (samples > 1 ? (window ?? windowFor(group)) / (samples - 1) : 0);
      const flow = opts.config ? loadFlowFile(opts.config) : undefined;
      const connection = flow?.kafka ?? { brokers: stackEndpoints(stackSettings()).kafkaBrokers };
      if (opts.brokers) connection.brokers = opts.brokers.split(',');
      if (flow && !opts.group) opts.group = [flow.group];
      const kafka = new Kafka({ clientId: 'trustsync-lag', ...kafkaOptions(connection), logLevel: logLevel.NOTHING });
      await checkKafkaCredentials(connection);
      const admin = kafka.admin();
      await admin.connect();
      try {
        do {
          const listed = (await admin.listGroups()).groups.filter((g) => !g.groupId.startsWith('trustsync-lag-probe-'));
          // Kafka Connect's workers form a group too, but consume no partitions: not a consumer group to judge.
          const workers = listed.filter((g) => g.protocolType === 'connect').map((g) => g.groupId);
          const groups =
            opts.group ??
            listed
              .map((g) => g.groupId)
              .filter((g) => !workers.includes(g))
              .sort();
          const watched = await Promise.all(
            groups.map(async (g) =>
              workers.includes(g)
                ? { group: g, samples: [], verdict: workerVerdict() }
                : { group: g, ...(await watchGroupLag(admin, g, samples, intervalFor(g) * 1000)) },
            ),
          );
          // Time lag of each lagging partition: the age of its oldest unconsumed record, as of the last sample.
          const behind = watched.flatMap((w) =>
            (w.samples.at(-1)?.partitions ?? [])
              .filter((p) => p.lag > 0n)
              .map((p) => ({ topic: p.topic, partition: p.partition, offset: p.committed !== null && p.committed > p.low ? p.committed : p.low })),
          );
          const ages = await recordAges(kafka, uniqueRefs(behind));
          const verdicts = watched.map((w) => ({
            group: w.group,
            ...w.verdict,
            partitions: w.verdict.partitions.map((p) => ({ ...p, ageSeconds: p.lag === 0n ? 0 : (ages.get(`${p.topic}/${p.partition}`) ?? null) })),
          }));
          print(verdicts, Boolean(opts.json), opts.group ? [] : workers);
          process.exitCode = verdicts.some((v) => v.status === 'ERR') ? EXIT.error : verdicts.every((v) => v.status === 'OK') ? EXIT.ok : EXIT.findings;
        } while (opts.watch);
      } finally {
        await admin.disconnect();
      }
    });
}

/** A group named with --group that is Kafka Connect's workers, not consumers. */
function workerVerdict(): GroupVerdict {
  return {
    status: 'ERR',
    reason: "Kafka Connect's worker group: it consumes no partitions (its sink connectors' groups are connect-<name>)",
    totalLag: 0n,
    partitions: [],
  };
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

function print(verdicts: Verdict[], json: boolean, skipped: readonly string[]): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(verdicts, (_, v) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`);
    return;
  }
  // The columns of kafka-consumer-groups --describe, then the judgement.
  const rows = [['GROUP', 'TOPIC', 'PARTITION', 'CURRENT-OFFSET', 'LOG-END-OFFSET', 'LAG', 'TIME-LAG', 'CONSUMER-ID', 'HOST', 'STATUS', 'WHY']];
  for (const v of verdicts) {
    rows.push([v.group, '', '', '', '', String(v.totalLag), '', '', '', v.status, v.reason]);
    for (const p of v.partitions)
      rows.push([
        '',
        p.topic,
        String(p.partition),
        p.committed === null ? '-' : String(p.committed),
        String(p.high),
        String(p.lag),
        age(p.ageSeconds),
        p.owner?.consumerId ?? '-',
        p.owner?.host ?? '-',
        p.status,
        p.reason,
      ]);
  }
  process.stdout.write(`${table(rows)}\n`);
  if (skipped.length) process.stdout.write(`(not judged: ${skipped.join(', ')} — Kafka Connect's worker group, which consumes no partitions)\n`);
}
