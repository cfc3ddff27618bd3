import { Kafka, logLevel } from 'kafkajs';
import { checkKafkaCredentials, kafkaOptions } from '../kafka/connection.js';
import { parseTableName, targetName } from '../model/table.js';
import { nearMatches } from '../shared/near-match.js';
import { openSink, openSourceDatabase } from '../sink/kinds.js';
import type { FlowConfig } from './config.js';
import { captureProblems } from './init-flow.js';

/** One thing a flow needs before it runs, as found: what, whether it holds, and the fix when not. */
export interface Check {
  what: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

const message = (err: unknown) => (err as Error).message.split('\n')[0]!;
const fixOf = (err: unknown) => (err as { fix?: string }).fix;

/**
 * Reaches everything the flow file names, as `trustsync run` would, without consuming or writing:
 * the brokers (TLS, SASL), each topic (with near matches for one that is not there), the registry,
 * the destination, and the source database's readiness for capture (log decoding, the user's
 * right to stream, each captured table's key and replica identity).
 */
export async function checkFlowOnline(config: FlowConfig): Promise<Check[]> {
  const checks: Check[] = [];
  const brokers = config.kafka.brokers.join(', ');
  const kafka = new Kafka({
    clientId: 'trustsync-validate',
    ...kafkaOptions(config.kafka),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    retry: { retries: 1 },
  });
  const admin = kafka.admin();
  try {
    await checkKafkaCredentials(config.kafka);
    await admin.connect();
    const cluster = await admin.describeCluster();
    checks.push({ what: 'source.brokers', ok: true, detail: `${brokers}: ${cluster.brokers.length} broker(s)` });
    const topics = new Set(await admin.listTopics());
    config.tables.forEach((t, i) => {
      if (topics.has(t.topic)) return void checks.push({ what: `destination.tables.${i}.topic`, ok: true, detail: `${t.topic} exists` });
      const near = nearMatches(t.topic, topics);
      checks.push({
        what: `destination.tables.${i}.topic`,
        ok: false,
        detail: `${t.topic} does not exist${near.length ? ` — did you mean ${near.join(' or ')}?` : ''}`,
        fix: near.length ? `correct the topic name` : 'start the source connector (trustsync connectors apply), or correct the topic name',
      });
    });
  } catch (err) {
    checks.push({
      what: 'source.brokers',
      ok: false,
      detail: `${brokers}: ${message(err)}`,
      fix: fixOf(err) ?? 'check source.brokers, source.tls and source.sasl',
    });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }

  if (config.registryUrl) {
    const res = await fetch(`${config.registryUrl.replace(/\/+$/, '')}/subjects`, { signal: AbortSignal.timeout(5000) }).catch(
      (err: Error & { cause?: { code?: string } }) => err,
    );
    checks.push(
      res instanceof Error || !res.ok
        ? {
            what: 'source.registryUrl',
            ok: false,
            detail: res instanceof Error ? (res.cause?.code ?? res.message) : `answered ${res.status}`,
            fix: 'check source.registryUrl: the Confluent-compatible API of the registry',
          }
        : { what: 'source.registryUrl', ok: true, detail: 'the registry answers' },
    );
  }

  const sink = openSink(config.destinationUrl, {
    name: `trustsync:${config.flow}:validate`,
    connections: 1,
    settings: config.destinationSettings,
    onConnectionLost: () => undefined,
  });
  try {
    await sink.ping();
    checks.push({ what: 'destination.url', ok: true, detail: `${sink.kind} answers` });
  } catch (err) {
    checks.push({ what: 'destination.url', ok: false, detail: message(err), fix: fixOf(err) ?? 'check destination.url' });
  } finally {
    await sink.close();
  }

  if (config.sourceDatabaseUrl) checks.push(...(await checkSourceDatabase(config)));
  return checks;
}

/** The source database's readiness for the capture of each table the flow reads. */
async function checkSourceDatabase(config: FlowConfig): Promise<Check[]> {
  const source = openSourceDatabase(config.sourceDatabaseUrl!, {
    name: `trustsync:${config.flow}:validate`,
    connections: 1,
    onConnectionLost: () => undefined,
  });
  try {
    if (!source.captureReadiness) return [];
    const readiness = await source.captureReadiness(config.tables.map((t) => parseTableName(t.sourceTable ?? '')));
    const problems = captureProblems(readiness);
    const checks: Check[] = (['logDecoding', 'replication'] as const).map((setting) => ({
      what: 'source.database',
      ok: readiness[setting].ok,
      detail: readiness[setting].detail,
      fix: problems.find((p) => p.setting === setting)?.fix,
    }));
    readiness.tables.forEach((t, i) => {
      const what = `destination.tables.${i}.sourceTable`;
      const problem = problems.find((p) => p.table === i);
      checks.push(
        problem
          ? { what, ok: false, detail: problem.problem, fix: problem.fix }
          : { what, ok: true, detail: `${targetName(t.table)}: key (${t.keyColumns.join(', ')}), replica identity ${t.replicaIdentity}` },
      );
    });
    return checks;
  } catch (err) {
    return [{ what: 'source.database', ok: false, detail: message(err), fix: fixOf(err) ?? 'check source.database' }];
  } finally {
    await source.close();
  }
}
