/**
 * Checks HTTP requests and responses against a vendor's OpenAPI 3.0 (or Swagger 2.0) document: finds
 * the operation for a method and concrete path, and validates bodies with ajv.
 */
import SwaggerParser from "@apidevtools/swagger-parser";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsImport from "ajv-formats";
import { readFile } from "node:fs/promises";
import { join, resolve as resolvePath } from "node:path";
import { parse as parseYaml } from "yaml";

export type ValidationResult = { ok: true } | { ok: false; errors: string[] };

export type ResponseToValidate = { method: string; path: string; status: number; body: unknown };
export type RequestToValidate = { method: string; path: string; body?: unknown };

export type OperationMatch = {
  method: string;
  /** The path template as written in the spec, without the server base path. */
  template: string;
  operationId: string | undefined;
  pathParams: Record<string, string>;
};

export type OpenApiValidator = {
  /** The server base path the spec's paths sit under, e.g. "/v3" ("" when none). */
  basePath: string;
  findOperation: (method: string, path: string) => OperationMatch | undefined;
  validateResponse: (response: ResponseToValidate) => ValidationResult;
  validateRequest: (request: RequestToValidate) => ValidationResult;
  /** Validates a value against a named schema, e.g. "#/definitions/APIErrorSchema". */
  validateSchema: (pointer: string, value: unknown) => ValidationResult;
};

type JsonObject = Record<string, unknown>;
type Direction = "request" | "response";

// ajv-formats ships as CommonJS; under ESM interop its callable may sit on `.default`.
const addFormats = ((addFormatsImport as unknown as { default?: unknown }).default ?? addFormatsImport) as (
  ajv: Ajv,
) => Ajv;

const cache = new Map<string, Promise<OpenApiValidator>>();

/** Loads (once per file) and dereferences an OpenAPI document, and returns a validator over it. */
export function loadOpenApiValidator(file: string): Promise<OpenApiValidator> {
  const key = resolvePath(file);
  let pending = cache.get(key);
  if (!pending) {
    pending = buildValidator(key);
    // A failed load must not poison the cache for a later, corrected attempt.
    pending.catch(() => cache.delete(key));
    cache.set(key, pending);
  }
  return pending;
}

async function buildValidator(file: string): Promise<OpenApiValidator> {
  const text = await readFile(file, "utf8");
  const raw = (file.endsWith(".json") ? JSON.parse(text) : parseYaml(text)) as JsonObject;
  return createOpenApiValidator(raw);
}

