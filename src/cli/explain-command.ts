import { Command } from 'commander';
import { optionError } from './output.js';
import { loadFlowFile } from '../flow/config.js';
import { openSink } from '../sink/kinds.js';
import { formatExplanation } from '../history/explain.js';
import { targetName } from '../model/table.js';

export function explainCommand(): Command {
  return new Command('explain')
    .description('the story of one destination record: every change that arrived, what was decided and why')
    .requiredOption('--config <file>', 'the flow file (for the destination)')
    .argument('<table>', 'destination table, schema.table')
    .argument('<key>', 'the key as trustsync writes it: 42, "abc", or [1,2] for composite keys')
    .option('--field <name>', 'only this field')
    .option('--at <time>', 'what trustsync believed at this time (ISO 8601)')
    .option('--all', 'every decision (by default the latest 50 are shown)')
    .option('--json', 'machine-readable output')
    .action(async (table: string, key: string, opts: { config: string; json?: boolean; field?: string; at?: string; all?: boolean }) => {
      const at = opts.at === undefined ? undefined : new Date(opts.at);
      if (at && Number.isNaN(at.getTime())) throw optionError(`--at ${opts.at}: not a time`, 'give an ISO 8601 time such as 2026-11-23T17:14:34Z');
      const config = loadFlowFile(opts.config);
      const target = table.includes('.') ? table : `public.${table}`;
      const tables = config.tables.map((t) => targetName(t.table));
      if (!tables.includes(target)) {
        throw optionError(`${target} is not a destination table of flow ${config.flow}: it has no story there`, `name one of ${tables.join(', ')}`);
      }
      const sink = openSink(config.destinationUrl, { name: `trustsync:${config.flow}:explain`, connections: 1, settings: config.destinationSettings });
      try {
        const x = await sink.explain(target, key, { at, field: opts.field, all: opts.all });
        process.stdout.write(opts.json ? `${JSON.stringify(x, null, 2)}\n` : `${formatExplanation(x)}\n`);
      } finally {
        await sink.close();
      }
    });
}
