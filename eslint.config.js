// Type-aware lint for the whole repository; rules that guard the house rules in STYLE.md.
import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "data/", "dist/", "coverage/", "ui/dist/", "test/fixtures/"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unnecessary-condition": "off",
      "@typescript-eslint/no-extraneous-class": "off",
      "no-console": "off",
      // Fastify and our ports use async functions that may not await; the rule is noise here.
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // Pure layers: no clock, no randomness, no environment (STYLE.md house rule 1).
    files: ["src/core/**/*.ts", "src/planner/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        {
          object: "Date",
          property: "now",
          message: "core and planner are pure: take the clock as an argument.",
        },
        {
          object: "Math",
          property: "random",
          message: "core and planner are pure: take randomness as an argument.",
        },
        {
          object: "process",
          property: "env",
          message: "core and planner are pure: take config as an argument.",
        },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: "core and planner are pure: take the clock as an argument.",
        },
      ],
    },
  },
  {
    // The admin UI (ui/): the root rules, the rules of hooks, and no Node.js in the browser bundle.
    files: ["ui/src/**/*.{ts,tsx}"],
    extends: [reactHooks.configs.flat.recommended],
    rules: {
      "react-hooks/exhaustive-deps": "error",
      "no-restricted-globals": [
        "error",
        { name: "process", message: "The UI runs in the browser: no Node.js globals." },
        { name: "Buffer", message: "The UI runs in the browser: no Node.js globals." },
        { name: "require", message: "The UI runs in the browser: no Node.js globals." },
      ],
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["node:*"], message: "The UI runs in the browser: no Node.js modules." },
            {
              group: ["**/src/**", "!./**"],
              allowTypeImports: true,
              message: "The UI imports types only from src/ (import type): it talks to the server over HTTP.",
            },
          ],
        },
      ],
    },
  },
  {
    // Tests and emulators may be looser (STYLE.md rule 10).
    files: [
      "**/*.test.ts",
      "**/*test-support.ts",
      "src/connectors/*/emulator/**/*.ts",
      "src/connectors/emulator-kit/**/*.ts",
      "test/**/*.ts",
      "bench/**/*.ts",
    ],
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    files: ["eslint.config.js", ".dependency-cruiser.cjs", "bin/*.js", ".ci/*.mjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        module: "writable",
        require: "readonly",
        Buffer: "readonly",
      },
    },
  },
);
