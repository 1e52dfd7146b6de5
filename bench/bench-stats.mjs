// Small pieces the GEMM benchmarks and their comparison tables share, with no device code (so the
// tables can be made on any machine from a run's JSON lines): the median they report, and reading
// a run's JSON lines (lines starting with '{'; the '# gpu:' / '# date:' lines are skipped).
import { readFileSync } from 'node:fs';

/** The median as the benchmarks take it: the middle of the sorted values (the upper one of two). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Every JSON line of a benchmark's output file, parsed. */
export function readJsonLines(path) {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}
