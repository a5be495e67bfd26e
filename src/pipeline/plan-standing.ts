/**
 * A pair's standing plan (ADR 33, ADR 34). A whole-pair run remembers what its plan was made under:
 * the plan's key (the pair's settings and Concord's version, as its marks are keyed), the instant
 * in the store's change order taken before it read any contact, the first instant at which time
 * alone could change a contact's part in it, how many contacts it covered, how many it could not
 * mark and how many operations it had. While that plan had no operations and marked every contact,
 * and no contact of the pair changed since that instant, planning again would only add every
 * contact as its mark keeps it: the same plan, nothing to do. A poll then makes no run; it only
 * notes when it looked, and moves the instant on to when it looked.
 *
 * Every write to a row a contact is planned from moves the contact's revision, and with it its
 * place in the change order (the store's triggers, ADR 30, ADR 34), whoever writes it (a poll's
 * read, a webhook's re-read, an operator, a person's own link). A contact of the pair is one linked
 * to one of its connections now, or one the plan marked (it may have left since), or one erased. So
 * a change anywhere in the pair means planning again; so does a new contact (its link is a write),
 * a contact gone (so is its link's deletion), a settings change (another key) and time passing.
 * Changes to other pairs' contacts cost the check nothing but their index entries.
 */
import { sql } from "kysely";
import { z } from "zod";
import { changedSince } from "../store/change-order";
import type { StoreSession } from "../store/ports";
import type { ResolvedPair } from "./resolve-pair";

/** The checkpoint stream, under `pair:<id>`, where a pair's standing plan is kept. */
export const PLAN_STANDING_STREAM = "plan_standing";

const PlanStandingSchema = z.object({
  key: z.string(),
  contacts: z.number().int(),
  /** Contacts the plan made no mark for (their part depends on more than their rows). */
  unmarked: z.number().int(),
  operations: z.number().int(),
  /** The instant in the store's change order the plan (or the last check) saw everything before. */
  since: z.string(),
  /** The first instant at which time alone could change a contact's part in the plan. */
  until: z.string().nullable(),
  run_id: z.string(),
  planned_at: z.string(),
  /** When a poll last found the plan standing (or the plan was made). */
  checked_at: z.string(),
});
export type PlanStanding = z.infer<typeof PlanStandingSchema>;

const PAIR_SCOPE = "pair:";
const scopeOf = (pairId: string): string => `${PAIR_SCOPE}${pairId}`;

/** The pair's standing plan as last recorded; undefined when none was, or it cannot be read. */
export async function readPlanStanding(
  store: Pick<StoreSession, "checkpoints">,
  pairId: string,
): Promise<PlanStanding | undefined> {
  const row = await store.checkpoints.get(scopeOf(pairId), PLAN_STANDING_STREAM);
  const parsed = PlanStandingSchema.safeParse(row?.value);
  return parsed.success ? parsed.data : undefined;
}

/** Every pair's standing plan as last recorded, by pair id (one read; unreadable ones left out). */
export async function readPlanStandings(store: Pick<StoreSession, "db">): Promise<Map<string, PlanStanding>> {
  const rows = await store.db
    .selectFrom("checkpoints")
    .select(["connection_id", "value_json"])
    .where("stream", "=", PLAN_STANDING_STREAM)
    .execute();
  const out = new Map<string, PlanStanding>();
  for (const row of rows) {
    if (!row.connection_id.startsWith(PAIR_SCOPE)) continue;
    let value: unknown;
    try {
      value = JSON.parse(row.value_json);
    } catch {
      continue;
    }
    const parsed = PlanStandingSchema.safeParse(value);
    if (parsed.success) out.set(row.connection_id.slice(PAIR_SCOPE.length), parsed.data);
  }
  return out;
}

/** Records what a whole-pair run planned under (after it executed). */
export async function recordPlanStanding(
  store: Pick<StoreSession, "checkpoints">,
  pairId: string,
  standing: PlanStanding,
): Promise<void> {
  await store.checkpoints.set(scopeOf(pairId), PLAN_STANDING_STREAM, standing);
}

/**
 * Whether the pair's last whole plan stands at `asOf` under `key`: it had no operations and marked
 * every contact, the pair's list rules change nothing now, time has not reached its `until`, and
 * no contact of the pair changed since its instant. One statement over the contacts changed since
 * then (an index range); on success the standing comes back with the instant moved on to the check.
 */
export async function planStands(
  store: Pick<StoreSession, "db" | "dialect" | "checkpoints">,
  resolved: ResolvedPair,
  key: string,
  asOf: string,
): Promise<PlanStanding | undefined> {
  const standing = await readPlanStanding(store, resolved.pair.id);
  if (standing === undefined || standing.operations !== 0 || standing.unmarked !== 0) return undefined;
  if (standing.key !== key || resolved.list_changes.length > 0) return undefined;
  if (standing.until !== null && standing.until <= asOf) return undefined;
  const connections = [
    resolved.pair.crm.connection_id,
    ...resolved.pair.platforms.map((p) => p.connection_id),
  ];
  const { changed, at } = await changedSince(
    store,
    standing.since,
    sql`(c.erased_at is not null
      or exists (select 1 from links l where l.contact_id = c.id and l.connection_id in (${sql.join(connections)}))
      or exists (select 1 from plan_marks m where m.pair_id = ${resolved.pair.id} and m.contact_id = c.id))`,
  );
  return changed ? undefined : { ...standing, since: at };
}
