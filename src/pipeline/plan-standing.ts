/**
 * A pair's standing plan (ADR 33). A whole-pair run remembers what its plan was made under: the
 * plan's key (the pair's settings and Concord's version, as its marks are keyed), how many contacts
 * it covered and how many operations it had. While that plan had no operations, and every contact
 * of the pair still has a mark under that key at its current revision that time has not run out,
 * planning again would only add every contact as its mark keeps it: the same plan, nothing to do.
 * A poll then makes no run; it only notes when it looked.
 *
 * Every write to a row a contact is planned from moves the contact's revision (the store's
 * triggers, ADR 30), whoever writes it (a poll's read, a webhook's re-read, an operator, a person's
 * own link), so a change anywhere means planning again; so does a new contact (it has no mark), a
 * contact gone (the count differs), a settings change (another key) and a mark's time running out.
 */
import { sql } from "kysely";
import { z } from "zod";
import type { StoreSession } from "../store/ports";
import type { ResolvedPair } from "./resolve-pair";

/** The checkpoint stream, under `pair:<id>`, where a pair's standing plan is kept. */
export const PLAN_STANDING_STREAM = "plan_standing";

const PlanStandingSchema = z.object({
  key: z.string(),
  contacts: z.number().int(),
  operations: z.number().int(),
  run_id: z.string(),
  planned_at: z.string(),
  /** When a poll last found the plan standing (or the plan was made). */
  checked_at: z.string(),
});
export type PlanStanding = z.infer<typeof PlanStandingSchema>;

const scopeOf = (pairId: string): string => `pair:${pairId}`;

/** The pair's standing plan as last recorded; undefined when none was, or it cannot be read. */
export async function readPlanStanding(
  store: Pick<StoreSession, "checkpoints">,
  pairId: string,
): Promise<PlanStanding | undefined> {
  const row = await store.checkpoints.get(scopeOf(pairId), PLAN_STANDING_STREAM);
  const parsed = PlanStandingSchema.safeParse(row?.value);
  return parsed.success ? parsed.data : undefined;
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
 * Whether the pair's last whole plan stands at `asOf` under `key`: it had no operations, the pair's
 * list rules change nothing now, and every contact of the pair (as many as it covered) has a mark
 * under `key` at its current revision, valid at `asOf`. One statement over the pair's contacts and
 * marks; nothing else is read.
 */
export async function planStands(
  store: Pick<StoreSession, "db" | "checkpoints">,
  resolved: ResolvedPair,
  key: string,
  asOf: string,
): Promise<PlanStanding | undefined> {
  const standing = await readPlanStanding(store, resolved.pair.id);
  if (standing === undefined || standing.operations !== 0 || standing.key !== key) return undefined;
  if (resolved.list_changes.length > 0) return undefined;
  const connections = [
    resolved.pair.crm.connection_id,
    ...resolved.pair.platforms.map((p) => p.connection_id),
  ];
  const row = await store.db
    .selectFrom("contacts")
    .leftJoin("plan_marks", (j) =>
      j.onRef("plan_marks.contact_id", "=", "contacts.id").on("plan_marks.pair_id", "=", resolved.pair.id),
    )
    .select([
      sql<number | string>`count(*)`.as("contacts"),
      sql<number | string | null>`sum(case when plan_marks.plan_key = ${key}
        and plan_marks.plan_rev = contacts.plan_rev
        and (plan_marks.valid_until is null or plan_marks.valid_until > ${asOf}) then 1 else 0 end)`.as(
        "marked",
      ),
    ])
    .where("contacts.id", "in", (eb) =>
      eb.selectFrom("links").select("links.contact_id").where("links.connection_id", "in", connections),
    )
    .executeTakeFirst();
  const contacts = Number(row?.contacts ?? 0);
  const marked = Number(row?.marked ?? 0);
  return contacts === standing.contacts && marked === contacts ? standing : undefined;
}
