/**
 * Version vectors: per system, the newest of that system's own source positions a record reflects.
 * Two vectors tell whether one change saw the other; clocks never enter into it.
 */
export type VersionVector = Readonly<Record<string, bigint>>;

export type VectorOrder = 'equal' | 'newer' | 'older' | 'concurrent';

/** How `a` stands to `b`: newer when it has seen all of b and more, concurrent when each has seen something the other has not. */
export function compareVersionVectors(a: VersionVector, b: VersionVector): VectorOrder {
  let ahead = false;
  let behind = false;
  for (const system of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[system] ?? 0n;
    const y = b[system] ?? 0n;
    if (x > y) ahead = true;
    else if (x < y) behind = true;
  }
  if (ahead && behind) return 'concurrent';
  return ahead ? 'newer' : behind ? 'older' : 'equal';
}

/** Everything either vector has seen. */
export function mergeVersionVectors(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, bigint> = { ...a };
  for (const [system, p] of Object.entries(b)) if ((out[system] ?? 0n) < p) out[system] = p;
  return out;
}

/** Vectors as stored (JSON has no bigint): positions as decimal strings. */
export function vectorToJson(v: VersionVector): Record<string, string> {
  return Object.fromEntries(Object.entries(v).map(([s, p]) => [s, p.toString()]));
}

export function vectorFromJson(v: Record<string, string> | null | undefined): VersionVector {
  return Object.fromEntries(Object.entries(v ?? {}).map(([s, p]) => [s, BigInt(p)]));
}
