// Shared by the MoE tests of several packages (ir's grouped GEMMs, precision's FP8 grouped GEMM):
// random group offsets of dropless routing. No package imports: plain data.

const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** Random group sizes over E experts adding up to R, as offsets i32[E + 1]: `kind` 'ragged' (some experts empty, one at least when E > 2) or 'one' (every row in one expert). */
export function randomOffsets(E: number, R: number, kind: 'ragged' | 'one' = 'ragged'): Int32Array {
  const sizes = new Array<number>(E).fill(0);
  if (kind === 'one') sizes[randInt(0, E - 1)] = R;
  else for (let r = 0; r < R; r++) sizes[Math.random() < 0.3 ? 0 : randInt(0, E - 1)]!++;
  if (kind === 'ragged' && E > 2) {
    // At least one empty expert somewhere past the first.
    const e = randInt(1, E - 1);
    sizes[0]! += sizes[e]!;
    sizes[e] = 0;
  }
  const off = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) off[e + 1] = off[e]! + sizes[e]!;
  return off;
}
