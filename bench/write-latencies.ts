/**
 * The bench's consumer scripts report their per-write latencies the same way: on SIGTERM, after
 * `close`, one JSON line (writes, p50 and p99 in ms), and exit.
 */
export function reportLatenciesOnSigterm(latencies: number[], close: () => Promise<unknown>): void {
  process.once('SIGTERM', async () => {
    await close().catch(() => undefined);
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null;
    process.stdout.write(`${JSON.stringify({ writes: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99) })}\n`);
    process.exit(0);
  });
}
