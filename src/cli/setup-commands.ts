import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { loadFlowFile } from '../flow/config.js';
import { initFlow } from '../flow/init-flow.js';
import { redactUrl } from '../flow/run-flow.js';
import { checkFlowOnline } from '../flow/validate-online.js';
import { parseTableName } from '../model/table.js';
import { openSourceDatabase } from '../sink/kinds.js';
import { stackEndpoints, stackSettings } from '../stack/settings.js';
import { optionError, progress, table } from './output.js';

/** `trustsync validate`: the flow file checked offline, and with --online everything it names reached. */
export function validateCommand(): Command {
  return new Command('validate')
    .description('check a flow file; with --online, reach its brokers, topics, registry and databases, and the source’s readiness for capture')
    .requiredOption('--config <file>', 'the flow file (YAML or JSON)')
    .option('--online', 'reach every server the flow names, consuming and writing nothing')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string; online?: boolean; json?: boolean }) => {
      const config = loadFlowFile(opts.config);
      const summary = `flow ${config.flow}: ${config.tables.length} table(s) from ${config.kafka.brokers.join(', ')} into ${redactUrl(config.destinationUrl)}`;
      if (!opts.online) {
        if (opts.json) process.stdout.write(`${JSON.stringify({ flow: config.flow, valid: true, checks: [] })}\n`);
        else process.stdout.write(`${opts.config} is valid: ${summary}\n`);
        return;
      }
      const checks = await checkFlowOnline(config);
      const failed = checks.filter((c) => !c.ok);
      if (opts.json) process.stdout.write(`${JSON.stringify({ flow: config.flow, valid: failed.length === 0, checks })}\n`);
      else {
        process.stdout.write(
          `${table([['CHECK', 'FIELD', 'FOUND', 'FIX'], ...checks.map((c) => [c.ok ? 'ok' : 'FAIL', c.what, c.detail, c.ok ? '' : (c.fix ?? '')])])}\n`,
        );
        process.stdout.write(failed.length ? `${failed.length} of ${checks.length} checks failed\n` : `every check passed: ${summary}\n`);
      }
      // A check that failed is a finding (exit 1), as drift or lag is.
      if (failed.length) process.exitCode = 1;
    });
}

/** `trustsync init`: a flow file and a Debezium connector for existing source tables. */
export function initCommand(): Command {
  return new Command('init')
    .description('write a flow file and a Debezium connector for existing PostgreSQL tables, with what they need first')
    .requiredOption('--source <url>', 'the source database, postgres://user@host:port/database')
    .requiredOption('--tables <list>', 'the tables to capture, schema.table, comma-separated')
    .requiredOption('--name <name>', 'the flow: names its group, topics, connector, slot and DLQ')
    .option('--destination <url>', 'where the flow writes (default: the local stack’s trustsync_dest)')
    .option('--destination-schema <schema>', 'the schema the tables are written into (default: each table’s own)')
    .option('--brokers <list>', 'bootstrap brokers, comma-separated (default: the local stack)')
    .option('--out <dir>', 'where the two files go', '.')
    .action(async (opts: { source: string; tables: string; name: string; destination?: string; destinationSchema?: string; brokers?: string; out: string }) => {
      if (!/^[A-Za-z0-9_-]+$/.test(opts.name)) throw optionError(`--name ${opts.name}: letters, digits, "_" and "-" only`, 'for example --name shop');
      const tables = opts.tables.split(',').map((t) => {
        if (!/^[^.]+\.[^.]+$/.test(t.trim())) throw optionError(`--tables: ${t} is not schema.table`, 'for example --tables public.customers,public.orders');
        return parseTableName(t.trim());
      });
      const endpoints = stackEndpoints(stackSettings());
      const source = openSourceDatabase(opts.source, { name: 'trustsync:init', connections: 1, onConnectionLost: () => undefined });
      let readiness;
      try {
        if (!source.captureReadiness) throw optionError(`--source: a ${source.kind} source cannot be read for init yet`, 'use a postgres:// source');
        readiness = await source.captureReadiness(tables);
      } finally {
        await source.close();
      }
      const result = initFlow(readiness, {
        name: opts.name,
        sourceUrl: opts.source,
        brokers: opts.brokers ? opts.brokers.split(',') : endpoints.kafkaBrokers,
        destinationUrl: opts.destination ?? endpoints.postgresUrl('trustsync_dest'),
        destinationSchema: opts.destinationSchema,
      });
      for (const line of result.advice) progress(`note: ${line}`);
      if (result.blocking.length) {
        for (const line of result.blocking) progress(`trustsync: ${line}`);
        progress('nothing written: fix the above at the source, then run init again');
        process.exitCode = 1;
        return;
      }
      mkdirSync(opts.out, { recursive: true });
      const flowFile = join(opts.out, `${opts.name}.flow.yaml`);
      const connectorFile = join(opts.out, `${opts.name}.connector.json`);
      writeFileSync(flowFile, result.flow);
      writeFileSync(connectorFile, `${JSON.stringify(result.connector, null, 2)}\n`);
      process.stdout.write(
        `wrote ${flowFile} and ${connectorFile}\nnext: trustsync connectors apply --dir ${connectorFile} && trustsync validate --config ${flowFile} --online && trustsync run --config ${flowFile}\n`,
      );
    });
}
