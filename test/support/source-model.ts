import fc from 'fast-check';
import { UNAVAILABLE_VALUE, type ChangeEvent } from '../../src/model/change.js';

/*
 * An independent model of a source table (id, v, notes): statements run against it give the rows
 * it holds and the change events Debezium would capture, TOAST placeholders included. Sink tests
 * deliver those events in any order and compare the destination with the model's rows.
 */

export type SourceRow = { v: string; notes: string | null };

/** What a statement does at the source; the model decides which are possible. */
export interface Statement {
  key: number;
  kind: 'write' | 'delete';
  v: string;
  /** An update that leaves notes alone: Debezium sends the placeholder when the value was TOASTed. */
  keepNotes: boolean;
  toasted: boolean;
  notes: string | null;
  /** Ends the transaction after this statement (several statements share one commit). */
  commit: boolean;
}

export const sourceStatement = fc.record({
  key: fc.integer({ min: 1, max: 4 }),
  kind: fc.constantFrom<Statement['kind']>('write', 'write', 'write', 'delete'),
  v: fc.string({ maxLength: 4 }),
  keepNotes: fc.boolean(),
  toasted: fc.boolean(),
  notes: fc.option(fc.string({ minLength: 1, maxLength: 6 }), { nil: null }),
  commit: fc.boolean(),
});

/**
 * Runs the statements against the model of the source, and returns the change events Debezium
 * would capture (in commit order) and the source's rows at the end.
 */
export function captureStatements(statements: readonly Statement[], topic: string): { events: ChangeEvent[]; source: Map<number, SourceRow> } {
  const source = new Map<number, SourceRow>();
  const events: ChangeEvent[] = [];
  let commitLsn = 1000n;
  let lsn = 1000n;
  for (const s of statements) {
    lsn += 8n;
    const was = source.get(s.key);
    const position = { snapshot: false, commitLsn, lsn };
    const base = {
      kind: 'change' as const,
      entity: 'src.docs',
      key: { id: s.key },
      keyText: String(s.key),
      txId: String(commitLsn),
      sourceTsMs: null,
      sourceTsUs: null,
      captureTsMs: null,
      fields: null,
    };
    const origin = { topic, partition: 0, offset: String(events.length) };
    if (s.kind === 'delete') {
      if (!was) continue;
      source.delete(s.key);
      events.push({ ...base, op: 'd', before: { id: s.key }, after: null, position, origin });
    } else if (!was) {
      source.set(s.key, { v: s.v, notes: s.notes });
      events.push({ ...base, op: 'c', before: null, after: { id: s.key, v: s.v, notes: s.notes }, position, origin });
    } else {
      const notes = s.keepNotes ? was.notes : s.notes;
      source.set(s.key, { v: s.v, notes });
      // Only a non-null value unchanged by the update is left out of the event (pgoutput, REPLICA IDENTITY DEFAULT).
      const sent = s.keepNotes && s.toasted && notes !== null ? UNAVAILABLE_VALUE : notes;
      events.push({ ...base, op: 'u', before: null, after: { id: s.key, v: s.v, notes: sent }, position, origin });
    }
    if (s.commit) {
      commitLsn = lsn + 1n;
      lsn = commitLsn;
    }
  }
  return { events, source };
}

/** The model's events as Kafka might deliver them: shuffled across partitions, some repeated, cut into arbitrary batches. */
export function shuffledDeliveries(topic: string, statements = fc.array(sourceStatement, { minLength: 1, maxLength: 30 })) {
  return statements.chain((list) => {
    const { events, source } = captureStatements(list, topic);
    return fc.record({
      source: fc.constant(source),
      delivered: fc
        .tuple(
          fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }),
          fc.array(fc.constantFrom(...(events.length ? events : [null])), { maxLength: 10 }),
        )
        .chain(([once, again]) => {
          const all = [...once, ...again.filter((e): e is ChangeEvent => e !== null)];
          return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length });
        }),
      batchSizes: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 20 }),
    });
  });
}
