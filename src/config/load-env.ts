/**
 * The process environment as one schema, checked at boot before anything else starts, with errors
 * that name the variable and say how to fix it; values that may hold credentials are never echoed.
 */
import { z } from "zod";
import { configErrorMap } from "./config-error-map";
import { hint } from "./did-you-mean";
import { parseSecretKey, type SecretKey } from "./secret-box";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export const EnvSchema = z
  .object({
    /** PostgreSQL, an external database; absent: the embedded SQLite database under CONCORD_DATA_DIR. */
    DATABASE_URL: z
      .string()
      .optional()
      .superRefine((url, ctx) => {
        if (url === undefined || /^postgres(ql)?:\/\/[^\s]+$/.test(url)) return;
        const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
        ctx.addIssue({
          code: "custom",
          message: `expected a PostgreSQL URL such as postgres://concord:password@db:5432/concord, found ${scheme === undefined ? "a value that is not a URL" : `a ${scheme}: URL`}; leave DATABASE_URL unset to use the embedded SQLite database`,
        });
      }),
    /**
     * The PostgreSQL schema the store (and, beside it, the job queue as `<schema>_jobs`) lives in:
     * several installations, one database. Absent: `public` and `graphile_worker`.
     */
    DATABASE_SCHEMA: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,56}$/, {
        message: "expected a lower-case schema name of letters, digits and _ (at most 57 characters)",
      })
      .optional(),
    CONCORD_DATA_DIR: z.string().default("./data"),
    CONCORD_CONFIG: z.string().optional(),
    CONCORD_SECRET_KEY: z
      .string()
      .optional()
      .transform((text, ctx): SecretKey | undefined => {
        if (text === undefined) return undefined;
        const key = parseSecretKey(text);
        if (key.ok) return key.value;
        ctx.addIssue({
          code: "custom",
          message: key.error.message,
          params: { concord_code: key.error.code },
        });
        return z.NEVER;
      }),
    PORT: z
      .string()
      .optional()
      .transform((text, ctx): number | undefined => {
        if (text === undefined) return undefined;
        const port = /^\d+$/.test(text) ? Number(text) : NaN;
        if (port >= 1 && port <= 65_535) return port;
        ctx.addIssue({
          code: "custom",
          message: `expected a port number from 1 to 65535, found ${JSON.stringify(text)}`,
        });
        return z.NEVER;
      }),
    HOST: z.string().optional(),
    LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
    CONCORD_ADMIN_PASSWORD: z.string().optional(),
    NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  })
  .superRefine((env, ctx) => {
    if (
      env.NODE_ENV === "production" &&
      env.CONCORD_ADMIN_PASSWORD !== undefined &&
      env.CONCORD_ADMIN_PASSWORD.length < 12
    )
      ctx.addIssue({
        code: "custom",
        path: ["CONCORD_ADMIN_PASSWORD"],
        message: `expected at least 12 characters in production, found ${env.CONCORD_ADMIN_PASSWORD.length}`,
      });
  });
export type Env = z.infer<typeof EnvSchema>;
export type LogLevel = Env["LOG_LEVEL"];

export type EnvError = { variable: string; code: "env_invalid" | "secret_key_invalid"; message: string };
export type EnvLoadResult = { ok: true; env: Env; warnings: string[] } | { ok: false; errors: EnvError[] };

/** Variables of the test suites (where the vendors' specs are, live writes), not of the engine. */
const TEST_VARIABLES = ["CONCORD_SPECS_DIR", "CONCORD_LIVE_WRITES"];
/** Variables a command reads as the default of one of its options (`serve --workers`, `worker --concurrency`). */
const COMMAND_VARIABLES = ["CONCORD_SERVE_WORKERS", "CONCORD_WORKER_CONCURRENCY"];
const KNOWN = Object.keys(EnvSchema.shape);

/** Parses the environment; empty variables count as unset (`FOO=` in a compose file). */
export function loadEnv(env: Readonly<Record<string, string | undefined>> = process.env): EnvLoadResult {
  const cleaned: Record<string, string> = {};
  for (const [name, value] of Object.entries(env))
    if (value !== undefined && value !== "") cleaned[name] = value;
  // A misspelt CONCORD_ variable would silently fall back to a default: say so.
  const warnings = Object.keys(cleaned)
    .filter(
      (name) =>
        name.startsWith("CONCORD_") &&
        !KNOWN.includes(name) &&
        !TEST_VARIABLES.includes(name) &&
        !COMMAND_VARIABLES.includes(name),
    )
    .map((name) => `unknown environment variable ${name}${hint(name, KNOWN)}; it is ignored`);
  const parsed = EnvSchema.safeParse(cleaned, { error: configErrorMap });
  if (parsed.success) return { ok: true, env: parsed.data, warnings };
  return {
    ok: false,
    errors: parsed.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? ""),
      code:
        issue.code === "custom" && issue.params?.["concord_code"] === "secret_key_invalid"
          ? "secret_key_invalid"
          : "env_invalid",
      message: issue.message,
    })),
  };
}

export function formatEnvErrors(errors: readonly EnvError[]): string {
  return [
    `${errors.length} environment variable${errors.length === 1 ? " is" : "s are"} wrong:`,
    ...errors.map((e) => `  ${e.variable}: ${e.message}`),
  ].join("\n");
}
