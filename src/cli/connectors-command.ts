import { Command } from 'commander';
import { join } from 'node:path';
import { PACKAGE_DIR, stackEndpoints, stackSettings } from '../stack/settings.js';
import { ConnectClient, readConnectorDir, stackConnectorVars, type ConnectorConfig } from '../stack/connectors.js';
import { checkCapture, describeGap, resnapshot, waitSourceRunning, type CaptureCheck } from '../stack/postgres-source.js';
import { StackError } from '../model/errors.js';
import { progress, table } from './output.js';

interface ConnectorsOptions {
  dir: string;
  name?: string;
}

const waitOption = ['--wait <seconds>', 'how long to wait for the connector and its tasks to run', '90'] as const;
const waitMs = (opts: { wait: string }) => {
  const seconds = Number(opts.wait);
  if (!(seconds > 0)) throw new StackError(`--wait ${opts.wait}: give a number of seconds above 0.`, 'for example --wait 120.');
  return seconds * 1000;
};

const dirOption = [
  '--dir <path>',
  'folder (or one file) of connector JSON; ${VAR} and ${VAR:-default} come from the environment',
  join(PACKAGE_DIR, 'connectors'),
] as const;

/** The connector files named by --dir (and --name), with the local stack's values filled in, and a Connect client. */
function connectorsOf(opts: ConnectorsOptions): { configs: ConnectorConfig[]; client: ConnectClient } {
  const s = stackSettings();
  const all = readConnectorDir(opts.dir, { ...stackConnectorVars(s), ...process.env });
  const configs = opts.name ? all.filter((c) => c.name === opts.name) : all;
  if (configs.length === 0) throw new StackError(`no connector named ${opts.name} in ${opts.dir}.`, `name one of: ${all.map((c) => c.name).join(', ')}.`);
  return { configs, client: new ConnectClient(stackEndpoints(s).connectUrl) };
}

/** A capture gap is a finding, like drift: said with its fix, and exit 1. */
function reportGaps(gaps: CaptureCheck[], opts: ConnectorsOptions): void {
  const dir = opts.dir === dirOption[2] ? '' : ` --dir ${opts.dir}`;
  progress(`trustsync: capture gap: ${gaps.map((c) => `${c.connector}: ${describeGap(c.gap!)}`).join('; ')}.`);
  progress(
    `  fix: take the source again with \`trustsync connectors resnapshot${dir} --name <connector>\`; once the flow has caught up, \`trustsync reconcile <flow> --repair\` removes the rows deleted during the gap (a snapshot holds no deletes).`,
  );
  process.exitCode = 1;
}

export function connectorsCommand(): Command {
  const connectors = new Command('connectors').description('Kafka Connect connectors (Debezium sources) from JSON files');
  connectors
    .command('apply')
    .description('create or update each connector (idempotent) and wait until it and its tasks run')
    .option(...dirOption)
    .option(...waitOption)
    .action(async (opts: ConnectorsOptions & { wait: string }) => {
      const { configs, client } = connectorsOf(opts);
      const wait = waitMs(opts);
      for (const c of configs) {
        const outcome = await client.apply(c);
        await waitSourceRunning(client, c, wait);
        progress(`${c.name}: ${outcome}, RUNNING`);
      }
    });
  connectors
    .command('status')
    .description("each connector's state, and whether its source can resume where it stopped (exit 1 on a capture gap)")
    .option(...dirOption)
    .option('--name <connector>', 'only this connector')
    .option('--json', 'print the checks as JSON')
    .action(async (opts: ConnectorsOptions & { json?: boolean }) => {
      const { configs, client } = connectorsOf(opts);
      const checks: CaptureCheck[] = [];
      for (const c of configs) checks.push(await checkCapture(client, c));
      if (opts.json) process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
      else {
        const rows = checks.map((c) => [c.connector, c.state, c.tasks.join(',') || '-', c.gap ? `GAP: ${describeGap(c.gap)}` : 'ok']);
        process.stdout.write(`${table([['CONNECTOR', 'STATE', 'TASKS', 'CAPTURE'], ...rows])}\n`);
      }
      const gaps = checks.filter((c) => c.gap);
      if (gaps.length) reportGaps(gaps, opts);
    });
  connectors
    .command('resnapshot')
    .description('capture a source again from a fresh snapshot after a capture gap (the connector re-created without its offset, the unusable slot dropped)')
    .option(...dirOption)
    .requiredOption('--name <connector>', 'the connector to take again')
    .option('--force', 'take the snapshot even without a gap')
    .option(...waitOption)
    .action(async (opts: ConnectorsOptions & { force?: boolean; wait: string }) => {
      const { configs, client } = connectorsOf(opts);
      const wait = waitMs(opts);
      const c = configs[0]!;
      const check = await checkCapture(client, c);
      if (!check.gap && !opts.force) {
        progress(`${c.name}: no capture gap; nothing done (--force takes a snapshot anyway).`);
        return;
      }
      if (check.gap) progress(`${c.name}: ${describeGap(check.gap)}.`);
      await resnapshot(client, c, wait);
      progress(`${c.name}: re-created without its offset, snapshot under way, RUNNING.`);
      progress('next: once the flow has caught up, `trustsync reconcile <flow> --repair` removes the rows deleted during the gap.');
    });
  return connectors;
}
