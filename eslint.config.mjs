// ESLint (flat config). TypeScript everywhere gets typescript-eslint's strict type-checked and
// stylistic type-checked sets, with type information from the nearest tsconfig (projectService).
// The .cjs/.mjs files get ESLint's recommended set with Node's globals. Formatting belongs to
// prettier (.prettierrc.json): neither set enables layout rules, and the one rule of theirs that
// prettier's output can trip is turned off below.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores([
    'dist/',
    'build/',
    'build-*/',
    'prebuilds/',
    'coverage/',
    'bench/results/',
    'bench-now/',
    'test/fixtures/',
  ]),

  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },

  {
    name: 'pinpool/typescript',
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    extends: [
      js.configs.recommended,
      tseslint.configs.strictTypeChecked,
      tseslint.configs.stylisticTypeChecked,
    ],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A number in a message or a path is well defined; strict's default bans it with the rest.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        {
          allowNumber: true,
          allowAny: false,
          allowBoolean: false,
          allowNullish: false,
          allowRegExp: false,
          allowNever: false,
          allowArray: false,
        },
      ],
    },
  },

  {
    name: 'pinpool/server',
    files: ['server/**/*.ts'],
    rules: {
      // Fastify takes plugins, hooks and handlers as async functions: an async hook's throw is a
      // rejection fastify answers with; a sync one would have to call done() instead.
      '@typescript-eslint/require-await': 'off',
    },
  },

  {
    name: 'pinpool/typescript-tests',
    files: ['test/**/*.ts', 'test/**/*.mts', 'test/**/*.cts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      // Tests index into arrays and maps they have just filled; a wrong `!` fails the test.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `expect(() => h.free()).toThrow()`: the arrow's value is never used.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // vitest's asymmetric matchers (expect.any(), expect.objectContaining()) are typed any.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      // Async callbacks with no await are handed to run()/measure()/routes to test async paths.
      '@typescript-eslint/require-await': 'off',
      // Misuse and fuzz tests take methods and getters off prototypes to call on foreign receivers.
      '@typescript-eslint/unbound-method': 'off',
      // GC tests drop references (`h = undefined`) so that the collector can take what they held.
      'no-useless-assignment': 'off',
      // No-op callbacks and empty functions are deliberate test values (receivers, catch sinks).
      '@typescript-eslint/no-empty-function': 'off',
    },
  },

  {
    name: 'pinpool/javascript',
    files: ['**/*.cjs', '**/*.mjs', '**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
  {
    // The status page's script runs in a browser, as a classic script; names reach it as data,
    // and markup from strings is refused outright (the page's one defence besides its CSP).
    name: 'pinpool/status-page',
    files: ['server/status/page/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
    rules: {
      strict: ['error', 'global'],
      'no-restricted-properties': [
        'error',
        ...['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'write', 'writeln'].map((property) => ({
          property,
          message: 'Build nodes and set textContent: a name must never be parsed as markup.',
        })),
      ],
      'no-restricted-globals': ['error', 'eval'],
    },
  },

  {
    name: 'pinpool/prettier-owns-layout',
    rules: {
      // Prettier may break an expression over lines where this rule then sees an ambiguity.
      'no-unexpected-multiline': 'off',
    },
  },
);
