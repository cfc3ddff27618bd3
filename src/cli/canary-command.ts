import { Command } from 'commander';
import { optionError } from './output.js';
import { loadFlowFile } from '../flow/config.js';
import { runCanary, summarizeCanary } from '../observe/canary.js';

export function canaryCommand(): Command {
  return new Command('canary')
    .description('send synthetic records through a running flow (source → Debezium → trustsync → destination) and time their arrival')
    .requiredOption('--config <file>', 'the flow file (with canary: and source.database)')
    .option('--count <n>', 'canary records to send', '5')
    .option('--timeout <seconds>', 'how long to wait for them', '60')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string; count: string; timeout: string; json?: boolean }) => {
      const count = Number(opts.count);
      const timeout = Number(opts.timeout);
      if (!Number.isInteger(count) || count < 1) throw optionError(`--count ${opts.count}: not a whole number ≥ 1`, 'for example --count 10');
      if (!(timeout > 0)) throw optionError(`--timeout ${opts.timeout}: not a number of seconds > 0`, 'for example --timeout 60');
      const config = loadFlowFile(opts.config);
      if (!config.canary)
        throw optionError(`${opts.config} has no canary: section`, 'add canary: { sourceTable: schema.table, table: schema.table } to the flow file');
      const r = await runCanary(config, count, timeout * 1000);
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${summarizeCanary(r)}\n`);
      process.exitCode = r.intact === r.sent ? 0 : 1;
    });
}
