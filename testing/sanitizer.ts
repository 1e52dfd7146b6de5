// Shared by the GPU tests: whether they run under compute-sanitizer (scripts/sanitize-tests.sh sets
// DEEPWELL_SANITIZER to the tool's name). A sanitizer checks each kernel launch, not how many times
// it repeats: under one, a training loop runs the same kernels with the same shapes, fewer times
// (the sanitizer makes each launch 10 to 100 times slower), and an assertion that needs the full
// run (a loss falling by a margin, a time bound) is left to the ordinary GPU run. Nothing else changes.
export const underSanitizer = Boolean(process.env.DEEPWELL_SANITIZER);

/** `full` repeats in an ordinary run, `sanitized` under a sanitizer. */
export function repeats(full: number, sanitized: number): number {
  return underSanitizer ? Math.min(full, sanitized) : full;
}

/** A test's own time limit (ms), lifted under a sanitizer (its per-file limit bounds the run there). */
export function timeLimit(ms: number): number {
  return underSanitizer ? 3_600_000 : ms;
}
