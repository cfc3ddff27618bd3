import { Command } from 'commander';
import { loadFlowFile } from '../flow/config.js';
import { createLogger } from '../flow/run-flow.js';
import { reconcileFlow } from '../reconcile/reconcile.js';
import { progress, table, optionError } from './output.js';

const show = (v: string | null | undefined) => (v === null || v === undefined ? '∅' : v.length > 40 ? `${v.slice(0, 37)}…` : v);

export function reconcileCommand(): Command {
  return new Command('reconcile')
    .description("compare a flow's destination tables with their sources (counts, bucket hashes, then rows and fields), as its policies say they should be")
    .requiredOption('--config <file>', 'the flow file (needs source.database)')
    .option('--repair', 'apply the recommended actions that update the destination or the source or delete from the destination (recorded in the history)')
    .option(
      '--reverse <file>',
      "a two-way sync: the other direction's flow file; each field is held to its owner's value on both sides, and the source is repaired through it",
    )
    .option('--buckets <n>', 'key-range buckets hashed in each database', '64')
    .option('--settle <seconds>', 'wait this long and compare again: differences that move are in flight, not drift', '3')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string; reverse?: string; repair?: boolean; buckets: string; settle: string; json?: boolean }) => {
      const buckets = Number(opts.buckets);
      const settle = Number(opts.settle);
      if (!Number.isInteger(buckets) || buckets < 1 || buckets > 65536)
        throw optionError(`--buckets ${opts.buckets}: not a whole number from 1 to 65536`, 'for example --buckets 256');
      if (!(settle >= 0)) throw optionError(`--settle ${opts.settle}: not a number of seconds ≥ 0`, 'for example --settle 5');
      const config = loadFlowFile(opts.config);
      const report = await reconcileFlow(config, {
        buckets,
        settleMs: settle * 1000,
        repair: Boolean(opts.repair),
        reverse: opts.reverse ? loadFlowFile(opts.reverse) : undefined,
        progress: opts.json ? () => undefined : progress,
        log: createLogger(config.flow, 'warn'),
      });
      process.exitCode = report.clean ? 0 : 1;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const out: string[] = [];
      for (const t of report.tables) {
        out.push(
          `${t.source} → ${t.destination}: ${t.rows.source} rows at the source, ${t.rows.destination} at the destination; ${t.mismatchedBuckets} of ${t.buckets} buckets differ${t.settled ? ` (${t.settled} differences were in flight and settled)` : ''}`,
        );
        if (t.differences.length === 0) continue;
        const rows = [['KEY', 'DIFFERENCE', 'SOURCE', 'DESTINATION', 'ACTION', 'WHY']];
        for (const d of t.differences)
          rows.push([
            d.key,
            d.kind === 'field' ? `field ${d.field}` : d.kind,
            show(d.source),
            show(d.destination),
            `${d.recommendedAction}${d.repaired ? ' (repaired)' : ''}`,
            d.why,
          ]);
        out.push(table(rows).replace(/^/gm, '  '));
      }
      out.push(
        report.clean
          ? 'clean: the destination is what the policies say it should be'
          : 'drift found: run with --repair to apply the actions marked update-destination, update-source and delete-destination; manual-review ones need a person',
      );
      process.stdout.write(`${out.join('\n')}\n`);
    });
}
