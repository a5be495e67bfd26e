/**
 * One API route, declared once: its method, URL, zod schemas and handler. The same declaration
 * registers the Fastify route (parsing params, query and body with the schemas, checking the session
 * and the CSRF token) and emits the route's OpenAPI entry, so the document cannot drift from the
 * server.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { ErrorBody } from "../api-schemas";

export type HttpMethod = "GET" | "POST" | "DELETE";

/** Who may call a route: anyone, or a signed-in operator (and, for state changes, with the CSRF token). */
export type RouteAccess = "public" | "session";

/** An expected failure, answered as `{ code, message }` with its status (STYLE.md rule 3). */
export type Failure = { readonly kind: typeof FAILURE; status: number; body: ErrorBody };
/** A body that is not JSON (CSV, Prometheus text). */
export type RawBody = {
  readonly kind: typeof RAW;
  content_type: string;
  body: string;
  headers?: Record<string, string>;
  /** Another status than 200 (a redirect). */
  status?: number;
};

const FAILURE = Symbol("failure");
const RAW = Symbol("raw");

export const fail = (status: number, code: string, message: string): Failure => ({
  kind: FAILURE,
  status,
  body: { code, message },
});

export const raw = (content_type: string, body: string, headers?: Record<string, string>): RawBody => ({
  kind: RAW,
  content_type,
  body,
  ...(headers ? { headers } : {}),
});

/** A 303 to a page of the UI (after a flow the browser went through, such as Connect). */
export const seeOther = (location: string): RawBody => ({
  kind: RAW,
  content_type: "text/plain; charset=utf-8",
  body: `See ${location}`,
  headers: { location },
  status: 303,
});

const isFailure = (value: unknown): value is Failure =>
  typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === FAILURE;
const isRaw = (value: unknown): value is RawBody =>
  typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === RAW;

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

export type RouteSpec<
  P extends z.ZodType | undefined,
  Q extends z.ZodType | undefined,
  B extends z.ZodType | undefined,
  R extends z.ZodType,
> = {
  method: HttpMethod;
  /** Fastify's form: `/api/runs/:id`. */
  url: string;
  summary: string;
  description?: string;
  tag: string;
  access: RouteAccess;
  params?: P;
  query?: Q;
  body?: B;
  response: R;
  /** Not JSON: the response's content type (the schema then describes a string). */
  produces?: string;
  /** Error statuses this route answers beyond the common ones (400, 401, 403, 413, 500). */
  errors?: readonly number[];
  handler: (
    input: { params: Parsed<P>; query: Parsed<Q>; body: Parsed<B> },
    context: { request: FastifyRequest; reply: FastifyReply },
  ) => Promise<z.input<R> | Failure | RawBody>;
};

/** A route with its types erased: what the route table holds. */
export type ApiRoute = {
  method: HttpMethod;
  url: string;
  summary: string;
  description: string | undefined;
  tag: string;
  access: RouteAccess;
  schemas: { params?: z.ZodType; query?: z.ZodType; body?: z.ZodType; response: z.ZodType };
  produces: string | undefined;
  errors: readonly number[];
  handle: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
};

/** Checks the session and CSRF token of a request; returns the failure to answer, if any. */
export type AccessCheck = (request: FastifyRequest, access: RouteAccess) => Promise<Failure | undefined>;

type Issue = { where: "params" | "query" | "body"; path: string; message: string };

/** The value at `path` in a parsed query or params object, for saying what was received. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function issuesOf(where: Issue["where"], error: z.ZodError, input: unknown): Issue[] {
  return error.issues.map((i) => {
    // Query and path values are short strings from the URL: saying what came makes the message clear.
    const got = where === "body" || i.path.length === 0 ? undefined : valueAt(input, i.path);
    return {
      where,
      path: i.path.map(String).join("."),
      message:
        typeof got === "string" ? `${i.message} (got ${JSON.stringify(got.slice(0, 100))})` : i.message,
    };
  });
}

/**
 * Input for a route that declares none. Refused, never dropped: a `?dry_run=true` on a route that
 * has no query would otherwise run for real (an erasure, a sync, an applied plan).
 */
function takesNone(
  where: Issue["where"],
  value: unknown,
): { ok: true; value: undefined } | { ok: false; issues: Issue[] } {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) return { ok: true, value: undefined };
    return {
      ok: false,
      issues: keys.map((key) => ({
        where,
        path: key,
        message: `this route takes no ${where === "body" ? "body" : "query parameters"}`,
      })),
    };
  }
  return {
    ok: false,
    issues: [{ where, path: "", message: `this route takes no ${where}; send none or {}` }],
  };
}

export function defineRoute<
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType = z.ZodType,
>(spec: RouteSpec<P, Q, B, R>): ApiRoute {
  const parse = (
    schema: z.ZodType | undefined,
    where: Issue["where"],
    value: unknown,
  ): { ok: true; value: unknown } | { ok: false; issues: Issue[] } => {
    if (!schema) return takesNone(where, value);
    const parsed = schema.safeParse(value);
    return parsed.success
      ? { ok: true, value: parsed.data }
      : { ok: false, issues: issuesOf(where, parsed.error, value) };
  };
  return {
    method: spec.method,
    url: spec.url,
    summary: spec.summary,
    description: spec.description,
    tag: spec.tag,
    access: spec.access,
    schemas: {
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { query: spec.query } : {}),
      ...(spec.body ? { body: spec.body } : {}),
      response: spec.response,
    },
    produces: spec.produces,
    errors: spec.errors ?? [],
    handle: async (request, reply) => {
      const params = parse(spec.params, "params", request.params ?? {});
      const query = parse(spec.query, "query", request.query ?? {});
      // No body at all (no content type) reads as an empty object, so `{}`-defaulted bodies may be omitted.
      // A JSON `null` is a body, and not an object: refused, never read as `{}`.
      const body = parse(spec.body, "body", request.body === undefined ? {} : request.body);
      const issues = [params, query, body].flatMap((p) => (p.ok ? [] : p.issues));
      if (issues.length > 0 || !params.ok || !query.ok || !body.ok) {
        const first = issues.slice(0, 3).map((i) => `${i.where}${i.path ? `.${i.path}` : ""}: ${i.message}`);
        return reply.code(400).send({
          code: "invalid_request",
          message: `The request is not valid: ${first.join("; ")}${issues.length > 3 ? ` (and ${issues.length - 3} more)` : ""}.`,
          issues,
        } satisfies ErrorBody);
      }
      const result = await spec.handler(
        {
          params: params.value as Parsed<P>,
          query: query.value as Parsed<Q>,
          body: body.value as Parsed<B>,
        },
        { request, reply },
      );
      if (isFailure(result)) return reply.code(result.status).send(result.body);
      if (isRaw(result)) {
        for (const [k, v] of Object.entries(result.headers ?? {})) void reply.header(k, v);
        return reply
          .code(result.status ?? 200)
          .type(result.content_type)
          .send(result.body);
      }
      return reply.send(result);
    },
  };
}

/** Registers each route; `check` guards every non-public route before its input is parsed. */
export function registerRoutes(app: FastifyInstance, routes: readonly ApiRoute[], check: AccessCheck): void {
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.url,
      handler: async (request, reply) => {
        const denied = await check(request, route.access);
        if (denied) return reply.code(denied.status).send(denied.body);
        return route.handle(request, reply);
      },
    });
  }
}
