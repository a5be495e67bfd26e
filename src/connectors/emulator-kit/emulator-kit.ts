/**
 * The shared frame of every emulator: a Fastify app with the common control API of DESIGN.md §4
 * (reset, faults, request log, state), fault injection and a request log. Each emulator adds its
 * vendor's routes and its own seed, token, revoke, act and state handlers.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { AddressInfo } from "node:net";

export type EmulatorClock = () => Date;

export type FaultSpec = {
  status: number;
  count: number;
  path_prefix: string;
  latency_ms: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Only requests with one of these methods (GET, POST…); all when absent. */
  methods?: string[];
  /** Only requests whose query string (as sent, after `?`) contains this. */
  query_contains?: string;
};

export type LoggedRequest = {
  method: string;
  path: string;
  status: number;
  at: string;
  duration_ms: number;
};

export type EmulatorHandlers = {
  /** Empties the vendor state (the kit clears faults and the log itself). */
  reset: () => void;
  seed: (body: any) => unknown;
  token: (body: any) => unknown;
  revoke: (body: any) => unknown;
  act: (body: any) => unknown;
  state: () => unknown;
};

export type EmulatorKitOptions = {
  name: string;
  now?: EmulatorClock;
  /** Largest accepted request body in bytes (vendors differ; CC import allows up to 4 MB). */
  bodyLimit?: number;
  logger?: boolean;
};

/** A control-route error the kit turns into a 400 JSON answer. */
export class EmulatorControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type EmulatorKit = {
  app: FastifyInstance;
  now: EmulatorClock;
  requests: LoggedRequest[];
  faults: FaultSpec[];
  /** Registers the control routes; call after the vendor's routes are declared. */
  registerControl: (handlers: EmulatorHandlers) => void;
};

const CONTROL_PREFIX = "/__emulator";

export function createEmulatorKit(options: EmulatorKitOptions): EmulatorKit {
  const now = options.now ?? (() => new Date());
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 5 * 1024 * 1024,
    // Vendors send JSON under several content types (e.g. application/cloudevents+json).
  });
  const requests: LoggedRequest[] = [];
  const faults: FaultSpec[] = [];
  const startedAt = new WeakMap<FastifyRequest, number>();

  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    startedAt.set(request, performance.now());
    const [path = request.url, query = ""] = request.url.split("?");
    if (path.startsWith(CONTROL_PREFIX)) return;
    const fault = faults.find(
      (f) =>
        f.count > 0 &&
        path.startsWith(f.path_prefix) &&
        (f.methods === undefined || f.methods.includes(request.method)) &&
        (f.query_contains === undefined || query.includes(f.query_contains)),
    );
    if (!fault) return;
    fault.count -= 1;
    if (fault.latency_ms > 0) await new Promise((resolve) => setTimeout(resolve, fault.latency_ms));
    // An error status, or any status with a body of its own (a vendor answering what it should not).
    if (fault.status >= 400 || (fault.status > 0 && fault.body !== undefined)) {
      for (const [k, v] of Object.entries(fault.headers ?? {})) void reply.header(k, v);
      await reply
        .code(fault.status)
        .send(
          fault.body ?? [{ error_key: "emulator.fault", error_message: `Injected fault ${fault.status}` }],
        );
    }
  });

  app.addHook("onResponse", async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split("?")[0] ?? request.url;
    if (path.startsWith(CONTROL_PREFIX)) return;
    const began = startedAt.get(request) ?? performance.now();
    requests.push({
      method: request.method,
      path: request.url,
      status: reply.statusCode,
      at: now().toISOString(),
      duration_ms: Math.round((performance.now() - began) * 100) / 100,
    });
  });

  const registerControl = (handlers: EmulatorHandlers): void => {
    const wrap =
      (fn: (body: any) => unknown) =>
      async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
        try {
          return await fn(request.body ?? {});
        } catch (error) {
          if (error instanceof EmulatorControlError) {
            return reply.code(400).send({ code: error.code, message: error.message });
          }
          throw error;
        }
      };
    app.post(`${CONTROL_PREFIX}/reset`, async () => {
      handlers.reset();
      faults.length = 0;
      requests.length = 0;
      return { ok: true };
    });
    app.post(`${CONTROL_PREFIX}/seed`, wrap(handlers.seed));
    app.post(`${CONTROL_PREFIX}/token`, wrap(handlers.token));
    app.post(`${CONTROL_PREFIX}/oauth/revoke`, wrap(handlers.revoke));
    app.post(`${CONTROL_PREFIX}/act`, wrap(handlers.act));
    app.delete(`${CONTROL_PREFIX}/faults`, async () => {
      faults.length = 0;
      return { faults };
    });
    app.post(
      `${CONTROL_PREFIX}/faults`,
      wrap((body: any) => {
        const list = Array.isArray(body) ? body : [body];
        for (const f of list) {
          if (typeof f?.status !== "number" && typeof f?.latency_ms !== "number") {
            throw new EmulatorControlError(
              "invalid_fault",
              'A fault needs "status" (an HTTP status) and/or "latency_ms"; optional "count" (default 1), "path_prefix" (default "/"), "methods" (default all), "query_contains" (default any), "body" and "headers".',
            );
          }
          faults.push({
            status: typeof f.status === "number" ? f.status : 0,
            count: typeof f.count === "number" ? f.count : 1,
            path_prefix: typeof f.path_prefix === "string" ? f.path_prefix : "/",
            latency_ms: typeof f.latency_ms === "number" ? f.latency_ms : 0,
            ...(f.body === undefined ? {} : { body: f.body }),
            ...(f.headers === undefined ? {} : { headers: f.headers }),
            ...(typeof f.query_contains === "string" ? { query_contains: f.query_contains } : {}),
            ...(Array.isArray(f.methods)
              ? { methods: (f.methods as unknown[]).map((m) => String(m).toUpperCase()) }
              : {}),
          });
        }
        return { faults };
      }),
    );
    app.get(`${CONTROL_PREFIX}/requests`, async () => ({ requests, count: requests.length }));
    app.get(`${CONTROL_PREFIX}/state`, async () => handlers.state());
  };

  return { app, now, requests, faults, registerControl };
}

/** Starts an emulator app on loopback and returns its base URL. */
export async function listenOnLoopback(app: FastifyInstance, port = 0): Promise<string> {
  await app.listen({ host: "127.0.0.1", port });
  const address = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}
