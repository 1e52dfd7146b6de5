// Which public exports (functions and classes) of the packages under test some case reaches.
const PACKAGE_OF = {
  core: 'core',
  precision: 'precision',
  ir: 'ir',
  nn: 'nn',
  'attention-sparsek': 'attention-sparsek',
  'trainer-checkpoint': 'trainer',
  'trainer-data': 'trainer',
  cli: 'cli',
  'kernels-native': 'kernels-native',
  probe: 'probe',
};
const ALL = [...new Set(Object.values(PACKAGE_OF))];

/** `names`: the case modules run; `cases`: all their cases. The generic module 'exports' reaches every package. */
export async function coverage(names, cases) {
  const packages = names.includes('exports') ? ALL : [...new Set(names.map((n) => PACKAGE_OF[n]).filter(Boolean))];
  const entries = new Set();
  for (const c of cases) for (const e of [c.entry ?? []].flat()) entries.add(String(e));
  const reached = (pkg, name) => [...entries].some((e) => e === `${pkg}.${name}` || e.startsWith(`${pkg}.${name}#`) || e.startsWith(`${pkg}.${name}.`));
  let total = 0;
  let covered = 0;
  const uncovered = [];
  for (const pkg of packages) {
    const mod = await import(`@deepwell/${pkg}`);
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value !== 'function') continue;
      total++;
      if (reached(pkg, name)) covered++;
      else uncovered.push(`${pkg}.${name}`);
    }
  }
  return { packages, total, covered, uncovered };
}
