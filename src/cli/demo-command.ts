import { Command } from 'commander';
import { stackSettings } from '../stack/settings.js';
import { formatSummary, runDemo } from '../demo/demo.js';
import { progress } from './output.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description('the main job on the local stack: capture a demo shop with Debezium, apply it with trustsync while it changes, and show the destination converging')
    .option('--operations <n>', 'how many source changes to write', '600')
    .action(async (opts: { operations: string }) => {
      const operations = Number(opts.operations);
      if (!Number.isInteger(operations) || operations < 1) throw new Error(`--operations ${opts.operations}: give a positive whole number`);
      const r = await runDemo(stackSettings(), { operations, log: progress });
      const out = [`\nDebezium change events, by topic and partition (key = entity id):`, formatSummary(r.summaries), '', 'trustsync decisions:'];
      for (const [what, n] of Object.entries(r.decisions)) out.push(`  ${what.padEnd(28)} ${n}`);
      out.push('', 'destination vs source, row by row:');
      for (const t of r.tables) {
        const bad = t.diff.missing.length + t.diff.extra.length + t.diff.wrong.length;
        out.push(`  ${t.table.padEnd(16)} ${String(t.rows).padStart(5)} rows  ${bad === 0 ? 'equal to the source' : `DIFFERS: ${JSON.stringify(t.diff)}`}`);
      }
      if (r.metricsUrl) out.push('', `(the flow served Prometheus metrics at ${r.metricsUrl} while it ran)`);
      out.push('', 'Every decision is on record; the story of one customer:', '  npx trustsync explain --config flows/shop.yaml shop.customers 2');
      process.stdout.write(`${out.join('\n')}\n`);
      if (r.summaries.some((s) => s.splitKeys.length > 0) || r.tables.some((t) => t.diff.missing.length + t.diff.extra.length + t.diff.wrong.length > 0)) process.exitCode = 1;
    });
}
