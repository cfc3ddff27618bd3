import type pg from 'pg';
import type { CrmApi } from '../../src/demo/crm-api.js';
import { apiDifferences } from '../../src/demo/api-compare.js';
import { waitFor } from './wait.js';

/** Waits until the API holds exactly the source's records (but the fields it keeps); says what still differs if it never does. */
export async function waitForApiConvergence(
  source: pg.Client,
  schema: string,
  api: CrmApi,
  timeoutMs = 120_000,
  kept: Readonly<Record<string, readonly string[]>> = {},
): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(async () => (last = await apiDifferences(source, schema, api, kept)).length === 0, 'the API to equal the source', timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${last.length} differences, e.g.\n${last.slice(0, 10).join('\n')}`);
  }
}
