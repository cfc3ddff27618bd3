import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stackEndpoints, type StackSettings } from './settings.js';
import { sleep } from './processes.js';
import { StackError } from '../model/errors.js';
import { substitute } from '../shared/substitute.js';

export interface ConnectorConfig {
  name: string;
  config: Record<string, string>;
}

/** Values a connector file may use without the user exporting them: where the local stack is. */
export function stackConnectorVars(s: StackSettings): Record<string, string> {
  return {
    PG_HOST: s.host,
    PG_PORT: String(s.ports.postgres),
    PG_USER: 'postgres',
    PG_PASSWORD: 'postgres',
    REGISTRY_URL: stackEndpoints(s).registryUrl,
  };
}

export function readConnectorFile(file: string, vars: Record<string, string | undefined>): ConnectorConfig {
  const text = substitute(readFileSync(file, 'utf8'), vars, file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StackError(`${file} is not valid JSON: ${(err as Error).message}`, 'fix the file; it holds {"name": …, "config": {…}} as Kafka Connect expects.');
  }
  const c = parsed as Partial<ConnectorConfig>;
  if (typeof c.name !== 'string' || typeof c.config !== 'object' || c.config === null) {
    throw new StackError(`${file} lacks "name" or "config".`, 'write it as {"name": "<connector>", "config": {"connector.class": …}}.');
  }
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.config)) config[k] = String(v);
  return { name: c.name, config };
}

export function readConnectorDir(dirOrFile: string, vars: Record<string, string | undefined>): ConnectorConfig[] {
  const files = statSync(dirOrFile).isDirectory()
    ? readdirSync(dirOrFile)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => join(dirOrFile, f))
    : [dirOrFile];
  if (files.length === 0) throw new StackError(`no connector files (*.json) in ${dirOrFile}.`, 'point --dir at the folder holding the connector JSON files.');
  return files.map((f) => readConnectorFile(f, vars));
}

interface ConnectorStatus {
  connector: { state: string; trace?: string };
  tasks: { id: number; state: string; trace?: string }[];
}

/** A thin client of the Kafka Connect REST API. */
export class ConnectClient {
  constructor(readonly baseUrl: string) {}

  /**
   * One REST request. Connect answers 409 while its workers rebalance (a connector was just created,
   * changed or removed): that answer is asked again, for up to 30 s.
   */
  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      let res: Response;
      try {
        res = await fetch(`${this.baseUrl}${path}`, {
          method,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        throw new StackError(
          `Kafka Connect at ${this.baseUrl} did not answer (${(err as Error).message}).`,
          'start the stack with `trustsync stack up`, or check TRUSTSYNC_CONNECT_PORT.',
        );
      }
      if (res.status !== 409 || Date.now() > deadline) return res;
      await res.body?.cancel();
      await sleep(500);
    }
  }

  /** PUT …/config creates or updates: applying the same file twice changes nothing. */
  async apply(c: ConnectorConfig): Promise<'created' | 'updated'> {
    const res = await this.call('PUT', `/connectors/${encodeURIComponent(c.name)}/config`, c.config);
    if (!res.ok) {
      const text = await res.text();
      throw new StackError(
        `Kafka Connect refused connector ${c.name} (${res.status}): ${redact(text)}`,
        'correct the connector file; the message above names the offending setting.',
      );
    }
    return res.status === 201 ? 'created' : 'updated';
  }

  /** Every connector Connect runs, with its configuration. */
  async list(): Promise<ConnectorConfig[]> {
    const res = await this.call('GET', '/connectors?expand=info');
    if (!res.ok)
      throw new StackError(`listing connectors: ${res.status} ${redact(await res.text())}`, 'check that Kafka Connect is running (`trustsync stack status`).');
    const body = (await res.json()) as Record<string, { info: ConnectorConfig }>;
    return Object.values(body).map((c) => ({ name: c.info.name, config: c.info.config }));
  }

  async status(name: string): Promise<ConnectorStatus | undefined> {
    const res = await this.call('GET', `/connectors/${encodeURIComponent(name)}/status`);
    if (res.status === 404) return undefined;
    return (await res.json()) as ConnectorStatus;
  }