/** Builds a validator over an already parsed document (useful for small inline specs in tests). */
export async function createOpenApiValidator(raw: JsonObject): Promise<OpenApiValidator> {
  const original = structuredClone(raw);
  // Circular references stay as "$ref" so ajv can resolve them against the original document.
  const doc = (await SwaggerParser.dereference(structuredClone(raw) as never, {
    dereference: { circular: "ignore" },
  })) as unknown as JsonObject;
  const swagger2 = typeof doc.swagger === "string";
  const basePath = swagger2 ? trimSlash(asString(doc.basePath) ?? "") : serverBasePath(doc);
  const templates = collectTemplates(asObject(doc.paths) ?? {});

  const ajv = new Ajv({ strict: false, allErrors: true, logger: false, validateFormats: true });
  addFormats(ajv);
  const compiled = new Map<string, ValidateFunction>();
  let convertedRoot: JsonObject | undefined;

  const compile = (cacheKey: string, schema: unknown, direction: Direction): ValidateFunction => {
    const hit = compiled.get(cacheKey);
    if (hit) return hit;
    const converted = toJsonSchema(schema, direction) as JsonObject;
    if (JSON.stringify(converted).includes('"$ref"')) {
      // Residual (circular) refs point into the original document; carry its schema sections along.
      convertedRoot ??= {
        components: toJsonSchema(original.components ?? {}, direction),
        definitions: toJsonSchema(original.definitions ?? {}, direction),
      };
      Object.assign(converted, convertedRoot);
    }
    const fn = ajv.compile(converted);
    compiled.set(cacheKey, fn);
    return fn;
  };

  const findOperation = (method: string, path: string): OperationMatch | undefined => {
    const bare = stripBase(path, basePath);
    if (bare === undefined) return undefined;
    const lower = method.toLowerCase();
    for (const t of templates) {
      const params = matchTemplate(t.segments, bare);
      if (!params) continue;
      const op = asObject(asObject(asObject(doc.paths)?.[t.template])?.[lower]);
      if (!op) continue;
      return {
        method: lower,
        template: t.template,
        operationId: asString(op.operationId),
        pathParams: params,
      };
    }
    return undefined;
  };

  const operationOf = (
    method: string,
    path: string,
  ): { match: OperationMatch; op: JsonObject; pathItem: JsonObject } | string => {
    const match = findOperation(method, path);
    if (!match) return `no operation in the spec for ${method.toUpperCase()} ${path}`;
    const pathItem = asObject(asObject(doc.paths)?.[match.template]) ?? {};
    const op = asObject(pathItem[match.method]) ?? {};
    return { match, op, pathItem };
  };

  const validateResponse = ({ method, path, status, body }: ResponseToValidate): ValidationResult => {
    const found = operationOf(method, path);
    if (typeof found === "string") return fail([found]);
    const where = `${method.toUpperCase()} ${found.match.template} → ${status}`;
    const responses = asObject(found.op.responses) ?? {};
    const statusKey = [String(status), `${String(status)[0]}XX`, `${String(status)[0]}xx`, "default"].find(
      (k) => responses[k] !== undefined,
    );
    if (!statusKey) {
      return fail([
        `${where}: status ${status} is not documented (documented: ${Object.keys(responses).join(", ")})`,
      ]);
    }
    const response = asObject(responses[statusKey]) ?? {};
    const schema = swagger2 ? response.schema : pickJsonSchema(asObject(response.content));
    if (schema === undefined) {
      // The spec documents the status without a body schema (e.g. Constant Contact's error statuses).
      return { ok: true };
    }
    if (body === undefined || body === "")
      return fail([`${where}: the spec declares a body but none was sent`]);
    const fn = compile(`res ${found.match.method} ${found.match.template} ${statusKey}`, schema, "response");
    return check(fn, body, where);
  };

  const validateRequest = ({ method, path, body }: RequestToValidate): ValidationResult => {
    const found = operationOf(method, path);
    if (typeof found === "string") return fail([found]);
    const where = `${method.toUpperCase()} ${found.match.template} request`;
    let schema: unknown;
    let required: boolean;
    if (swagger2) {
      const params = [...asArray(found.pathItem.parameters), ...asArray(found.op.parameters)];
      const bodyParam = params.map(asObject).find((p) => p?.in === "body");
      schema = bodyParam?.schema;
      required = bodyParam?.required === true;
    } else {
      const requestBody = asObject(found.op.requestBody);
      schema = pickJsonSchema(asObject(requestBody?.content));
      required = requestBody?.required === true;
    }
    if (body === undefined) {
      return required ? fail([`${where}: a body is required`]) : { ok: true };
    }
    if (schema === undefined) return { ok: true };
    const fn = compile(`req ${found.match.method} ${found.match.template}`, schema, "request");
    return check(fn, body, where);
  };

  const validateSchema = (pointer: string, value: unknown): ValidationResult => {
    const schema = resolvePointer(doc, pointer);
    if (schema === undefined) return fail([`no schema at ${pointer}`]);
    return check(compile(`ptr ${pointer}`, schema, "response"), value, pointer);
  };

  return { basePath, findOperation, validateResponse, validateRequest, validateSchema };
}

function check(fn: ValidateFunction, value: unknown, where: string): ValidationResult {
  if (fn(value)) return { ok: true };
  return fail((fn.errors ?? []).map((e) => `${where}: ${describeError(e)}`));
}

function fail(errors: string[]): ValidationResult {
  return { ok: false, errors };
}

function describeError(error: ErrorObject): string {
  const at = error.instancePath === "" ? "(root)" : error.instancePath;
  const params = error.params as Record<string, unknown>;
  if (error.keyword === "enum") {
    return `${at} must be one of ${JSON.stringify(params.allowedValues)}`;
  }
  if (error.keyword === "additionalProperties") {
    return `${at} has unexpected property "${String(params.additionalProperty)}"`;
  }
  return `${at} ${error.message ?? error.keyword}`;
}

/** The path part of the first server URL, e.g. "https://api.cc.email/v3" → "/v3". */
function serverBasePath(doc: JsonObject): string {
  const first = asObject(asArray(doc.servers)[0]);
  const url = asString(first?.url);
  if (!url) return "";
  // Server variables ({version}) take their default values.
  const variables = asObject(first?.variables) ?? {};
  const filled = url.replace(
    /\{([^}]+)\}/g,
    (_m, name: string) => asString(asObject(variables[name])?.default) ?? "",
  );
  const pathname = /^[a-z]+:\/\//i.test(filled) ? new URL(filled).pathname : filled;
  return trimSlash(pathname);
}

