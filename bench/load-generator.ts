/**
 * The webhook benchmark's load, from a process of its own: POSTs Raiser's Edge NXT CloudEvents
 * deliveries (one event each, as Event Grid sends them) to a URL over loopback with a fixed number
 * of connections, each request as soon as the previous one on its connection answered. Bounded in
 * count and in time (no new request after `max_ms`). Prints one line `RESULT {json}` on stdout.
 *
 *   node --import tsx bench/load-generator.ts '{"url":"http://127.0.0.1:3000/webhooks/re-nxt?webhookKey=…","requests":20000,"concurrency":32,"max_ms":60000}'
 */
import { randomUUID } from "node:crypto";
import { Pool } from "undici";
import { errorMessage } from "../src/core/error-code";

export type LoadOptions = {
  /** Full URL, query included (the webhook key). */
  url: string;
  requests: number;
  concurrency: number;
  max_ms: number;
  /** Requests sent first and not measured (connections opened, code paths warm). */
  warmup?: number;
};

export type LoadResult = {
  sent: number;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  /** Sum of `accepted` in the answers (events the receiver said it stored). */
  accepted: number;
  /** `accepted` summed over the warm-up's answers (they reach the inbox too). */
  warmup_accepted: number;
  errors: number;
  first_error?: string;
  /** From the first measured request to the last answer. */
  wall_ms: number;
  /** Each measured request's response time (send → whole answer read), ms. */
  latencies_ms: number[];
  stopped_by_time: boolean;
};

const EVENT_TYPES = [
  "com.blackbaud.constituent.change.v1",
  "com.blackbaud.constituent.emailaddress.change.v1",
  "com.blackbaud.constituent.add.v1",
];

/** One delivery: a constituent event as Blackbaud's Event Grid sends it. */
function delivery(n: number): string {
  const type = EVENT_TYPES[n % EVENT_TYPES.length] ?? "com.blackbaud.constituent.change.v1";
  const constituent = String(280_000 + (n % 50_000));
  return JSON.stringify({
    id: randomUUID(),
    type,
    source: "OAWVIVCLINWGMTCQJN",
    specversion: "1.0",
    subject: "/environments/p-bench",
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    data: type.includes("emailaddress")
      ? { id: String(900_000 + n), constituent_id: constituent, environment_id: "p-bench" }
      : { id: constituent, environment_id: "p-bench" },
  });
}

async function generateLoad(options: LoadOptions): Promise<LoadResult> {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, { connections: options.concurrency, pipelining: 1 });
  const path = `${url.pathname}${url.search}`;
  const result: LoadResult = {
    sent: 0,
    statuses: {},
    accepted: 0,
    warmup_accepted: 0,
    errors: 0,
    wall_ms: 0,
    latencies_ms: [],
    stopped_by_time: false,
  };
  const send = async (n: number, measured: boolean): Promise<void> => {
    const started = performance.now();
    try {
      const res = await pool.request({
        path,
        method: "POST",
        headers: {
          "content-type": "application/cloudevents+json; charset=utf-8",
          origin: "eventgrid.azure.net",
        },
        body: delivery(n),
      });
      const text = await res.body.text();
      const elapsed = performance.now() - started;
      const accepted = res.statusCode === 200 ? (JSON.parse(text) as { accepted?: unknown }).accepted : 0;
      const stored = typeof accepted === "number" ? accepted : 0;
      if (!measured) {
        result.warmup_accepted += stored;
        return;
      }
      result.latencies_ms.push(elapsed);
      result.statuses[String(res.statusCode)] = (result.statuses[String(res.statusCode)] ?? 0) + 1;
      result.accepted += stored;
    } catch (error) {
      if (!measured) return;
      result.errors += 1;
      result.first_error ??= errorMessage(error);
    }
  };

  // Warm-up: a few rounds on every connection, not counted.
  const warmup = options.warmup ?? options.concurrency * 4;
  let next = 0;
  const lanes = (count: number, measured: boolean, deadline: number) =>
    Array.from({ length: options.concurrency }, async () => {
      for (;;) {
        if (next >= count) return;
        if (performance.now() > deadline) {
          if (measured) result.stopped_by_time = true;
          return;
        }
        const n = next;
        next += 1;
        if (measured) result.sent += 1;
        await send(n, measured);
      }
    });
  await Promise.all(lanes(warmup, false, Number.POSITIVE_INFINITY));

  next = 0;
  const started = performance.now();
  await Promise.all(lanes(options.requests, true, started + options.max_ms));
  result.wall_ms = performance.now() - started;
  await pool.close();
  return result;
}

generateLoad(JSON.parse(process.argv[2] ?? "{}") as LoadOptions).then(
  (r) => {
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
