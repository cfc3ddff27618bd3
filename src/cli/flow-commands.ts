import { Command } from 'commander';
import { loadFlowFile } from '../flow/config.js';
import { FlowRunner, createLogger } from '../flow/run-flow.js';
import { listDeadLetters, replayDeadLetters } from '../flow/replay.js';
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

export function dlqCommand(): Command {
  const dlq = new Command('dlq').description("a flow's dead-letter topic: records it could not apply, with origin and reason");
  dlq
    .command('list')
    .requiredOption('--config <file>', 'the flow file')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string; json?: boolean }) => {
      const entries = await listDeadLetters(loadFlowFile(opts.config));
      if (opts.json) {
        const plain = entries.map((e) => ({ ...e, key: e.key?.toString('base64') ?? null, value: e.value?.toString('base64') ?? null, headers: undefined }));
        process.stdout.write(`${JSON.stringify(plain, null, 2)}\n`);
        return;
      }
      if (entries.length === 0) {
        process.stdout.write('the dead-letter topic is empty\n');
        return;
      }
      const rows = [['DLQ OFFSET', 'ORIGIN', 'CODE', 'FIRST FAILURE', 'MESSAGE']];
      for (const e of entries)
        rows.push([e.dlqOffset, `${e.origin.topic}/${e.origin.partition}@${e.origin.offset}`, e.code, e.firstFailure.toISOString(), e.message.slice(0, 100)]);
      process.stdout.write(`${table(rows)}\n`);
    });
  dlq
    .command('replay')
    .description('re-apply dead letters through the same engine (ordering guards still apply)')
    .requiredOption('--config <file>', 'the flow file')
    .option('--all', 'every dead letter')
    .option('--offset <n>', 'only the dead letter at this DLQ offset')
    .option('--dry-run', 'show what would be replayed')
    .action(async (opts: { config: string; all?: boolean; offset?: string; dryRun?: boolean }) => {
      if (!opts.all && opts.offset === undefined) throw optionError('dlq replay: which dead letters?', 'give --all, or --offset N (see `trustsync dlq list`)');
      const config = loadFlowFile(opts.config);
      const results = await replayDeadLetters(
        config,
        (e) => opts.all === true || e.dlqOffset === opts.offset,
        Boolean(opts.dryRun),
        createLogger(config.flow, 'warn'),
      );
      const rows = [['DLQ OFFSET', 'ORIGIN', 'OUTCOME', 'DETAIL']];
      for (const r of results)
        rows.push([r.entry.dlqOffset, `${r.entry.origin.topic}/${r.entry.origin.partition}@${r.entry.origin.offset}`, r.outcome, r.detail.slice(0, 120)]);
      process.stdout.write(results.length ? `${table(rows)}\n` : 'nothing to replay\n');
      if (results.some((r) => r.outcome === 'failed')) process.exitCode = 1;
    });
  return dlq;
}
