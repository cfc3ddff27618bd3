/**
 * One lane per partition, so that the destination writes a partition's batch while Kafka fetches
 * the next: kafkajs fetches again only once every batch of its last fetch is handled, and a batch
 * handled to the end left PostgreSQL idle during each fetch and trustsync idle during each write.
 *
 * `handOff` waits for the partition's batch in hand, starts the next in its lane and returns
 * without waiting for it: a partition's batches never overlap and keep their order, and at most two
 * are held (one written, one waiting). The work handles its own expected failures (writes, commits);
 * anything else it throws is reported at once to `onFailure` (the flow stops on it) and thrown by
 * that lane's next hand-off, never another partition's. `drain` waits for every batch in hand.
 */
export class PartitionLanes {
  private readonly inHand = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, unknown>();

  constructor(private readonly onFailure: (err: unknown, lane: string) => void = () => undefined) {}

  async handOff(lane: string, work: () => Promise<void>): Promise<void> {
    await this.inHand.get(lane);
    if (this.failures.has(lane)) {
      const err = this.failures.get(lane);
      this.failures.delete(lane);
      throw err;
    }
    const running = work().catch((err: unknown) => {
      this.failures.set(lane, err);
      this.onFailure(err, lane);
    });
    this.inHand.set(lane, running);
    void running.then(() => {
      if (this.inHand.get(lane) === running) this.inHand.delete(lane);
    });
  }

  async drain(): Promise<void> {
    await Promise.all(this.inHand.values());
  }
}