  /** Waits for the connector and all its tasks to run; a failure reports the task's trace. */
  async waitRunning(name: string, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no status yet';
    while (Date.now() < deadline) {
      const st = await this.status(name);
      if (st) {
        const failed = [st.connector, ...st.tasks].find((x) => x.state === 'FAILED');
        if (failed) {
          throw new StackError(
            `connector ${name} FAILED:\n${redact(failed.trace ?? '(no trace)')
              .split('\n')
              .slice(0, 25)
              .join('\n')}`,
            'fix the cause above, then `trustsync connectors apply` again (it updates in place).',
          );
        }
        last = `connector ${st.connector.state}, tasks ${st.tasks.map((t) => t.state).join(',') || 'none yet'}`;
        if (st.connector.state === 'RUNNING' && st.tasks.length > 0 && st.tasks.every((t) => t.state === 'RUNNING')) return;
      }
      await sleep(500);
    }
    throw new StackError(
      `connector ${name} was not RUNNING within ${timeoutMs / 1000}s (${last}).`,
      'read the Connect log (`trustsync stack status` shows where it is).',
    );
  }

  /** The source offsets Connect stores for a connector (KIP-875): for Debezium PostgreSQL, one holding the LSNs it resumes from. */
  async offsets(name: string): Promise<Record<string, unknown>[]> {
    const res = await this.call('GET', `/connectors/${encodeURIComponent(name)}/offsets`);
    if (res.status === 404) throw new StackError(`Kafka Connect has no connector ${name}.`, 'create it with `trustsync connectors apply`.');
    if (!res.ok)
      throw new StackError(
        `reading the offsets of connector ${name}: ${res.status} ${redact(await res.text())}`,
        'check that Kafka Connect is 3.6 or newer and running.',
      );
    const body = (await res.json()) as { offsets?: { offset?: Record<string, unknown> }[] };
    return (body.offsets ?? []).flatMap((o) => (o.offset ? [o.offset] : []));
  }

  /**
   * Deletes a connector and forgets its source offsets. Connect keeps offsets by connector name, so a
   * connector re-created under the same name would otherwise try to resume from a slot position that
   * no longer exists. Stop → reset offsets → delete (KIP-875, Connect 3.6+).
   *
   * A task that does not end within Connect's graceful stop timeout runs on unseen, and commits its
   * offsets when it does end: after the reset, which it undoes (a Debezium task waiting out its
   * restart backoff after a retriable error does exactly that). `offsetsQuietMs` keeps the connector
   * stopped that long after the reset, resetting again whenever offsets come back, so that what is
   * deleted holds none.
   */
  async remove(name: string, opts: { offsetsQuietMs?: number } = {}): Promise<void> {
    const path = `/connectors/${encodeURIComponent(name)}`;
    const stop = await this.call('PUT', `${path}/stop`);
    if (stop.status === 404) return;
    if (!stop.ok) throw new Error(`stopping connector ${name}: ${stop.status} ${await stop.text()}`);
    for (let i = 0; i < 100 && (await this.status(name))?.connector.state !== 'STOPPED'; i++) await sleep(200);
    await this.resetOffsets(name);
    const quietMs = opts.offsetsQuietMs ?? 0;
    let resets = 1;
    for (let quietSince = Date.now(); Date.now() - quietSince < quietMs;) {
      await sleep(500);
      if ((await this.offsets(name)).length === 0) continue;
      if (resets === 5) {
        throw new StackError(
          `the offsets of connector ${name} came back after ${resets} resets: a task of it still runs somewhere.`,
          'restart Kafka Connect (its workers end every task), then run the command again.',
        );
      }
      await this.resetOffsets(name);
      resets++;
      quietSince = Date.now();
    }
    const res = await this.call('DELETE', path);
    if (!res.ok && res.status !== 404) throw new Error(`deleting connector ${name}: ${res.status} ${await res.text()}`);
  }

  private async resetOffsets(name: string): Promise<void> {
    const reset = await this.call('DELETE', `/connectors/${encodeURIComponent(name)}/offsets`);
    if (!reset.ok && reset.status !== 404) throw new Error(`resetting offsets of connector ${name}: ${reset.status} ${await reset.text()}`);
  }
}

/** Connect echoes configs in errors; passwords stay out of what we print. */
function redact(text: string): string {
  return text.replace(/("?[\w.]*password"?\s*[:=]\s*"?)[^",\s}]*/gi, '$1***');
}
