import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import pino from 'pino';
import { validateFlow } from '../../src/flow/config.js';
import { FlowRunner } from '../../src/flow/run-flow.js';
import { stackStatus } from '../../src/stack/stack.js';
import { settings, uniqueName } from '../support/capture.js';
import { flowDocument } from '../support/flow.js';

/** The kernel's listening TCP sockets (state 0A), by socket inode: address and port. */
function listeningSockets(): Map<string, { address: string; port: number }> {
  const found = new Map<string, { address: string; port: number }>();
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A') continue;
      const [hex, port] = f[1]!.split(':');
      // The kernel writes each 32-bit word of the address in host (little-endian) order.
      const words = hex!.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
      const address = v6
        ? words.join('').match(/.{4}/g)!.join(':')
        : words[0]!
            .match(/../g)!
            .map((b) => parseInt(b, 16))
            .join('.');
      found.set(f[9]!, { address, port: parseInt(port!, 16) });
    }
  }
  return found;
}

/** A process and its descendants. */
function processTree(pid: number): number[] {
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === pid;
      } catch {
        return false;
      }
    });
  return [pid, ...children.flatMap((d) => processTree(Number(d)))];
}

function socketInodes(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        return target.startsWith('socket:[') ? [target.slice(8, -1)] : [];
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

/** IPv4 127.0.0.0/8, IPv6 ::1, or 127.x mapped into IPv6. */
const isLoopback = (address: string) =>
  address.startsWith('127.') || address === '0000:0000:0000:0000:0000:0000:0000:0001' || /^0000:0000:0000:0000:0000:ffff:7f/i.test(address);

/** Every server trustsync starts listens on loopback only, as the kernel sees it, not as its config says. */
describe('listening sockets', () => {
  it('every process of the local stack listens on loopback only, on the ports the stack names', async () => {
    const status = await stackStatus(settings);
    const listening = listeningSockets();
    const seen: string[] = [];
    for (const c of status.components) {
      expect(c.pid, `${c.name} is running`).toBeGreaterThan(0);
      for (const pid of processTree(c.pid!)) {
        for (const inode of socketInodes(pid)) {
          const s = listening.get(inode);
          if (!s) continue;
          seen.push(`${c.name}:${s.port}`);
          expect(isLoopback(s.address), `${c.name} listens on ${s.address}:${s.port}`).toBe(true);
        }
      }
      expect(seen, `${c.name} listens on its port`).toContain(`${c.name}:${c.port}`);
    }
  });

  it("a flow's metrics server listens on loopback only", async () => {
    const topic = uniqueName('loopback');
    const runner = new FlowRunner(
      validateFlow({ ...flowDocument({ name: topic, topics: [{ topic, table: `${topic}.t` }] }), metrics: { port: 0 } }, 'flow.yaml'),
      pino({ level: 'silent' }),
    );
    // The metrics server starts first; the flow then waits for its topic, which never comes.
    const starting = runner.start().catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (!runner.metricsAddress && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const port = Number(new URL(runner.metricsAddress!).port);
    const mine = socketInodes(process.pid)
      .map((inode) => listeningSockets().get(inode))
      .filter((s) => s?.port === port);
    await runner.stop();
    await starting;
    expect(mine).toHaveLength(1);
    expect(isLoopback(mine[0]!.address)).toBe(true);
  });
});
