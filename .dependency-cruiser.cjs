// Import rules for src/ and server/, checked by `npm run check:deps` (dependency-cruiser).
//
// src/ is built in floors, bottom to top (ARCHITECTURE.md):
//   boundary <- memory <- threads <- gpu <- scope <- observe <- process <- src/api.ts, src/index.ts
// A module may import from its own floor and the floors below it, never from one above.
// server/ uses pinpool as its users do: through src/index.ts (src/api.ts for types), plus the
// error codes of src/boundary/errors.ts.
// Type-only imports count too (tsPreCompilationDeps): a type from a floor above is a dependency
// on it all the same. A cycle is one that code runs through: a buffer may name its handler's
// type while the handler makes buffers (memory/host-buffer.ts <-> memory/handler.ts), which no
// module's loading order depends on.

/** Floors, bottom first. */
const floors = ['boundary', 'memory', 'threads', 'gpu', 'scope', 'observe', 'process'];

/** One rule per floor: "<floor> may not import <floors above>". */
const floorRules = floors.slice(0, -1).map((floor, i) => ({
  name: `${floor}-not-above`,
  comment: `src/${floor}/ may import only src/${floors.slice(0, i + 1).join('/, src/')}/ (its own floor and those below)`,
  severity: 'error',
  from: { path: `^src/${floor}/` },
  to: { path: [`^src/(${floors.slice(i + 1).join('|')})/`, '^src/(api|index)\\.ts$'] },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment:
        'No import cycle in src/ or server/ that runs through code (type-only imports aside).',
      severity: 'error',
      from: { path: '^(src|server)/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    ...floorRules,
    {
      name: 'observe-from-entry-only',
      comment:
        'Nothing below src/api.ts imports src/observe/ (metrics, traces and info are read from the top).',
      severity: 'error',
      from: { path: '^src/process/' },
      to: { path: '^src/observe/' },
    },
    {
      name: 'process-not-entry',
      comment: 'src/process/ may not import the entry modules src/api.ts and src/index.ts.',
      severity: 'error',
      from: { path: '^src/process/' },
      to: { path: '^src/(api|index)\\.ts$' },
    },
    {
      name: 'server-through-entry',
      comment:
        'server/ imports src/ only through src/index.ts (src/api.ts for types) and src/boundary/errors.ts.',
      severity: 'error',
      from: { path: '^server/' },
      to: {
        path: '^src/',
        pathNot: ['^src/index\\.ts$', '^src/api\\.ts$', '^src/boundary/errors\\.ts$'],
      },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing is a typo or a missing dependency.',
      severity: 'error',
      from: { path: '^(src|server)/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.test\\.ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.d.ts', '.js'],
    },
  },
};
