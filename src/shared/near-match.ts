/** Edits (insert, delete, replace one character) that turn a into b. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** The candidates close enough to `name` to be what was meant (a typo: a few edits for its length), nearest first. */
export function nearMatches(name: string, candidates: Iterable<string>, limit = 3): string[] {
  // A typo is an edit or two: more than three turns one long name into another (a topic of the same prefix).
  const allowed = Math.min(3, Math.max(1, Math.floor(name.length / 4)));
  return [...candidates]
    .map((c) => ({ c, d: editDistance(name, c) }))
    .filter((m) => m.d > 0 && m.d <= allowed)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, limit)
    .map((m) => m.c);
}
