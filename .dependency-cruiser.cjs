// Import rules of the production code (dependency-cruiser): imports only point down the layers
//   schema ← scenarios ← collector ← web ← cli (← bin)
// and no import circle, type-only imports included. test/unit/architecture.test.ts runs these rules (and the
// 500-line limit, which dependency-cruiser cannot check): `npm run check:arch`.

/** The production folders, bottom layer first: each may import only the ones before it. */
const LAYERS = ['schema', 'scenarios', 'collector', 'web', 'cli', 'bin'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    // One rule per layer: nothing from the layers above it.
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `${layer}-imports-only-below`,
      comment: `${layer}/ may import ${LAYERS.slice(0, i).join(', ') || 'no other layer'}, never ${LAYERS.slice(i + 1).join(', ')}`,
      severity: 'error',
      from: { path: `^${layer}/` },
      to: { path: `^(${LAYERS.slice(i + 1).join('|')})/` },
    })),
    {
      name: 'production-not-from-test',
      comment: 'test doubles and helpers live under test/ and are never imported by production code',
      severity: 'error',
      from: { path: `^(${LAYERS.join('|')})/` },
      to: { path: '^test/' },
    },
    {
      name: 'no-circular',
      comment: 'no import circle, type-only imports included',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      comment: 'every import resolves, so no edge is missing from the checks above',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|\\.next)/' },
    // Type-only imports are edges too: they are part of the layering even though tsx erases them.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'types', 'default'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
