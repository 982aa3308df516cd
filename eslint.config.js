// Lint for the whole tree: typescript-eslint's recommended rules, with unused names an error (the
// compiler's noUnusedLocals/noUnusedParameters catch the same, this names them in an editor too).
// A name starting with "_" is unused on purpose (a callback's required parameter, a discarded element).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['.cache/**', '**/*.js', '**/*.mjs', '**/*.cjs', 'dist/**', 'node_modules/**', '**/node_modules/**', 'hack/image/rootfs/**', '.ci/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // Tests and the API emulator handle arbitrary JSON (API objects, kubectl output) whose shape the test's
    // own assertions or the emulator's schema check; typing each such value would say nothing more.
    files: ['**/*.test.ts', 'hack/kube-emulator/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