function trimSlash(p: string): string {
  const trimmed = p.replace(/\/+$/, "");
  return trimmed === "" || trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

/** The path without query and base path; paths already lacking the base path are accepted too. */
function stripBase(path: string, basePath: string): string | undefined {
  let bare = path.split("?")[0] ?? path;
  if (/^[a-z]+:\/\//i.test(bare)) bare = new URL(bare).pathname;
  if (basePath !== "" && (bare === basePath || bare.startsWith(`${basePath}/`))) {
    bare = bare.slice(basePath.length);
  }
  return bare === "" ? "/" : bare;
}

type Template = { template: string; segments: string[] };

/** Templates ordered so literal segments win over parameters ("/contacts/sign_up_form" before "/contacts/{id}"). */
function collectTemplates(paths: JsonObject): Template[] {
  const list = Object.keys(paths).map((template) => ({ template, segments: splitPath(template) }));
  return list.sort((a, b) => {
    const len = Math.min(a.segments.length, b.segments.length);
    for (let i = 0; i < len; i += 1) {
      const pa = isParam(a.segments[i]!);
      const pb = isParam(b.segments[i]!);
      if (pa !== pb) return pa ? 1 : -1;
    }
    return a.segments.length - b.segments.length;
  });
}

function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}

function isParam(segment: string): boolean {
  return segment.includes("{");
}

function matchTemplate(segments: string[], path: string): Record<string, string> | undefined {
  const parts = splitPath(path);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i += 1) {
    const seg = segments[i]!;
    const part = decodeURIComponent(parts[i]!);
    if (!isParam(seg)) {
      if (seg !== part) return undefined;
      continue;
    }
    // A segment may mix literals and parameters, e.g. "{id}.json"; turn it into a regex.
    const names: string[] = [];
    const pattern = seg
      .replace(/[.*+?^$()|[\]\\]/g, "\\$&")
      .replace(/\\?\{([^}]+)\\?\}/g, (_m, name: string) => {
        names.push(name);
        return "([^/]+)";
      });
    const m = new RegExp(`^${pattern}$`).exec(part);
    if (!m) return undefined;
    names.forEach((name, idx) => (params[name] = m[idx + 1] ?? ""));
  }
  return params;
}

function pickJsonSchema(content: JsonObject | undefined): unknown {
  if (!content) return undefined;
  const key =
    Object.keys(content).find((k) => k === "application/json") ??
    Object.keys(content).find((k) => k.includes("json")) ??
    Object.keys(content)[0];
  return key === undefined ? undefined : asObject(content[key])?.schema;
}

function resolvePointer(doc: JsonObject, pointer: string): unknown {
  const parts = pointer
    .replace(/^#\/?/, "")
    .split("/")
    .filter((p) => p !== "");
  let node: unknown = doc;
  for (const part of parts) {
    const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
    node = asObject(node)?.[key];
    if (node === undefined) return undefined;
  }
  return node;
}

/**
 * Turns an OpenAPI schema object into JSON Schema for ajv: `nullable` becomes a null type, boolean
 * exclusive bounds become numeric ones, Swagger 2 refs are kept resolvable, and properties that only
 * flow the other way (readOnly in requests, writeOnly in responses) are not required.
 */
function toJsonSchema(node: unknown, direction: Direction, seen = new Map<object, unknown>()): unknown {
  if (Array.isArray(node)) return node.map((n) => toJsonSchema(n, direction, seen));
  if (node === null || typeof node !== "object") return node;
  const cached = seen.get(node);
  if (cached !== undefined) return cached;
  const src = node as JsonObject;
  const out: JsonObject = {};
  seen.set(node, out);
  for (const [key, value] of Object.entries(src)) {
    if (
      key === "example" ||
      key === "examples" ||
      key === "xml" ||
      key === "externalDocs" ||
      key === "discriminator"
    ) {
      continue;
    }
    if (key === "properties" && value && typeof value === "object") {
      const props: JsonObject = {};
      for (const [name, sub] of Object.entries(value as JsonObject))
        props[name] = toJsonSchema(sub, direction, seen);
      out.properties = props;
      continue;
    }
    out[key] = toJsonSchema(value, direction, seen);
  }
  if (out.nullable === true) {
    if (typeof out.type === "string") out.type = [out.type, "null"];
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...(out.enum as unknown[]), null];
    if (out.type === undefined && (out.allOf || out.oneOf || out.anyOf || out.$ref)) {
      const { nullable: _n, ...rest } = out;
      return { anyOf: [rest, { type: "null" }] };
    }
  }
  delete out.nullable;
  if (out.exclusiveMinimum === true && typeof out.minimum === "number") {
    out.exclusiveMinimum = out.minimum;
    delete out.minimum;
  } else if (typeof out.exclusiveMinimum === "boolean") delete out.exclusiveMinimum;
  if (out.exclusiveMaximum === true && typeof out.maximum === "number") {
    out.exclusiveMaximum = out.maximum;
    delete out.maximum;
  } else if (typeof out.exclusiveMaximum === "boolean") delete out.exclusiveMaximum;
  // Swagger 2's "file" type has no JSON Schema meaning.
  if (out.type === "file") delete out.type;
  if (Array.isArray(out.required) && out.properties && typeof out.properties === "object") {
    const props = src.properties as JsonObject | undefined;
    const skip = direction === "request" ? "readOnly" : "writeOnly";
    out.required = (out.required as string[]).filter((name) => asObject(props?.[name])?.[skip] !== true);
    if ((out.required as string[]).length === 0) delete out.required;
  }
  return out;
}

function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function asString(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * Where the vendors' official specs live: `CONCORD_SPECS_DIR`, else `shared/specs` beside the
 * repository (they are not copied into it; see each folder's SOURCE.txt for its licence).
 */
export function officialSpecPath(...segments: string[]): string {
  const base =
    process.env["CONCORD_SPECS_DIR"] ?? join(import.meta.dirname, "..", "..", "..", "..", "shared", "specs");
  return join(base, ...segments);
}
