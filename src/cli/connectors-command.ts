import { Command } from 'commander';
import { join } from 'node:path';
import { PACKAGE_DIR, stackEndpoints, stackSettings } from '../stack/settings.js';
import { ConnectClient, readConnectorDir, stackConnectorVars } from '../stack/connectors.js';
import { progress } from './output.js';

export function connectorsCommand(): Command {
  const connectors = new Command('connectors').description('Kafka Connect connectors (Debezium sources) from JSON files');
  connectors
    .command('apply')
    .description('create or update each connector (idempotent) and wait until it and its tasks run')
    .option('--dir <path>', 'folder (or one file) of connector JSON; ${VAR} and ${VAR:-default} come from the environment', join(PACKAGE_DIR, 'connectors'))
    .action(async (opts: { dir: string }) => {
      const s = stackSettings();
      const configs = readConnectorDir(opts.dir, { ...stackConnectorVars(s), ...process.env });
      const client = new ConnectClient(stackEndpoints(s).connectUrl);
      for (const c of configs) {
        const outcome = await client.apply(c);
        await client.waitRunning(c.name);
        progress(`${c.name}: ${outcome}, RUNNING`);
      }
    });
  return connectors;
}
