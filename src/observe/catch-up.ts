/** Behind by more than this many records, a flow tells its progress: a backlog, not the usual in-flight batch. */
export const FAR_BEHIND_RECORDS = 1000;

/** What a flow tells of its backlog at one lag sample. */
export type CatchUpNews =
  { state: 'catching-up'; behind: number; perSecond: number | undefined; secondsLeft: number | undefined } | { state: 'caught-up'; seconds: number };

/**
 * Watches the records a flow's partitions are behind, sample by sample: while far behind (an
 * outage's backlog, a replay), the rate the backlog shrinks at and the time left at that rate;
 * once back within reach, how long it took. The rate is the backlog's own change, so it already
 * counts what the source keeps writing meanwhile.
 */
export class CatchUpWatch {
  private last: { behind: number; at: number } | undefined;
  private since: number | undefined;

  constructor(private readonly threshold = FAR_BEHIND_RECORDS) {}

  sample(behind: number, atMs: number): CatchUpNews | undefined {
    const last = this.last;
    this.last = { behind, at: atMs };
    if (behind > this.threshold) {
      this.since ??= atMs;
      const seconds = last ? (atMs - last.at) / 1000 : 0;
      const perSecond = last && seconds > 0 ? (last.behind - behind) / seconds : undefined;
      return { state: 'catching-up', behind, perSecond, secondsLeft: perSecond !== undefined && perSecond > 0 ? behind / perSecond : undefined };
    }
    if (this.since === undefined) return undefined;
    const seconds = (atMs - this.since) / 1000;
    this.since = undefined;
    return { state: 'caught-up', seconds };
  }
}
