/**
 * Reads a config file (YAML, or JSON, which is YAML too), validates it, and reports every problem
 * with the file, the path inside it, the line and column, what was expected and what was found.
 */
import { readFile } from "node:fs/promises";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import type { z } from "zod";
import { checkCrossReferences, type CrossReferenceCode } from "./check-cross-references";
import { ConcordConfigShapeSchema, type ConcordConfig } from "./concord-config";
import { configErrorMap, describeValue } from "./config-error-map";
import { PLAINTEXT_SECRET } from "./secret-ref";
import { errorCode, errorMessage } from "../core/error-code";

/** The whole config file, with every reference between sections checked. */
export const ConcordConfigSchema = ConcordConfigShapeSchema.superRefine(checkCrossReferences);

export type ConfigErrorCode =
  | "file_unreadable"
  | "syntax_error"
  | "empty_file"
  | "invalid_value"
  | "unknown_key"
  | typeof PLAINTEXT_SECRET
  | CrossReferenceCode
  // From checkConfigAgainstEnv, at boot:
  | "secret_env_missing"
  | "secret_key_missing"
  | "secret_too_short";

export type ConfigError = {
  file: string;
  /** Where in the file, e.g. `pairs[0].platforms[1].topic`; empty for the whole file. */
  path: string;
  code: ConfigErrorCode;
  message: string;
  /** 1-based position in the file, when it is known. */
  line?: number;
  column?: number;
};

export type ConfigLoadResult = { ok: true; config: ConcordConfig } | { ok: false; errors: ConfigError[] };

/** `["pairs", 0, "platforms", 1, "topic"]` → `pairs[0].platforms[1].topic`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && /^[A-Za-z0-9_-]+$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

export async function loadConfigFile(path: string): Promise<ConfigLoadResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const reason = errorCode(error) === "ENOENT" ? "no such file" : errorMessage(error);
    return {
      ok: false,
      errors: [
        { file: path, path: "", code: "file_unreadable", message: `cannot read the config file: ${reason}` },
      ],
    };
  }
  return parseConfigText(text, path);
}

/** Parses and validates config text; `file` only names it in errors. */
export function parseConfigText(text: string, file: string): ConfigLoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => ({
        file,
        path: "",
        code: "syntax_error",
        message:
          e.code === "MULTIPLE_DOCS"
            ? "a config file holds one YAML document: remove the `---` line that starts a second one (or join the two)"
            : `YAML syntax: ${e.message.split("\n")[0] ?? e.message}`,
        ...at(e.pos[0]),
      })),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return {
      ok: false,
      errors: [
        {
          file,
          path: "",
          code: "syntax_error",
          message: `YAML: ${errorMessage(error)}`,
        },
      ],
    };
  }
  return parseConfigValue(value, file, (path) => {
    const offset = locate(doc, path);
    return offset === undefined ? {} : at(offset);
  });
}

/** Validates an already-parsed value; `locate` maps a path to a position for the messages. */
export function parseConfigValue(
  value: unknown,
  file: string,
  locate: (path: readonly PropertyKey[]) => { line?: number; column?: number } = () => ({}),
): ConfigLoadResult {
  if (value === null || value === undefined)
    return {
      ok: false,
      errors: [
        {
          file,
          path: "",
          code: "empty_file",
          message: "the file is empty: expected a mapping with at least connections",
        },
      ],
    };
  const parsed = ConcordConfigSchema.safeParse(value, { error: configErrorMap, reportInput: true });
  if (parsed.success) return { ok: true, config: parsed.data };
  const errors = parsed.error.issues.flatMap((issue) => toConfigErrors(issue, value, file, locate));
  return { ok: false, errors: sortErrors(dedupe(errors)) };
}

