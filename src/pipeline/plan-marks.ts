/**
 * Plan marks (ADR 29, 30, 31). A whole-pair plan remembers each contact it planned: the key of the
 * settings it was planned under, the contact's plan revision when its rows were read
 * (`contacts.plan_rev`, moved on by the store's triggers whenever one of those rows is written), what
 * it added to the plan (its operations, bulk places, waits, unlinked opt-outs and skipped records)
 * and the instant after which time alone could change that. The next plan of the pair reads only the
 * contact row and the mark of a contact whose revision and key are unchanged, and adds it to the
 * plan as it was, without reading its records or planning it again.
 *
 * A mark is a cache of a pure function's result, never a decision: the plan a contact gets is the
 * same with or without it. So marks are written by any whole-pair plan (dry runs too), never
 * deleted for being stale (a stale revision or key does not match), and deleted with the person.
 * The revision is read before the rows: a write after the read moves it on, so a mark written from
 * rows that changed meanwhile never matches.
 */
import { hash } from "node:crypto";
import { sql } from "kysely";
import { z } from "zod";
import { canonicalJson } from "../core/canonical-json";
import type { SkippedRecord } from "../planner/plan";
import type { ContactContribution } from "../planner/plan-pair";
import type { StoreSession } from "../store/ports";
import { concordVersion } from "../config/concord-version";
import type { ResolvedPair } from "./resolve-pair";

/** Raised when what a mark holds, or what its key covers, changes: every mark is then stale. */
const PLAN_MARKS_FORMAT = 3;

/** What a whole-pair plan marks contacts by. */
export type PlanMarking = {
  /** The key of everything every contact is planned by: the pair's settings and Concord's version. */
  key: string;
  as_of: string;
  /** Whether a contact whose mark matches is skipped (false: every contact is planned and marked anew). */
  reuse: boolean;
};

/**
 * The key of a pair's plan: the settings the planner reads (the pair with its targets and audiences,
 * field mappings, policies, implied-consent rules), the version of Concord that plans, so an upgrade
 * or a config change plans every contact again, and, when platforms are given personal links, what
 * every link depends on besides the contact (the signing key, the public URL, the links' window:
 * `personalLinks` is one link set signed for a fixed id), so a new key or window plans all again.
 * A contact's own link generation is one of its rows.
 */
export function planMarkKey(resolved: ResolvedPair, personalLinks: string | undefined): string {
  return sha256(
    canonicalJson({
      format: PLAN_MARKS_FORMAT,
      concord: concordVersion,
      pair: resolved.pair,
      fields: resolved.fields,
      policies: resolved.policies,
      implied_consent: resolved.implied_consent,
      personal_links: personalLinks ?? null,
    }),
  );
}

const sha256 = (text: string): string => hash("sha256", text, "base64");

/** A contact's skipped records without its id, as a mark keeps them (many contacts share one). */
const StoredSkipsSchema = z.array(
  z.object({
    connection_id: z.string(),
    reasons: z.array(z.looseObject({ code: z.string() })),
  }),
);
type StoredSkips = z.infer<typeof StoredSkipsSchema>;

/** The parts of a contribution besides its skipped records, as a mark keeps them. */
const WORK_PARTS = ["consent_ops", "write_ops", "bulk", "waiting", "unlinked"] as const;

export type PlanMarkRow = {
  plan_key: string;
  plan_rev: number;
  outcome_json: string;
  valid_until: string | null;
};

/**
 * Reads marks, remembering the last few hundred distinct skip-only ones: most contacts with nothing
 * to do share a handful (not in a synced audience, opted out). A mark with work is the contact's own
 * and is read once. The skipped records are checked; the work is Concord's own plan output, written
 * by the plan before and read back as written (as a stored plan is), each part an array.
 */
export class MarkReader {
  private readonly parsed = new Map<string, StoredSkips | null>();

  /**
   * What `contactId` added to the plan, when its mark was made under `key` at the contact's current
   * revision `rev` and still holds at `asOf`; undefined when the contact must be planned.
   */
  contribution(
    contactId: string,
    mark: PlanMarkRow | undefined,
    key: string,
    rev: number,
    asOf: string,
  ): ContactContribution | undefined {
    if (mark === undefined || mark.plan_key !== key || mark.plan_rev !== rev) return undefined;
    if (mark.valid_until !== null && Date.parse(mark.valid_until) <= Date.parse(asOf)) return undefined;
    const json = mark.outcome_json;
    const cached = this.parsed.get(json);
    if (cached !== undefined) return cached === null ? undefined : { skipped: withId(contactId, cached) };
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      value = undefined;
    }
    const read = readStored(value);
    // A mark that cannot be read is no mark: the contact is planned.
    if (read === undefined || Object.keys(read.work).length === 0) {
      if (this.parsed.size >= 512) this.parsed.clear();
      this.parsed.set(json, read?.skipped ?? null);
    }
    return read === undefined ? undefined : { ...read.work, skipped: withId(contactId, read.skipped) };
  }
}

