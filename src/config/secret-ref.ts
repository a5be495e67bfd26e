/**
 * References to secrets in the config file: `{ env: "VAR" }` or `{ stored: "name" }`, never the
 * secret itself, so a config file can be committed and shared without leaking credentials.
 */
import { z } from "zod";
import { hint } from "./did-you-mean";

export type SecretRef = { kind: "env"; name: string } | { kind: "stored"; name: string };
/** A value that may be written plainly (a client id) or referenced like a secret. */
export type CredentialValue = { kind: "plain"; value: string } | SecretRef;

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const STORED_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,127}$/;

/**
 * Why `name` cannot be stored with `concord secrets set`, if it cannot: a name no config can
 * reference, or a connection's `<id>.oauth` slot, which holds the tokens Concord renews itself.
 */
export function storedNameProblem(name: string): string | undefined {
  if (!STORED_NAME_RE.test(name))
    return `"${name.slice(0, 140)}" is not a name a config can reference as { stored: … }: expected lowercase letters, digits, . _ - (at most 128, starting with a letter or digit), such as cc-main.refresh_token`;
  if (name.endsWith(".oauth"))
    return `"${name}" is where Concord keeps the tokens it renews for a connection; set the connection's refresh token instead (e.g. ${name.slice(0, -".oauth".length)}.refresh_token)`;
  return undefined;
}

/** Marks issues whose message the loader completes with the exact line to write. */
export const PLAINTEXT_SECRET = "plaintext_secret";

export const SECRET_REF_FORM = '{ env: "VARIABLE" } or { stored: "name" }';

function parseRef(input: unknown, ctx: z.core.$RefinementCtx, allowPlain: boolean): CredentialValue {
  const fail = (message: string, extra: Record<string, unknown> = {}): never => {
    ctx.addIssue({ code: "custom", message, input, params: extra });
    return z.NEVER;
  };
  if (typeof input === "string") {
    if (allowPlain) {
      if (input === "") return fail("expected a non-empty string, found an empty one");
      return { kind: "plain", value: input };
    }
    // Never echo the value: it is probably the secret.
    return fail(
      `a secret must not be written in the config file (found a plain string). Reference it instead with ${SECRET_REF_FORM}`,
      { concord_code: PLAINTEXT_SECRET, found: "string" },
    );
  }
  if (typeof input === "number" || typeof input === "boolean")
    return fail(
      `expected ${SECRET_REF_FORM}, found a ${typeof input}`,
      allowPlain ? {} : { concord_code: PLAINTEXT_SECRET, found: typeof input },
    );
  if (input === null || typeof input !== "object" || Array.isArray(input))
    return fail(
      `${input === undefined ? "required: " : ""}expected ${SECRET_REF_FORM}, found ${input === undefined ? "nothing" : Array.isArray(input) ? "a list" : "null"}`,
    );
  const keys = Object.keys(input);
  const record = input as Record<string, unknown>;
  if (keys.length !== 1 || (keys[0] !== "env" && keys[0] !== "stored")) {
    const unknown = keys.filter((k) => k !== "env" && k !== "stored");
    const described = unknown.map((k) => `"${k}"${hint(k, ["env", "stored"])}`).join(", ");
    return fail(
      keys.length > 1 && unknown.length === 0
        ? `expected exactly one of env or stored, found both`
        : `expected ${SECRET_REF_FORM}, found a mapping with key${keys.length === 1 ? "" : "s"} ${described || "(none)"}`,
    );
  }
  const kind = keys[0];
  const name = record[kind];
  if (kind === "env") {
    if (typeof name !== "string" || !ENV_NAME_RE.test(name))
      return fail(
        `expected an environment variable name (letters, digits, _; not starting with a digit) under env, found ${typeof name === "string" ? JSON.stringify(name) : typeof name}`,
      );
    return { kind: "env", name };
  }
  if (typeof name !== "string" || !STORED_NAME_RE.test(name))
    return fail(
      `expected a stored secret name (lowercase letters, digits, . _ -) under stored, found ${typeof name === "string" ? JSON.stringify(name) : typeof name}`,
    );
  return { kind: "stored", name };
}

/** A secret: `{ env }` or `{ stored }` only; a plain string is an error that says how to fix it. */
export const SecretRefSchema = z.unknown().transform((input, ctx): SecretRef => {
  const value = parseRef(input, ctx, false);
  // parseRef never returns a plain value when plain is not allowed; narrow for the type checker.
  return value.kind === "plain" ? z.NEVER : value;
});

/** A credential that is not secret on its own (a client id): plain, or referenced like a secret. */
export const CredentialValueSchema = z
  .unknown()
  .transform((input, ctx): CredentialValue => parseRef(input, ctx, true));

/** How a reference reads in a message: `env CC_MAIN_CLIENT_SECRET`, `stored cc-main.refresh_token`. */
export const describeSecretRef = (ref: SecretRef): string => `${ref.kind} ${ref.name}`;
