// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'charts/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Only http/ may know fastify: keeps the request path testable without a server (also checked,
      // with the rest of the module graph, by dependency-cruiser: .dependency-cruiser.cjs).
      'no-restricted-imports': 'off',
    },
  },
  // dependency-cruiser's configuration is CommonJS.
  { files: ['**/*.cjs'], languageOptions: { sourceType: 'commonjs', globals: { module: 'writable' } } },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/http/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [{ name: 'fastify', message: 'Only src/http/ imports fastify.' }] },
      ],
    },
  },
);
