import { stackSettings } from '../../src/stack/settings.js';
import { stackDown, stackStatus, stackUp } from '../../src/stack/stack.js';

/**
 * Reuses a running local stack, or starts one (and stops it again afterwards).
 * TRUSTSYNC_KEEP_STACK=1 keeps a stack this run started, for the next run.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const settings = stackSettings();
  const log = (line: string) => process.stderr.write(`[stack] ${line}\n`);
  const before = await stackStatus(settings);
  if (before.healthy) {
    log('reusing the running stack');
    return async () => undefined;
  }
  const after = await stackUp(settings, log);
  if (!after.healthy) {
    throw new Error(`the local stack is not healthy: ${JSON.stringify(after.components.filter((c) => c.state !== 'up'))}`);
  }
  return async () => {
    if (!process.env.TRUSTSYNC_KEEP_STACK) await stackDown(settings, false, log);
  };
}
