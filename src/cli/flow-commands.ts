import { Command } from 'commander';
import { loadFlowFile } from '../flow/config.js';
import { FlowRunner, createLogger } from '../flow/run-flow.js';
import { discardDeadLetters, listDeadLetters, matchesDlqFilter, replayDeadLetters, type DlqFilter } from '../flow/replay.js';
import type { DlqEntry } from '../flow/dlq.js';
import { table, optionError } from './output.js';

export function runCommand(): Command {
  return new Command('run')
    .description('run a flow: consume its topics and apply the changes to the destination (several processes share one group)')
    .requiredOption('--config <file>', 'the flow file (YAML or JSON)')
    .action(async (opts: { config: string }) => {
      const config = loadFlowFile(opts.config);
      const runner = new FlowRunner(config);
      const stop = () => {
        runner.log.info('stopping: finishing the batches in hand');
        void runner.stop();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await runner.start();
      await runner.done;
    });
}

/** The filters list, replay and discard share: which dead letters a command works on. */
interface DlqFilterOptions {
  code?: string;
  reason?: string;
  key?: string;
  topic?: string;
  partition?: string;
  fromOffset?: string;
  toOffset?: string;
  offset?: string;
}

function withDlqFilters(cmd: Command): Command {
  return cmd
    .option('--code <code>', 'only this error code (e.g. malformed-json, row-rejected)')
    .option('--reason <text>', 'only letters whose error message contains this text')
    .option('--key <text>', 'only letters whose record key contains this text (e.g. \'"id":42\')')
    .option('--topic <topic>', 'only records of this topic')
    .option('--partition <n>', 'only records of this partition')
    .option('--from-offset <n>', 'only records at this offset of their partition or later')
    .option('--to-offset <n>', 'only records at this offset of their partition or earlier')
    .option('--offset <n>', 'only the dead letter at this DLQ offset');
}

function dlqFilter(o: DlqFilterOptions): DlqFilter {
  const whole = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw optionError(`${flag} ${v}: not a whole number`, `for example ${flag} 42`);
    return v;
  };
  const partition = whole('--partition', o.partition);
  const from = whole('--from-offset', o.fromOffset);
  const to = whole('--to-offset', o.toOffset);
  return {
    code: o.code,
    reason: o.reason,
    key: o.key,
    topic: o.topic,
    partition: partition === undefined ? undefined : Number(partition),
    fromOffset: from === undefined ? undefined : BigInt(from),
    toOffset: to === undefined ? undefined : BigInt(to),
    dlqOffset: whole('--offset', o.offset),
  };
}

const FILTERS = ['code', 'reason', 'key', 'topic', 'partition', 'fromOffset', 'toOffset', 'offset'] as const;
const hasFilter = (o: DlqFilterOptions) => FILTERS.some((k) => o[k] !== undefined);
const letterRow = (e: DlqEntry) => [
  e.dlqOffset,
  `${e.origin.topic}/${e.origin.partition}@${e.origin.offset}`,
  e.code,
  e.firstFailure.toISOString(),
  e.message.slice(0, 100),
];
const plainLetter = (e: DlqEntry) => ({ ...e, key: e.key?.toString('base64') ?? null, value: e.value?.toString('base64') ?? null, headers: undefined });

export function dlqCommand(): Command {
  const dlq = new Command('dlq').description("a flow's dead-letter topic: records it could not apply, with origin and reason");
  withDlqFilters(
    dlq
      .command('list')
      .description('the dead letters not yet settled (replayed or discarded)')
      .requiredOption('--config <file>', 'the flow file')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: DlqFilterOptions & { config: string; json?: boolean }) => {
    const filter = dlqFilter(opts);
    const entries = (await listDeadLetters(loadFlowFile(opts.config))).filter((e) => matchesDlqFilter(e, filter));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(entries.map(plainLetter), null, 2)}\n`);
      return;
    }
    if (entries.length === 0) {
      process.stdout.write(hasFilter(opts) ? 'no dead letter matches\n' : 'the dead-letter topic is empty\n');
      return;
    }
    process.stdout.write(`${table([['DLQ OFFSET', 'ORIGIN', 'CODE', 'FIRST FAILURE', 'MESSAGE'], ...entries.map(letterRow)])}\n`);
  });
  withDlqFilters(
    dlq
      .command('replay')
      .description('re-apply dead letters through the same engine (ordering guards still apply); settled ones leave the list')
      .requiredOption('--config <file>', 'the flow file')
      .option('--all', 'every dead letter')
      .option('--dry-run', 'show what would be replayed'),
  ).action(async (opts: DlqFilterOptions & { config: string; all?: boolean; dryRun?: boolean }) => {
    if (!opts.all && !hasFilter(opts))
      throw optionError('dlq replay: which dead letters?', 'give --all, or a filter such as --offset N or --code CODE (see `trustsync dlq list`)');
    const config = loadFlowFile(opts.config);
    const filter = dlqFilter(opts);
    const results = await replayDeadLetters(config, (e) => matchesDlqFilter(e, filter), Boolean(opts.dryRun), createLogger(config.flow, 'warn'));
    const rows = [['DLQ OFFSET', 'ORIGIN', 'OUTCOME', 'DETAIL']];
    for (const r of results)
      rows.push([r.entry.dlqOffset, `${r.entry.origin.topic}/${r.entry.origin.partition}@${r.entry.origin.offset}`, r.outcome, r.detail.slice(0, 120)]);
    process.stdout.write(results.length ? `${table(rows)}\n` : 'nothing to replay\n');
    if (results.some((r) => r.outcome === 'failed')) process.exitCode = 1;
  });
  withDlqFilters(
    dlq
      .command('discard')
      .description('settle dead letters without applying them: they leave the list, and the history tells who decided why')
      .requiredOption('--config <file>', 'the flow file')
      .requiredOption('--why <text>', 'the reason, kept in the decision history (e.g. "test data, never meant for the CRM")')
      .option('--all', 'every dead letter')
      .option('--dry-run', 'show what would be discarded')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: DlqFilterOptions & { config: string; why: string; all?: boolean; dryRun?: boolean; json?: boolean }) => {
    if (!opts.all && !hasFilter(opts))
      throw optionError('dlq discard: which dead letters?', 'give --all, or a filter such as --code CODE, --key TEXT or --from-offset N');
    const filter = dlqFilter(opts);
    const discarded = await discardDeadLetters(loadFlowFile(opts.config), (e) => matchesDlqFilter(e, filter), opts.why, Boolean(opts.dryRun));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ dryRun: Boolean(opts.dryRun), discarded: discarded.map(plainLetter) }, null, 2)}\n`);
      return;
    }
    if (discarded.length === 0) {
      process.stdout.write('no dead letter matches\n');
      return;
    }
    process.stdout.write(`${table([['DLQ OFFSET', 'ORIGIN', 'CODE', 'FIRST FAILURE', 'MESSAGE'], ...discarded.map(letterRow)])}\n`);
    process.stdout.write(`${opts.dryRun ? 'would discard' : 'discarded'} ${discarded.length} dead letter${discarded.length === 1 ? '' : 's'}\n`);
  });
  return dlq;
}
