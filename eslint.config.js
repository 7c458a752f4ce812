// ESLint (flat config): the recommended rules of ESLint and typescript-eslint over the sources,
// tests, bench and pages; layout is Prettier's (.prettierrc.json), so no stylistic rule is set here.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'client/dist/', 'node_modules/', '.venv-sdk/', 'bench/*.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  // The dashboard's script runs in the browser.
  { files: ['dashboard/**/*.js'], languageOptions: { globals: globals.browser } },
  // pm2's process file is CommonJS.
  { files: ['**/*.cjs'], languageOptions: { sourceType: 'commonjs' } },
  // `const { dropped: _, ...rest } = x` keeps all but one field: the name is there to leave it out.
  { rules: { '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }] } },
);
