/**
 * Three-way merges for values that can be combined: JSON objects key by key, and set-like arrays
 * element by element. `base` is the value both sides last agreed on. The owner's side comes first
 * in the result, so both directions of a sync compute the same value.
 */
export type MergeResult = { merged: true; value: unknown } | { merged: false; why: string };

const canon = (v: unknown): string =>
  JSON.stringify(v, (_, x) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x,
  );

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function mergeSets(base: unknown[], owner: unknown[], other: unknown[]): unknown[] {
  const inBase = new Set(base.map(canon));
  const inOwner = new Set(owner.map(canon));
  const inOther = new Set(other.map(canon));
  const out: unknown[] = [];
  const seen = new Set<string>();
  // Kept: in both sides, or added (absent from base) by either; removed by either side: gone.
  for (const [side, present] of [
    [owner, inOther],
    [other, inOwner],
  ] as const) {
    for (const x of side) {
      const k = canon(x);
      if (seen.has(k) || (inBase.has(k) && !present.has(k))) continue;
      seen.add(k);
      out.push(x);
    }
  }
  return out;
}

function mergeObjects(base: Record<string, unknown>, owner: Record<string, unknown>, other: Record<string, unknown>): MergeResult {
  const out: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(owner), ...Object.keys(other), ...Object.keys(base)])) {
    const [b, o, t] = [canon(base[key]), canon(owner[key]), canon(other[key])];
    if (o === t || t === b) {
      if (key in owner) out[key] = owner[key];
    } else if (o === b) {
      if (key in other) out[key] = other[key];
    } else {
      return { merged: false, why: `both sides changed key ${JSON.stringify(key)} differently` };
    }
  }
  return { merged: true, value: out };
}

export function mergeValues(base: unknown, owner: unknown, other: unknown): MergeResult {
  if (Array.isArray(owner) && Array.isArray(other) && (base === null || base === undefined || Array.isArray(base))) {
    return { merged: true, value: mergeSets((base as unknown[] | null) ?? [], owner, other) };
  }
  if (isObject(owner) && isObject(other) && (base === null || base === undefined || isObject(base))) {
    return mergeObjects((base as Record<string, unknown> | null) ?? {}, owner, other);
  }
  return { merged: false, why: 'only JSON objects and set-like arrays can be merged' };
}
