import type { Logger } from 'pino';
import { TrustsyncError } from '../model/errors.js';
import { fieldPolicy } from '../policy/policy.js';
import { validate } from '../policy/validators.js';
import type { ReviewItem } from '../sink/governance.js';
import { openSink } from '../sink/kinds.js';
import type { Sink } from '../sink/sink.js';
import type { FlowConfig } from './config.js';
import { prepareGovernance, type GovernedTables } from './governance.js';

/** A review command's error: what is wrong and what to do, never retried. */
export class ReviewError extends TrustsyncError {
  override name = 'ReviewError';
  constructor(message: string, fix: string) {
    super('review', message, false, { fix, family: 'config' });
  }
}

export type Take = { take: 'local' } | { take: 'external' } | { take: 'value'; value: unknown };

/** `local`, `external` or `value=<JSON>`, as the command line gives it. */
export function parseTake(text: string): Take {
  if (text === 'local' || text === 'external') return { take: text };
  if (text.startsWith('value=')) {
    try {
      return { take: 'value', value: JSON.parse(text.slice('value='.length)) };
    } catch (err) {
      throw new ReviewError(
        `--take ${text}: the value is not JSON (${(err as Error).message})`,
        'quote it as JSON, e.g. --take \'value="closed"\' or --take value=42',
      );
    }
  }
  throw new ReviewError(
    `--take ${text}: not a choice`,
    'use --take local (keep the value both systems hold), --take external (the proposed value) or --take value=<JSON>',
  );
}

interface Destination {
  config: FlowConfig;
  sink: Sink;
  governed?: GovernedTables;
}

/** Opens each flow's destination (the databases a sync writes into) for its review queue. */
async function openDestinations<T>(configs: readonly FlowConfig[], log: Logger, work: (ds: Required<Destination>[]) => Promise<T>): Promise<T> {
  const opened: Destination[] = [];
  try {
    for (const config of configs) {
      const d: Destination = { config, sink: openSink(config.destinationUrl, { name: `trustsync:${config.flow}:review`, connections: 2 }) };
      opened.push(d);
      await d.sink.prepare();
      d.governed = await prepareGovernance(config, d.sink, log);
      if (!d.governed)
        throw new ReviewError(
          `flow ${config.flow} has no table under a policy, so no review queue`,
          'name the flow files of a sync whose tables have policy: <entity>',
        );
    }
    return await work(opened as Required<Destination>[]);
  } finally {
    for (const d of opened) {
      await d.governed?.sink.close();
      await d.sink.close();
    }
  }
}

/**
 * Every review item of a sync, once: each direction queues the conflict it meets in its own
 * destination, under the same id. An item counts as resolved when any side has resolved it.
 */
export async function listReviews(configs: readonly FlowConfig[], all: boolean, log: Logger): Promise<ReviewItem[]> {
  return openDestinations(configs, log, async (ds) => collect(ds, all));
}

async function collect(ds: Required<Destination>[], all: boolean): Promise<ReviewItem[]> {
  const byId = new Map<string, ReviewItem>();
  for (const d of ds) {
    for (const item of await d.governed.sink.listReviews(d.governed.targets, true)) {
      const seen = byId.get(item.id);
      if (!seen || (seen.status === 'open' && item.status === 'resolved')) byId.set(item.id, item);
    }
  }
  return [...byId.values()].filter((i) => all || i.status === 'open').sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
}

export interface ReviewOutcome {
  flow: string;
  target: string;
  wrote: boolean;
  detail: string;
}

/**
 * Resolves a review item in every system of the sync: the chosen value is validated by the field's
 * policy, then written into each destination with its write record, so the captured changes of these
 * writes are recognised as trustsync's own and not sent back.
 */
export async function resolveReview(
  configs: readonly FlowConfig[],
  id: string,
  take: Take,
  log: Logger,
): Promise<{ item: ReviewItem; value: unknown; outcomes: ReviewOutcome[] }> {
  return openDestinations(configs, log, async (ds) => {
    const item = (await collect(ds, true)).find((i) => i.id === id);
    if (!item)
      throw new ReviewError(
        `no review item ${id} in ${ds.map((d) => d.config.flow).join(', ')}`,
        'see `trustsync review list` for the open items (give every flow file of the sync)',
      );
    if (item.status === 'resolved') throw new ReviewError(`review item ${id} is already resolved`, 'see `trustsync review list --all`');
    const value = take.take === 'local' ? item.keptValue : take.take === 'external' ? item.proposedValue : take.value;
    const outcomes: ReviewOutcome[] = [];
    for (const d of ds) {
      const mapping = d.config.tables.find((t) => t.policy === item.entity);
      const governance = mapping && d.governed.byTopic.get(mapping.topic);
      if (!mapping || !governance) continue;
      if (item.field !== '*') {
        const problem = validate(fieldPolicy(governance.policy, item.field).validators, value, {
          field: item.field,
          previous: item.keptValue,
          system: 'review',
        });
        if (problem) throw new ReviewError(`${JSON.stringify(value)} for ${item.field}: ${problem}`, 'choose a value the field policy accepts');
      }
      const r = await d.governed.sink.resolveReview(mapping, governance, item, value, take.take);
      outcomes.push({ flow: d.config.flow, target: `${mapping.table.schema}.${mapping.table.table}`, ...r });
    }
    if (outcomes.length === 0)
      throw new ReviewError(`none of the flows has a table under policy ${item.entity}`, 'give the flow files of the sync the item belongs to');
    return { item, value, outcomes };
  });
}
