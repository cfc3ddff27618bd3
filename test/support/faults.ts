import { componentPid } from '../../src/stack/component.js';
import { connect as connectComponent } from '../../src/stack/connect.js';
import { kafka as kafkaComponent } from '../../src/stack/kafka.js';
import { stackUp } from '../../src/stack/stack.js';
import { settings } from './capture.js';

/** One vocabulary for breaking the local stack on purpose, and for bringing it back. */
function pidOf(component: typeof kafkaComponent): number {
  const pid = componentPid(settings, component);
  if (pid === undefined) throw new Error(`${component.name} is not running`);
  return pid;
}

/** SIGKILL Kafka Connect (and so Debezium's task) mid-stream. */
export function killConnect(): void {
  process.kill(pidOf(connectComponent), 'SIGKILL');
}

/** Freezes the broker (SIGSTOP): connections hang rather than fail. */
export function pauseBroker(): void {
  process.kill(pidOf(kafkaComponent), 'SIGSTOP');
}

export function resumeBroker(): void {
  process.kill(pidOf(kafkaComponent), 'SIGCONT');
}

/** Starts whatever is down again and waits until the whole stack is healthy. */
export async function restoreStack(): Promise<void> {
  const status = await stackUp(settings, () => undefined);
  if (!status.healthy) throw new Error(`the stack did not recover: ${JSON.stringify(status.components.filter((c) => c.state !== 'up'))}`);
}
