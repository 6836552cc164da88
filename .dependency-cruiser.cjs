// The module graph's rules (docs/design in README "Layout"): checked by `npm run lint`, which `npm test`
// runs. https://github.com/sverweij/dependency-cruiser/blob/main/doc/rules-reference.md
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'The graph goes one way: a cycle makes load order and ownership unclear.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'only-http-knows-fastify',
      severity: 'error',
      comment: 'Only src/http/ speaks HTTP to pods; everything else is framework-free and testable alone.',
      from: { path: '^src/', pathNot: '^src/http/' },
      to: { path: 'node_modules/(fastify|@fastify)/' },
    },
    {
      name: 'roles-are-pure',
      severity: 'error',
      comment: 'The role decision is pure: no network, files, processes, Kubernetes, AWS or HTTP.',
      from: { path: '^src/roles/' },
      to: {
        path: [
          '^src/(http|kube|imds|netfilter|pods/watcher|pods/file-identity|serve|commands)',
          // credentials/ does I/O (STS); its parameter limits (sts-limits.ts) are pure and shared.
          '^src/credentials/(?!sts-limits\\.ts$)',
          'node_modules/',
          '^(node:)?(fs|net|http|https|child_process|dgram|dns)',
        ],
        dependencyTypesNot: ['type-only'],
      },
    },
    {
      name: 'pods-below-kube',
      severity: 'error',
      comment:
        'kube/ composes the pod view (pods/) with the API server; pods/ knows nothing of Kubernetes I/O. ' +
        'The one remaining edge, pods/watcher.ts (the Kubernetes pod watch), moves to kube/ once the ' +
        'open edits to it (issues 11 and 13) have landed.',
      from: { path: '^src/pods/', pathNot: '^src/pods/watcher\\.ts$' },
      to: { path: '^src/kube/' },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      comment: 'A module nothing imports is dead code (main.ts and the subcommands are entry points).',
      from: { orphan: true, path: '^src/', pathNot: ['^src/main\\.ts$', '^src/commands/'] },
      to: {},
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-dev-deps-in-src',
      severity: 'error',
      comment: 'The image prunes dev dependencies: src/ may only use production ones.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
