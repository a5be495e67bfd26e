/**
 * One measured phase of the planning benchmark, in a process of its own so its peak RSS is its
 * own and running out of memory ends this process, not the bench: `scan` reads the columns the
 * planner needs with plain range scans and only counts them; `plan` runs `planFromStore` over every
 * contact (a first plan marks the contacts it finds settled; a plan again skips them, ADR 29).
 * Prints one line `RESULT {json}` on stdout.
 */
import { planFromStore } from "../src/runs/sync-pair";
import { openStore } from "../src/store/open-store";
import type { StoreSession } from "../src/store/ports";
import { sampleRss, startTimer } from "./bench-kit";
import { BENCH_PAIR, PAIR_ID } from "./generate-store";
import { applyV8Settings } from "../src/v8-settings";

export type ChildOptions = {
  phase: "scan" | "plan";
  file?: string;
  url?: string;
  schema?: string;
};

export type ScanResult = {
  phase: "scan";
  ms: number;
  peak_rss_bytes: number;
  contacts: number;
  rows: number;
  payload_bytes: number;
};

export type PlanResult = {
  phase: "plan";
  ms: number;
  peak_rss_bytes: number;
  heap_used_before_bytes: number;
  /** Heap in use once planned, with the plan and the moved baselines still held (contacts stream through). */
  heap_used_after_bytes: number;
  contacts: number;
  /** Of `contacts`, those settled by the marks of an earlier plan (not planned again). */
  unchanged: number;
  baselines_moved: number;
  operations: number;
  skipped: number;
  waiting: number;
  unlinked_opt_outs: number;
  /** Contacts touched, by connection and operation kind, with the reason codes seen. */
  by_kind: Record<string, { operations: number; contacts: number }>;
  reasons: Record<string, number>;
  skipped_by_reason: Record<string, number>;
  gains: Record<string, number>;
};

/** Contacts a page of the scan (the loader also plans 500 at a time). */
const CHUNK = 500;

/**
 * The reference: a plain scan of the columns the planner needs, table by table in contact order, a
 * page of contacts and then the same range of contact ids in each other table (not the loader's
 * queries, which look contacts up by lists of ids), with nothing parsed or built: payload lengths
 * are summed so the strings are touched.
 */
async function scan(store: StoreSession): Promise<Omit<ScanResult, "phase" | "ms" | "peak_rss_bytes">> {
  let after = "";
  let contacts = 0;
  let rows = 0;
  let payload_bytes = 0;
  for (;;) {
    // A page of contacts in id order, then the same range of ids in each other table.
    const c = await store.db
      .selectFrom("contacts")
      .selectAll()
      .where("id", ">", after)
      .orderBy("id")
      .limit(CHUNK)
      .execute();
    const first = c[0]?.id;
    const last = c.at(-1)?.id;
    if (first === undefined || last === undefined) break;
    after = last;
    const [l, e, b, r, x] = await Promise.all([
      store.db
        .selectFrom("links")
        .innerJoin("record_snapshots", (j) =>
          j
            .onRef("record_snapshots.connection_id", "=", "links.connection_id")
            .onRef("record_snapshots.external_id", "=", "links.external_id"),
        )
        .select(["links.contact_id", "links.connection_id", "links.origin", "record_snapshots.payload_json"])
        .where("links.contact_id", ">=", first)
        .where("links.contact_id", "<=", last)
        .execute(),
      store.db
        .selectFrom("consent_events")
        .selectAll()
        .where("contact_id", ">=", first)
        .where("contact_id", "<=", last)
        .execute(),
      store.db
        .selectFrom("baselines")
        .select(["contact_id", "values_json"])
        .where("pair_id", "=", PAIR_ID)
        .where("contact_id", ">=", first)
        .where("contact_id", "<=", last)
        .execute(),
      store.db
        .selectFrom("operations")
        .select(["contact_id", "target_connection"])
        .where("kind", "=", "request_resubscribe")
        .where("contact_id", ">=", first)
        .where("contact_id", "<=", last)
        .execute(),
      store.db
        .selectFrom("platform_rejections")
        .selectAll()
        .where("contact_id", ">=", first)
        .where("contact_id", "<=", last)
        .execute(),
    ]);
    contacts += c.length;
    rows += c.length + l.length + e.length + b.length + r.length + x.length;
    for (const row of l) payload_bytes += row.payload_json.length;
    for (const row of e) payload_bytes += row.event_json.length + row.evidence_json.length;
    for (const row of b) payload_bytes += row.values_json.length;
  }
  return { contacts, rows, payload_bytes };
}

async function main(): Promise<void> {
  // The process settings `concord` runs with: the figures are the product's.
  applyV8Settings();
  const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
  const store = await openStore(
    options.url !== undefined
      ? { url: options.url, schema: options.schema, migrate: false, pool_size: 5 }
      : { file: options.file, migrate: false },
  );
  try {
    if (options.phase === "scan") {
      const rss = sampleRss();
      const elapsed = startTimer();
      const counted = await scan(store);
      const ms = elapsed();
      const result: ScanResult = { phase: "scan", ms, peak_rss_bytes: rss.stop(), ...counted };
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
      return;
    }
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const rss = sampleRss();
    const elapsed = startTimer();
    const { plan, contacts_planned, contacts_unchanged, baselines } = await planFromStore(
      { store, now: () => new Date() },
      BENCH_PAIR,
    );
    const ms = elapsed();
    const peak = rss.stop();
    const heapUsed = process.memoryUsage().heapUsed;
    const by_kind: PlanResult["by_kind"] = {};
    for (const [connection, kinds] of Object.entries(plan.counts.operations))
      for (const [kind, c] of Object.entries(kinds)) if (c) by_kind[`${connection} ${kind}`] = c;
    const reasons: Record<string, number> = {};
    for (const o of plan.operations)
      reasons[`${o.connection_id} ${o.reason.code}`] =
        (reasons[`${o.connection_id} ${o.reason.code}`] ?? 0) + o.contact_ids.length;
    const skipped_by_reason: Record<string, number> = {};
    for (const [connection, byReason] of Object.entries(plan.counts.skipped))
      for (const [reason, n] of Object.entries(byReason)) skipped_by_reason[`${connection} ${reason}`] = n;
    const result: PlanResult = {
      phase: "plan",
      ms,
      peak_rss_bytes: peak,
      heap_used_before_bytes: heapBefore,
      heap_used_after_bytes: heapUsed,
      contacts: contacts_planned,
      unchanged: contacts_unchanged,
      baselines_moved: baselines.size,
      operations: plan.operations.length,
      skipped: plan.skipped.length,
      waiting: plan.waiting.length,
      unlinked_opt_outs: plan.unlinked_opt_outs.length,
      by_kind,
      reasons,
      skipped_by_reason,
      gains: plan.gains,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await store.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
