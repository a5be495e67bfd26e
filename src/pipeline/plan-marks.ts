/**
 * Plan marks (ADR 29). A whole-pair plan remembers each contact it had nothing to do for: a
 * fingerprint of every row and setting the contact was planned from, the records it skipped (with
 * their reasons) and the instant after which time alone could change that. The next plan of the
 * pair reads the same rows, without the records' payloads, and counts a contact whose fingerprint
 * is unchanged as it was, without parsing or planning it again.
 *
 * A mark is a cache of a pure function's result, never a decision: the plan a contact gets is the
 * same with or without it. So marks are written by any whole-pair plan (dry runs too), never
 * deleted for being stale (a stale fingerprint does not match), and deleted with the person.
 */
import { hash } from "node:crypto";
import type { Selectable } from "kysely";
import { z } from "zod";
import { canonicalJson } from "../core/canonical-json";
import type { SkippedRecord } from "../planner/plan";
import type { StoreSession } from "../store/ports";
import type { ConsentEventsTable, ContactsTable, PlatformRejectionsTable } from "../store/schema";
import { concordVersion } from "../config/concord-version";
import type { ResolvedPair } from "./resolve-pair";

/** Raised when what a mark holds, or how its fingerprint is made, changes: every mark is then stale. */
const PLAN_MARKS_FORMAT = 1;

/** What a whole-pair plan marks contacts by. */
export type PlanMarking = {
  /** The fingerprint of everything every contact is planned by: the pair's settings and Concord's version. */
  key: string;
  as_of: string;
  /** Whether a contact whose mark matches is skipped (false: every contact is planned and marked anew). */
  reuse: boolean;
  /** A contact's input from outside its rows (its personal links), when there is one. */
  extra?: (contactId: string) => string;
};

/**
 * The key of a pair's plan: the settings the planner reads (the pair with its targets and audiences,
 * field mappings, policies, implied-consent rules, whether personal links are written) and the
 * version of Concord that plans, so an upgrade or a config change plans every contact again.
 */
export function planMarkKey(resolved: ResolvedPair, personalLinks: boolean): string {
  return sha256(
    canonicalJson({
      format: PLAN_MARKS_FORMAT,
      concord: concordVersion,
      pair: resolved.pair,
      fields: resolved.fields,
      policies: resolved.policies,
      implied_consent: resolved.implied_consent,
      personal_links: personalLinks,
    }),
  );
}

/** A linked record as planning reads it: the link and its snapshot. */
export type PlanLinkRow = {
  contact_id: string;
  connection_id: string;
  external_id: string;
  origin: string;
  content_hash: string;
  payload_json: string;
};

/** One contact's rows, as stored: everything its plan is made from. */
export type ContactRows = {
  contact: Selectable<ContactsTable>;
  links: PlanLinkRow[];
  /** In ledger order. */
  events: Selectable<ConsentEventsTable>[];
  baseline?: string;
  /** Connections its confirmation email was already sent on. */
  resubscribed: string[];
  rejections: Selectable<PlatformRejectionsTable>[];
};

/**
 * The fingerprint of a contact's plan input: the key, the contact's own columns, each linked
 * record's identity, origin and content hash (which changes with its payload), each ledger event's
 * id and chain hash and whether its evidence was erased, the baselines, the confirmation emails
 * sent, the addresses platforms refused, and `extra`.
 */
export function contactFingerprint(key: string, rows: ContactRows, extra: string): string {
  const c = rows.contact;
  const parts: (string | null)[] = [
    key,
    c.id,
    c.type,
    c.given_name,
    c.family_name,
    c.organization_name,
    c.primary_email,
    c.flags_json,
    c.erased_at,
    rows.baseline ?? null,
    extra,
  ];
  const links =
    rows.links.length < 2
      ? rows.links
      : [...rows.links].sort((a, b) =>
          a.connection_id !== b.connection_id
            ? a.connection_id < b.connection_id
              ? -1
              : 1
            : a.external_id < b.external_id
              ? -1
              : a.external_id > b.external_id
                ? 1
                : 0,
        );
  for (const l of links) parts.push("l", l.connection_id, l.external_id, l.origin, l.content_hash);
  for (const e of rows.events) parts.push("e", e.id, e.hash, e.evidence_erased_at);
  for (const r of [...rows.resubscribed].sort()) parts.push("s", r);
  const rejections = [...rows.rejections].sort((a, b) => (a.connection_id < b.connection_id ? -1 : 1));
  for (const r of rejections) parts.push("r", r.connection_id, r.code, r.message, r.email_match_key);
  return sha256(JSON.stringify(parts));
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

export type PlanMarkRow = { fingerprint: string; skipped_json: string; valid_until: string | null };

/**
 * Reads marks' skipped records, remembering the last few hundred distinct ones: most settled
 * contacts share a handful (not in a synced audience, opted out).
 */
export class SettledReader {
  private readonly parsed = new Map<string, StoredSkips | null>();

  /**
   * The records `contactId` was skipped with, when its mark is for `fingerprint` and still holds
   * at `asOf`; undefined when the contact must be planned.
   */
  settled(
    contactId: string,
    mark: PlanMarkRow | undefined,
    fingerprint: string,
    asOf: string,
  ): SkippedRecord[] | undefined {
    if (mark === undefined || mark.fingerprint !== fingerprint) return undefined;
    if (mark.valid_until !== null && Date.parse(mark.valid_until) <= Date.parse(asOf)) return undefined;
    const skips = this.read(mark.skipped_json);
    return skips?.map((s) => ({ contact_id: contactId, ...s }) as SkippedRecord);
  }

  private read(json: string): StoredSkips | null {
    let skips = this.parsed.get(json);
    if (skips === undefined) {
      let value: unknown;
      try {
        value = JSON.parse(json);
      } catch {
        value = undefined;
      }
      const result = StoredSkipsSchema.safeParse(value);
      // A mark that cannot be read is no mark: the contact is planned.
      skips = result.success ? result.data : null;
      if (this.parsed.size >= 512) this.parsed.clear();
      this.parsed.set(json, skips);
    }
    return skips;
  }
}

/** A contact planned with nothing to do, to mark. */
export type NewPlanMark = {
  contact_id: string;
  fingerprint: string;
  skipped: readonly SkippedRecord[];
  until?: string;
};

/** Marks per statement (five parameters each: within both databases' limits). */
const MARKS_PER_STATEMENT = 200;

/** Writes (or replaces) the marks of a pair's settled contacts. */
export async function writePlanMarks(
  store: StoreSession,
  pairId: string,
  marks: readonly NewPlanMark[],
): Promise<void> {
  if (marks.length === 0) return;
  const rows = marks.map((m) => ({
    pair_id: pairId,
    contact_id: m.contact_id,
    fingerprint: m.fingerprint,
    skipped_json: JSON.stringify(
      m.skipped.map((s) => ({ connection_id: s.connection_id, reasons: s.reasons })),
    ),
    valid_until: m.until ?? null,
  }));
  await store.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += MARKS_PER_STATEMENT)
      await tx.db
        .insertInto("plan_marks")
        .values(rows.slice(i, i + MARKS_PER_STATEMENT))
        .onConflict((oc) =>
          oc.columns(["pair_id", "contact_id"]).doUpdateSet((eb) => ({
            fingerprint: eb.ref("excluded.fingerprint"),
            skipped_json: eb.ref("excluded.skipped_json"),
            valid_until: eb.ref("excluded.valid_until"),
          })),
        )
        .execute();
  });
}
