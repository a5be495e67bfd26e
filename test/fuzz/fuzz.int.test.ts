/**
 * Generated bad input (fast-check), at least 10,000 inputs for each door Concord opens: the REST
 * API, the webhook receivers, `config check` and the CSV exports. Whatever arrives, the answer is
 * never in the 5xx range and nothing throws; each door's own promise is checked too (a CSV parses
 * back to what was written, with no cell a spreadsheet would run). `CONCORD_FUZZ_RUNS` changes the
 * count (default 10,000).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import fc from "fast-check";
import { stringify as toYaml, parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configWarnings } from "../../src/config/config-warnings";
import { parseConfigText } from "../../src/config/load-config-file";
import { differencesCsv, DIFFERENCE_CSV_COLUMNS } from "../../src/runs/differences-csv";
import { exportLedger } from "../../src/ledger/export-ledger";
import { appendConsentEvents } from "../../src/ledger/consent-ledger";
import { startApiHarness, type ApiHarness } from "../support/api-harness";
import { individual } from "../support/sync-harness";
import { TEST_ENV } from "../support/test-credentials";

const RUNS = Math.max(1, Number(process.env["CONCORD_FUZZ_RUNS"] ?? 10_000) || 10_000);
const root = join(import.meta.dirname, "..", "..");

/** Mostly `valid`, sometimes anything: generated input that also gets past the first check. */
const mostly = <T>(valid: fc.Arbitrary<T>, other: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: other });

/** Text a client might send: anything, JSON-ish, huge, with control characters and other scripts. */
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom("", " ", "null", "0", "-1", "1e309", "NaN", "../../etc/passwd", "%00", "\u0000", "=1+1"),
  fc.string({ unit: "binary", maxLength: 200 }),
);
const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(
    fc.constantFrom(
      "email",
      "reason",
      "reference",
      "by",
      "dry_run",
      "fix",
      "pair_id",
      "status",
      "password",
      "full",
      "contact_ids",
      "note",
    ),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: 4 },
  ),
);

