// Lint exists mainly to enforce the thread boundaries (DESIGN §1, STYLE "Layout shows the threads").
import tseslint from 'typescript-eslint';

const outside = (dirs) => dirs.flatMap((d) => [`../${d}/*`, `../${d}`, `../../src/${d}/*`]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tmp/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['src/main/**/*.ts', 'src/watchers/**/*.ts', 'src/coordination/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: outside(['workers']), message: 'src/workers is loaded by path (new URL), never imported.' }] }],
    },
  },
  {
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: outside(['main', 'workers', 'watchers', 'coordination']), message: 'src/shared is imported on both sides of a thread boundary and imports nothing outside itself.' }] }],
    },
  },
  {
    files: ['src/workers/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: outside(['main']), message: 'Worker threads must not pull in the main-thread API.' }] }],
    },
  },
);
