/** Consumer lag of one partition at one moment: committed offset against the log end. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** null when the group has never committed on this partition. */
  committed: bigint | null;
  low: bigint;
  high: bigint;
  lag: bigint;
}

export interface LagSample {
  at: number;
  partitions: PartitionLag[];
}

export type LagStatus = 'OK' | 'WARN' | 'REWIND' | 'STALLED' | 'STOPPED' | 'ERR';

/** Who consumes a partition now, as `kafka-consumer-groups --describe` shows it. */
export interface PartitionOwner {
  consumerId: string;
  host: string;
}

export interface PartitionVerdict {
  topic: string;
  partition: number;
  status: LagStatus;
  /** The group's committed offset (CURRENT-OFFSET), null before its first commit. */
  committed: bigint | null;
  /** LOG-END-OFFSET. */
  high: bigint;
  lag: bigint;
  /** The member that owns it, or null when no member does. */
  owner: PartitionOwner | null;
  reason: string;
}

export interface GroupVerdict {
  status: LagStatus;
  reason: string;
  totalLag: bigint;
  partitions: PartitionVerdict[];
}

const SEVERITY: LagStatus[] = ['OK', 'WARN', 'REWIND', 'STALLED', 'STOPPED', 'ERR'];

/** Lag of a partition given the committed offset (none yet: everything retained is lag). */
export function partitionLag(committed: bigint | null, low: bigint, high: bigint): bigint {
  const from = committed === null || committed < low ? low : committed;
  return high > from ? high - from : 0n;
}

/**
 * Judges a group over a window of samples, in the spirit of Burrow: a partition is OK if it caught
 * up at any point in the window; REWIND if its committed offset went back (a reset, or a member
 * committing an old position); STOPPED if it is behind and no member of the group owns it (the group
 * is not running); STALLED if its committed offset never moved while it had lag; WARN if its lag grew
 * at every step; OK otherwise (consuming, keeping pace). The group takes its worst partition's
 * status; a group with no committed offsets at all is ERR. `owners` maps `topic/partition` to the
 * member that owns it (a group with members that owns none of them is judged as if running).
 */
export function evaluateLag(samples: readonly LagSample[], owners?: ReadonlyMap<string, PartitionOwner>): GroupVerdict {
  const last = samples[samples.length - 1];
  if (!last || last.partitions.length === 0)
    return { status: 'ERR', reason: 'no committed offsets: the group has not consumed anything', totalLag: 0n, partitions: [] };
  const partitions: PartitionVerdict[] = last.partitions.map((p) => {
    const history = samples
      .map((s) => s.partitions.find((x) => x.topic === p.topic && x.partition === p.partition))
      .filter((x): x is PartitionLag => x !== undefined);
    const owner = owners?.get(`${p.topic}/${p.partition}`) ?? null;
    const verdict = (status: LagStatus, reason: string): PartitionVerdict => ({
      topic: p.topic,
      partition: p.partition,
      status,
      committed: p.committed,
      high: p.high,
      lag: p.lag,
      owner,
      reason,
    });
    const rewound = history.findIndex(
      (h, i) => i > 0 && h.committed !== null && history[i - 1]!.committed !== null && h.committed < history[i - 1]!.committed!,
    );
    if (rewound > 0) return verdict('REWIND', `committed offset went back from ${history[rewound - 1]!.committed} to ${history[rewound]!.committed}`);
    if (history.some((h) => h.lag === 0n)) return verdict('OK', 'caught up');
    if (owners && !owner) return verdict('STOPPED', `${p.lag} behind and no member of the group consumes it`);
    if (history.length < 2) return verdict('OK', 'consuming (one sample: no trend yet)');
    const moved = history[history.length - 1]!.committed !== history[0]!.committed;
    if (!moved) return verdict('STALLED', `committed offset has not moved across ${history.length} samples while ${p.lag} behind`);
    const growing = history.every((h, i) => i === 0 || h.lag > history[i - 1]!.lag);
    if (growing) return verdict('WARN', `lag grew at every sample (${history[0]!.lag} → ${p.lag})`);
    return verdict('OK', 'consuming');
  });
  const worst = partitions.reduce((w, p) => (SEVERITY.indexOf(p.status) > SEVERITY.indexOf(w.status) ? p : w), partitions[0]!);
  const totalLag = partitions.reduce((n, p) => n + p.lag, 0n);
  return {
    status: worst.status,
    reason: worst.status === 'OK' ? 'every partition caught up or keeping pace' : `${worst.topic}/${worst.partition}: ${worst.reason}`,
    totalLag,
    partitions,
  };
}