const withId = (contactId: string, skips: StoredSkips): SkippedRecord[] =>
  skips.map((s) => ({ contact_id: contactId, ...s }) as SkippedRecord);

function readStored(
  value: unknown,
): { skipped: StoredSkips; work: Omit<ContactContribution, "skipped"> } | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const stored = value as Record<string, unknown>;
  const skipped = StoredSkipsSchema.safeParse(stored["skipped"]);
  if (!skipped.success) return undefined;
  const work: Record<string, unknown> = {};
  for (const part of WORK_PARTS) {
    const v = stored[part];
    if (v === undefined) continue;
    if (!Array.isArray(v)) return undefined;
    work[part] = v;
  }
  return { skipped: skipped.data, work };
}

/** A contact planned from rows that give the same contribution again, to mark. */
export type NewPlanMark = {
  contact_id: string;
  /** The contact's revision read before the rows it was planned from. */
  plan_rev: number;
  contribution: ContactContribution;
  until?: string;
};

/** Marks per statement on SQLite (six parameters each: within its limit of bound parameters). */
const MARKS_PER_STATEMENT = 200;

/** A contribution as a mark keeps it: its skipped records without the contact's id. */
function storedJson(c: ContactContribution): string {
  const { skipped, ...work } = c;
  return JSON.stringify({
    skipped: skipped.map((s) => ({ connection_id: s.connection_id, reasons: s.reasons })),
    ...work,
  });
}

/** Writes (or replaces) the marks of a pair's contacts. */
export async function writePlanMarks(
  store: StoreSession,
  pairId: string,
  key: string,
  marks: readonly NewPlanMark[],
): Promise<void> {
  if (marks.length === 0) return;
  const rows = marks.map((m) => ({
    pair_id: pairId,
    contact_id: m.contact_id,
    plan_key: key,
    plan_rev: m.plan_rev,
    outcome_json: storedJson(m.contribution),
    valid_until: m.until ?? null,
  }));
  if (store.dialect === "postgres") {
    // One statement of four arrays, however many marks: PostgreSQL parses and plans one short
    // statement, where rows of parameters cost it more than the marks themselves.
    await sql`
      insert into plan_marks (pair_id, contact_id, plan_key, plan_rev, outcome_json, valid_until)
      select ${pairId}, m.contact_id, ${key}, m.plan_rev, m.outcome_json, m.valid_until
      from unnest(
        ${rows.map((r) => r.contact_id)}::text[], ${rows.map((r) => r.plan_rev)}::integer[],
        ${rows.map((r) => r.outcome_json)}::text[], ${rows.map((r) => r.valid_until)}::text[]
      ) as m(contact_id, plan_rev, outcome_json, valid_until)
      on conflict (pair_id, contact_id) do update set
        plan_key = excluded.plan_key, plan_rev = excluded.plan_rev,
        outcome_json = excluded.outcome_json, valid_until = excluded.valid_until`.execute(store.db);
    return;
  }
  await store.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += MARKS_PER_STATEMENT)
      await tx.db
        .insertInto("plan_marks")
        .values(rows.slice(i, i + MARKS_PER_STATEMENT))
        .onConflict((oc) =>
          oc.columns(["pair_id", "contact_id"]).doUpdateSet((eb) => ({
            plan_key: eb.ref("excluded.plan_key"),
            plan_rev: eb.ref("excluded.plan_rev"),
            outcome_json: eb.ref("excluded.outcome_json"),
            valid_until: eb.ref("excluded.valid_until"),
          })),
        )
        .execute();
  });
}

/**
 * Deletes the marks of every pair not in `pairIds` (pairs the config no longer has): they would
 * never be read again, and they hold personal data (a contribution's operations carry addresses and
 * names). The stored pairs are found by one index seek each, so a store of a million marks of the
 * configured pairs is not scanned. Returns the pairs whose marks were deleted.
 */
export async function dropMarksOfOtherPairs(
  store: StoreSession,
  pairIds: readonly string[],
): Promise<string[]> {
  const keep = new Set(pairIds);
  const dropped: string[] = [];
  let after: string | undefined;
  for (;;) {
    let q = store.db.selectFrom("plan_marks").select("pair_id").orderBy("pair_id").limit(1);
    if (after !== undefined) q = q.where("pair_id", ">", after);
    const next = (await q.executeTakeFirst())?.pair_id;
    if (next === undefined) return dropped;
    after = next;
    if (keep.has(next)) continue;
    await store.db.deleteFrom("plan_marks").where("pair_id", "=", next).execute();
    dropped.push(next);
  }
}
