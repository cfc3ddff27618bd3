import { Command } from 'commander';
import { stackSettings } from '../stack/settings.js';
import { stackDown, stackStatus, stackUp, type StackStatus } from '../stack/stack.js';
import { progress, table } from './output.js';

function printStatus(status: StackStatus, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return;
  }
  const rows = [['COMPONENT', 'STATE', 'PORT', 'VERSION', 'PID', 'DETAIL']];
  for (const c of status.components) rows.push([c.name, c.state, String(c.port), c.version, c.pid ? String(c.pid) : '-', c.detail]);
  process.stdout.write(`${table(rows)}\n\nlogs and data: ${status.stateDir}\n`);
  if (status.healthy) {
    const e = status.endpoints;
    process.stdout.write(`kafka ${e.kafka} · registry ${e.registry} · connect ${e.connect} · postgres ${e.postgres} · mariadb ${e.mariadb}\n`);
  }
}

export function stackCommand(): Command {
  const stack = new Command('stack').description(
    'the local CDC stack: Kafka (KRaft), Kafka Connect + Debezium, schema registry, PostgreSQL — no Docker needed',
  );

  stack
    .command('up')
    .description('fetch (once) and start every component; harmless when already up')
    .option('--json', 'print the resulting status as JSON')
    .action(async (opts: { json?: boolean }) => {
      const status = await stackUp(stackSettings(), progress);
      printStatus(status, Boolean(opts.json));
      if (!status.healthy) process.exitCode = 1;
    });

  stack
    .command('down')
    .description('stop the processes trustsync started (by PID)')
    .option('--purge', 'also remove their data (topics, databases, registry contents)')
    .action(async (opts: { purge?: boolean }) => {
      await stackDown(stackSettings(), Boolean(opts.purge), progress);
    });

  stack
    .command('status')
    .description('each component, its port, version and health; exits 1 if one is down')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const status = await stackStatus(stackSettings());
      printStatus(status, Boolean(opts.json));
      if (!status.healthy) process.exitCode = 1;
    });

  return stack;
}
