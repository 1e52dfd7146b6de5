// The routing order of topk and moe_route (not exported from the package): value descending, NaN
// first (as PyTorch ranks it, so a NaN router output is seen), then index ascending. A total order,
// so a sort by it has one result.

/** True when value a (at index ia) ranks before value b (at index ib). */
export function before(a: number, ia: number, b: number, ib: number): boolean {
  const na = Number.isNaN(a);
  const nb = Number.isNaN(b);
  if (na !== nb) return na;
  if (!na && a !== b) return a > b;
  return ia < ib;
}
