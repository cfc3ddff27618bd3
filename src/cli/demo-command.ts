import { Command } from 'commander';
import { stackSettings } from '../stack/settings.js';
import { formatSummary, runDemo } from '../demo/demo.js';
import { progress } from './output.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description('bring the stack up, capture a demo shop database with Debezium, write a stream of changes, and show what arrives')
    .option('--operations <n>', 'how many source changes to write', '600')
    .action(async (opts: { operations: string }) => {
      const operations = Number(opts.operations);
      if (!Number.isInteger(operations) || operations < 1) throw new Error(`--operations ${opts.operations}: give a positive whole number`);
      const { summaries } = await runDemo(stackSettings(), { operations, log: progress });
      process.stdout.write(`\nDebezium change events, by topic and partition (key = entity id):\n${formatSummary(summaries)}\n`);
      if (summaries.some((s) => s.splitKeys.length > 0)) process.exitCode = 1;
    });
}