describe("fuzzing the doors Concord opens", () => {
  let a: ApiHarness;
  let routes: { method: string; path: string }[];
  let contactId: string;
  let auth: { cookie: string; csrf: string };

  beforeAll(async () => {
    a = await startApiHarness({
      harness: {
        mailchimp: true,
        configure: (raw) => {
          for (const c of raw["connections"] as Record<string, unknown>[])
            if (c["id"] === "re-nxt" || c["id"] === "mc")
              c["webhooks"] = { enabled: true, secret: { env: "WEBHOOK_SECRET" } };
        },
      },
    });
    await a.h.seedRe([individual("ada@example.org", "Ada", "Example")]);
    await a.runtime.syncNow();
    // The webhooks' background drain is stopped: the fuzz is about what the doors accept.
    await a.runtime.stop();
    contactId = (await a.h.store.db.selectFrom("contacts").select("id").executeTakeFirstOrThrow()).id;
    auth = await a.signIn();
    const doc = (await a.app.inject({ url: "/openapi.json" })).json<{
      paths: Record<string, Record<string, unknown>>;
    }>();
    routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .map((m) => m.toUpperCase())
        .filter((m) => ["GET", "POST", "DELETE"].includes(m))
        // Signing out would only turn the rest into 401s; signing in is fuzzed by its own tests.
        .filter(() => path !== "/api/session")
        .map((method) => ({ method, path })),
    );
  }, 120_000);
  afterAll(async () => {
    await a.close();
  });

  it(`answers ${RUNS} generated REST API requests without a 5xx`, async () => {
    expect(routes.length).toBeGreaterThan(15);
    const request = fc.record({
      route: fc.constantFrom(...routes),
      params: fc.array(fc.oneof(text, fc.constantFrom("re-cc", "re-nxt", "cc-main")), {
        minLength: 3,
        maxLength: 3,
      }),
      known: fc.boolean(),
      query: fc.dictionary(
        fc.constantFrom("limit", "cursor", "status", "pair", "q", "since", "format", "days"),
        text,
        {
          maxKeys: 3,
        },
      ),
      body: fc.option(fc.oneof(jsonBody, text), { nil: undefined }),
      type: fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", undefined),
    });
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        let i = 0;
        const path = r.route.path.replace(/\{[^}]+\}/g, () => {
          const value = r.known && i === 0 ? contactId : (r.params[i] ?? "x");
          i += 1;
          return encodeURIComponent(value);
        });
        const query = new URLSearchParams(r.query).toString();
        const payload =
          r.body === undefined ? undefined : typeof r.body === "string" ? r.body : JSON.stringify(r.body);
        const answer = await a.app.inject({
          method: r.route.method as "GET" | "POST" | "DELETE",
          url: query ? `${path}?${query}` : path,
          headers: {
            ...(r.type !== undefined && payload !== undefined ? { "content-type": r.type } : {}),
            cookie: auth.cookie,
            "x-csrf-token": auth.csrf,
          },
          ...(payload !== undefined && r.route.method !== "GET" ? { payload } : {}),
        });
        expect(answer.statusCode, `${r.route.method} ${path} → ${answer.body.slice(0, 300)}`).toBeLessThan(
          500,
        );
        statuses.set(answer.statusCode, (statuses.get(answer.statusCode) ?? 0) + 1);
      }),
      { numRuns: RUNS },
    );
    // The requests reach the handlers (signed in, CSRF sent), not only the door's checks.
    expect([...statuses.keys()].filter((status) => status < 300).length).toBeGreaterThan(0);
    expect(statuses.get(404) ?? 0).toBeGreaterThan(0);
    console.log(
      `REST fuzz answers by status: ${JSON.stringify(Object.fromEntries([...statuses].sort((x, y) => x[0] - y[0])))}`,
    );
  }, 900_000);

  it(`answers ${RUNS} generated webhook deliveries without a 5xx, and stores only what verifies`, async () => {
    const cloudEvent = fc.record({
      specversion: mostly(fc.constant("1.0"), text),
      type: mostly(
        fc.constantFrom(
          "com.blackbaud.constituent.change.v1",
          "com.blackbaud.constituent.delete.v1",
          "com.blackbaud.constituent.emailaddress.change.v1",
        ),
        text,
      ),
      source: text,
      id: mostly(fc.uuid(), text),
      time: mostly(
        fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString()),
        text,
      ),
      data: fc.option(
        fc.record({
          id: mostly(fc.constantFrom("280", "281"), text),
          constituent_id: mostly(fc.constantFrom("280", "281"), text),
        }),
        { nil: undefined, freq: 8 },
      ),
    });
    const mailchimpForm = fc
      .record({
        type: mostly(
          fc.constantFrom("subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign"),
          text,
        ),
        fired_at: mostly(fc.constant("2026-06-01 12:00:00"), text),
        "data[id]": mostly(fc.stringMatching(/^[0-9a-f]{32}$/), text),
        "data[new_id]": text,
        "data[email]": text,
      })
      .map((f) => new URLSearchParams(f).toString());
    const delivery = fc.record({
      connection: mostly(fc.constantFrom("re-nxt", "mc"), fc.constantFrom("cc-main", "nope")),
      key: mostly(fc.constant(TEST_ENV.WEBHOOK_SECRET), text),
      method: mostly(fc.constant("POST"), fc.constantFrom("GET", "OPTIONS", "DELETE")),
      body: fc.oneof(
        fc.array(cloudEvent, { maxLength: 5 }).map((e) => JSON.stringify(e)),
        cloudEvent.map((e) => JSON.stringify(e)),
        mailchimpForm,
        text,
        jsonBody.map((b) => JSON.stringify(b)),
      ),
      origin: fc.option(text, { nil: undefined }),
      type: fc.constantFrom(
        "application/cloudevents+json",
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
      ),
    });
    const before = await a.h.store.inbox.countPending();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(delivery, async (d) => {
        const keyParam = d.connection === "mc" ? "key" : "webhookKey";
        const answer = await a.app.inject({
          method: d.method as "POST",
          url: `/webhooks/${d.connection}?${keyParam}=${encodeURIComponent(d.key)}`,
          headers: {
            "content-type": d.type,
            ...(d.origin !== undefined
              ? { "webhook-request-origin": d.origin.replace(/[^\x20-\x7e]/g, "") }
              : {}),
          },
          ...(d.method === "POST" ? { payload: d.body } : {}),
        });
        expect(answer.statusCode, `${d.method} ${d.connection}: ${answer.body.slice(0, 300)}`).toBeLessThan(
          500,
        );
        if (answer.statusCode === 200 && d.method === "POST") {
          const body = answer.json<{ accepted?: number }>();
          accepted += body.accepted ?? 0;
          // Only a delivery with the right key is ever taken.
          expect(d.key).toBe(TEST_ENV.WEBHOOK_SECRET);
        }
      }),
      { numRuns: RUNS },
    );
    expect(await a.h.store.inbox.countPending()).toBeGreaterThanOrEqual(before);
    expect(accepted).toBeGreaterThan(0);
  }, 900_000);

  it(`checks ${RUNS} generated config files with a located error or a config, never a throw`, () => {
    const example = parseYaml(
      readFileSync(join(root, "examples", "concord.example.yaml"), "utf8"),
    ) as unknown;
    /** Replaces, drops or adds one value somewhere in the example: a plausible mistake. */
    const mutate = (value: unknown, path: number[], replacement: unknown, drop: boolean): unknown => {
      if (path.length === 0 || value === null || typeof value !== "object") return replacement;
      const entries = Array.isArray(value)
        ? value.map((v, i) => [String(i), v] as const)
        : Object.entries(value);
      if (entries.length === 0) return replacement;
      const [head = 0, ...rest] = path;
      const at = head % entries.length;
      const next = entries.flatMap(([k, v], i) =>
        i !== at
          ? [[k, v] as const]
          : drop && rest.length === 0
            ? []
            : [[k, mutate(v, rest, replacement, drop)] as const],
      );
      return Array.isArray(value) ? next.map(([, v]) => v) : Object.fromEntries(next);
    };
    const file = fc.oneof(
      { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
      {
        weight: 4,
        arbitrary: fc
          .record({
            path: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
            replacement: fc.oneof(fc.jsonValue({ maxDepth: 2 }), text),
            drop: fc.boolean(),
          })
          .map((m) => toYaml(mutate(example, m.path, m.replacement, m.drop))),
      },
    );
    let valid = 0;
    fc.assert(
      fc.property(file, (yaml) => {
        const result = parseConfigText(yaml, "fuzz.yaml");
        if (result.ok) {
          valid += 1;
          expect(Array.isArray(configWarnings(result.config))).toBe(true);
          return;
        }
        expect(result.errors.length).toBeGreaterThan(0);
        for (const e of result.errors) {
          expect(e.file).toBe("fuzz.yaml");
          expect(e.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: RUNS },
    );
    // The mutations leave some files valid: the fuzz reaches past the first check.
    expect(valid).toBeGreaterThan(0);
  });

  it(`writes ${RUNS} generated CSV rows that parse back, with no cell a spreadsheet would run`, async () => {
    const cell = fc.oneof(
      text,
      fc.constantFrom('=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", 'a"b', "a,b", "a\nb"),
    );
    const difference = fc.record({
      email: fc.option(cell, { nil: null }),
      contact_id: cell,
      connection_id: cell,
      scope: fc.oneof(
        fc.constant({ kind: "global" as const }),
        cell.map((topic) => ({ kind: "topic" as const, topic })),
      ),
      kind: cell,
      fixable: fc.boolean(),
      system_shows: cell,
      rules_say: cell,
      cause: cell,
    });
    const formula = /^[=+\-@\t\r]/;
    await fc.assert(
      fc.asyncProperty(fc.array(difference, { minLength: 1, maxLength: 3 }), cell, async (diffs, pairId) => {
        const csv = differencesCsv([{ pair_id: pairId, differences: diffs as never }]);
        const rows: string[][] = parseCsv(csv);
        expect(rows[0]).toEqual([...DIFFERENCE_CSV_COLUMNS]);
        expect(rows).toHaveLength(diffs.length + 1);
        for (const [i, d] of diffs.entries()) {
          const row = rows[i + 1] ?? [];
          for (const value of row)
            expect(value, `a cell a spreadsheet would run: ${value}`).not.toMatch(formula);
          const plain = (v: string) => (formula.test(v) ? `'${v}` : v);
          expect(row[8]).toBe(plain(d.rules_say));
          expect(row[9]).toBe(plain(d.cause));
        }
      }),
      { numRuns: RUNS },
    );

    // The ledger export: evidence text of any shape comes back as written, never as a formula.
    const reasons = fc.sample(cell, 200);
    await appendConsentEvents(
      a.h.store,
      reasons.map((reason, i) => ({
        kind: "opt_out" as const,
        scope: { kind: "global" as const },
        contact_id: "con_fuzz",
        channel: "email" as const,
        source: { system: "constant-contact", connection: "cc-main" },
        mechanism: "api" as const,
        actor: { kind: "contact" as const },
        occurred_at: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
        observed_at: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
        evidence: { reason: reason.slice(0, 1000) },
      })),
    );
    const chunks: Buffer[] = [];
    const { PassThrough } = await import("node:stream");
    const out = new PassThrough();
    out.on("data", (c: Buffer) => chunks.push(c));
    await exportLedger(a.h.store, "csv", out, { contact_id: "con_fuzz" });
    const records = parseCsv<Record<string, string>>(Buffer.concat(chunks).toString("utf8"), {
      columns: true,
    });
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) for (const v of Object.values(r)) expect(v).not.toMatch(formula);
  }, 900_000);
});
