import type { ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { runWorkload } from '../../src/demo/workload.js';
import { pgClient } from './capture.js';

/** Resolves with how a child process ended. */
export const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));

/**
 * While the demo workload keeps writing `schema` at the source, starts `trustsync run` and kills it
 * with SIGKILL, `rounds` times: each time once it has written (`writes` grew) and at a random
 * moment after, so the kill lands in the middle of things.
 */
export async function killMidStream(schema: string, rounds: number, start: () => ChildProcess, writes: () => Promise<number>): Promise<void> {
  const writer = await pgClient('trustsync_source');
  let writing = true;
  const background = (async () => {
    let seed = 500;
    while (writing) await runWorkload(writer, schema, 25, seed++);
  })();
  try {
    for (let round = 0; round < rounds; round++) {
      const before = await writes();
      const child = start();
      const deadline = Date.now() + 60_000;
      while ((await writes()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await writes()).toBeGreaterThan(before);
      await new Promise((r) => setTimeout(r, Math.random() * 1000));
      const exit = exited(child);
      child.kill('SIGKILL');
      expect((await exit).signal).toBe('SIGKILL');
    }
  } finally {
    writing = false;
    await background;
    await writer.end();
  }
}
