/**
 * The OpenAPI 3.1 document served at /openapi.json, generated from the route table and its zod
 * schemas (`z.toJSONSchema`), plus the few routes the base server mounts itself (health, readiness,
 * webhook receivers).
 */
import { z } from "zod";
import { ErrorBodySchema } from "../api-schemas";
import type { ApiRoute } from "./api-route";

type JsonObject = Record<string, unknown>;

const ERROR_REF = { $ref: "#/components/schemas/ErrorBody" };

const STATUS_TEXT: Record<number, string> = {
  303: "See Other: back to the overview, with `connected=<id>` or `connect_error=<message>`",
  400: "The request is not valid (`invalid_request`, with `issues`)",
  401: "Not signed in (`not_signed_in`) or a wrong password (`wrong_password`)",
  403: "The `x-csrf-token` header is missing or wrong (`csrf_invalid`)",
  404: "Not found",
  409: "Conflicts with the current state",
  413: "The body is larger than the server's limit (`body_too_large`)",
  429: "Too many failed sign-ins from this address (`too_many_attempts`)",
  500: "Something went wrong on our side (`internal_error`)",
  503: "Not available",
};

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonObject {
  const out = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonObject;
  delete out["$schema"];
  return out;
}

const openApiPath = (url: string): string => url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");

function parameters(route: ApiRoute): JsonObject[] {
  const out: JsonObject[] = [];
  for (const [where, schema] of [
    ["path", route.schemas.params],
    ["query", route.schemas.query],
  ] as const) {
    if (!schema) continue;
    const s = jsonSchema(schema, "input");
    const props = (s["properties"] ?? {}) as Record<string, JsonObject>;
    const required = new Set((s["required"] ?? []) as string[]);
    for (const [name, prop] of Object.entries(props)) {
      const { description, ...rest } = prop;
      out.push({
        name,
        in: where,
        required: where === "path" || required.has(name),
        schema: rest,
        ...(typeof description === "string" ? { description } : {}),
      });
    }
  }
  return out;
}

function operation(route: ApiRoute): JsonObject {
  const statuses = new Set<number>([400, 413, 500, ...route.errors]);
  if (route.access === "session") {
    statuses.add(401);
    if (route.method !== "GET") statuses.add(403);
  }
  const responses: JsonObject = {
    "200": {
      description: "OK",
      content: {
        [route.produces ?? "application/json"]: {
          schema: route.produces ? { type: "string" } : jsonSchema(route.schemas.response, "output"),
        },
      },
    },
  };
  for (const status of [...statuses].sort((a, b) => a - b))
    responses[String(status)] =
      status < 400
        ? // A redirect (the Connect callback back to the overview): where to, no body to read.
          {
            description: STATUS_TEXT[status] ?? "Redirect",
            headers: { Location: { schema: { type: "string" } } },
          }
        : {
            description: STATUS_TEXT[status] ?? "Error",
            content: { "application/json": { schema: ERROR_REF } },
          };
  const params = parameters(route);
  return {
    operationId: `${route.method.toLowerCase()}${route.url
      .replace(/^\/api/, "")
      .split(/[/.:-]/)
      .filter((s) => s !== "")
      .map((s) => s.charAt(0).toUpperCase() + s.slice(1))
      .join("")}`,
    summary: route.summary,
    ...(route.description !== undefined ? { description: route.description } : {}),
    tags: [route.tag],
    ...(route.access === "session" ? {} : { security: [] }),
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(route.schemas.body
      ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: jsonSchema(route.schemas.body, "input") } },
          },
        }
      : {}),
    responses,
  };
}

/** Routes the base server mounts (src/server/app.ts), documented here beside the table's. */
const BASE_PATHS: JsonObject = {
  "/healthz": {
    get: {
      operationId: "getHealthz",
      summary: "Liveness: the process answers",
      tags: ["health"],
      security: [],
      responses: {
        "200": {
          description: "OK",
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: { status: { const: "ok" }, version: { type: "string" } },
                required: ["status", "version"],
              },
            },
          },
        },
      },
    },
  },
  "/readyz": {
    get: {
      operationId: "getReadyz",
      summary: "Readiness: the store answers",
      tags: ["health"],
      security: [],
      responses: {
        "200": {
          description: "Ready",
          content: {
            "application/json": {
              schema: { type: "object", properties: { status: { const: "ready" } }, required: ["status"] },
            },
          },
        },
        "503": {
          description: "The store does not answer (`store_unavailable`)",
          content: { "application/json": { schema: ERROR_REF } },
        },
      },
    },
  },
  "/webhooks/{connection}": {
    post: {
      operationId: "postWebhook",
      summary: "A system's webhook delivery for one connection (raw body, verified by the connector)",
      tags: ["webhooks"],
      security: [],
      parameters: [{ name: "connection", in: "path", required: true, schema: { type: "string" } }],
      requestBody: { required: false, content: { "*/*": { schema: { type: "string" } } } },
      responses: {
        "200": { description: "Stored (or a handshake answered)" },
        "401": {
          description: "Not verified (`webhook_unverified`)",
          content: { "application/json": { schema: ERROR_REF } },
        },
        "404": {
          description: "No receiver for this connection (`webhook_not_configured`)",
          content: { "application/json": { schema: ERROR_REF } },
        },
      },
    },
  },
};

export function openApiDocument(routes: readonly ApiRoute[], version: string): JsonObject {
  const paths: Record<string, JsonObject> = { ...(BASE_PATHS as Record<string, JsonObject>) };
  for (const route of routes) {
    const path = openApiPath(route.url);
    paths[path] = { ...(paths[path] ?? {}), [route.method.toLowerCase()]: operation(route) };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Concord",
      version,
      description:
        "Concord's REST API. Sign in with POST /api/session; the session cookie then authenticates every /api route, and every state-changing request carries the session's CSRF token in the `x-csrf-token` header. Errors are `ErrorBody` with a stable snake_case `code`.",
    },
    servers: [{ url: "/" }],
    tags: [
      { name: "session" },
      { name: "overview" },
      { name: "runs" },
      { name: "people" },
      { name: "reconciliation" },
      { name: "review" },
      { name: "charts" },
      { name: "operations" },
      { name: "health" },
      { name: "webhooks" },
    ],
    security: [{ session: [] }],
    components: {
      securitySchemes: {
        session: { type: "apiKey", in: "cookie", name: "concord_session" },
      },
      schemas: { ErrorBody: jsonSchema(ErrorBodySchema, "output") },
    },
    paths,
  };
}