function toConfigErrors(
  issue: z.core.$ZodIssue,
  root: unknown,
  file: string,
  locate: (path: readonly PropertyKey[]) => { line?: number; column?: number },
): ConfigError[] {
  const where = (path: readonly PropertyKey[]) => ({ file, path: formatPath(path), ...locate(path) });
  if (issue.code === "unrecognized_keys") {
    // One unknown key: point at it, with the suggestion the object's own message computed.
    if (issue.keys.length === 1)
      return [{ ...where([...issue.path, issue.keys[0]!]), code: "unknown_key", message: issue.message }];
    return [{ ...where(issue.path), code: "unknown_key", message: issue.message }];
  }
  const params: Record<string, unknown> = (issue.code === "custom" ? issue.params : undefined) ?? {};
  const concordCode = params["concord_code"] as ConfigErrorCode | undefined;
  if (concordCode === PLAINTEXT_SECRET) {
    const found = typeof params["found"] === "string" ? params["found"] : "string";
    return [
      {
        ...where(issue.path),
        code: PLAINTEXT_SECRET,
        message: plaintextSecretMessage(issue.path, root, found),
      },
    ];
  }
  let message = issue.message;
  // Messages given on a schema (a regex's description) say what was expected; add what was found.
  if (concordCode === undefined && !/\bfound\b/.test(message) && "input" in issue)
    message = `${message}, found ${describeValue(issue.input)}`;
  return [{ ...where(issue.path), code: concordCode ?? "invalid_value", message }];
}

/** The fix for a plain-text secret, naming the exact line to write; never the secret itself. */
function plaintextSecretMessage(path: readonly PropertyKey[], root: unknown, found: string): string {
  const key = String(path[path.length - 1] ?? "secret");
  const envName = (...parts: string[]) =>
    parts
      .join("_")
      .toUpperCase()
      .replace(/[^A-Z0-9_]/g, "_");
  let env = envName("CONCORD", ...path.filter((p): p is string => typeof p === "string"));
  let stored = path
    .filter((p): p is string => typeof p === "string")
    .join(".")
    .replace(/_/g, "-");
  if (path[0] === "connections" && typeof path[1] === "number") {
    const id = readPath(root, ["connections", path[1], "id"]);
    const conn = typeof id === "string" && id !== "" ? id : `connection-${path[1]}`;
    const what = path[2] === "webhooks" ? "webhook_secret" : key;
    env = envName(conn, what);
    stored = `${conn}.${what}`;
  } else if (path[0] === "server" && key === "admin_password") {
    env = "CONCORD_ADMIN_PASSWORD";
    stored = "admin-password";
  } else if (path[0] === "notifications" && key === "password") {
    env = "CONCORD_SMTP_PASSWORD";
    stored = "smtp-password";
  }
  return (
    `a secret must not be written in the config file (found a plain ${found}). ` +
    `Put it in an environment variable and write ${key}: { env: "${env}" }, ` +
    `or store it encrypted in the database (\`concord secrets set ${stored}\`, needs CONCORD_SECRET_KEY) and write ${key}: { stored: "${stored}" }`
  );
}

function readPath(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const seg of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

/** Offset of the deepest node along `path` that exists (an unknown key: the key itself). */
function locate(doc: Document, path: readonly PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = doc.contents?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(seg));
      if (pair === undefined) break;
      const keyNode = pair.key as Node;
      offset = keyNode.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

function dedupe(errors: ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.path}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors
    .map((e, i) => ({ e, i }))
    .sort(
      (a, b) =>
        (a.e.line ?? Infinity) - (b.e.line ?? Infinity) || (a.e.column ?? 0) - (b.e.column ?? 0) || a.i - b.i,
    )
    .map(({ e }) => e);
}

/** One line per error, `file:line:column: path: message`, under a count. */
export function formatConfigErrors(errors: readonly ConfigError[]): string {
  const files = [...new Set(errors.map((e) => e.file))].join(", ");
  const lines = errors.map((e) => {
    const position = e.line !== undefined ? `:${e.line}:${e.column ?? 1}` : "";
    return `  ${e.file}${position}: ${e.path === "" ? "" : `${e.path}: `}${e.message}`;
  });
  return [
    `${files}: ${errors.length} error${errors.length === 1 ? "" : "s"} in the config file`,
    ...lines,
  ].join("\n");
}
