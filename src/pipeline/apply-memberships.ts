/**
 * Applies a complete membership read of some lists to the stored records of a connection: a record
 * that joined or left one of those lists without changing otherwise (Raiser's Edge NXT static lists)
 * gets its snapshot's `list_ids` corrected, so the planner sees the move at the next plan.
 */
import { z } from "zod";
import { JsonValueSchema, type StoreSession } from "../store/ports";
import { contentHash } from "./content-hash";

const PAGE = 1000;
const ListIdsSchema = z
  .object({ list_ids: z.array(z.string()).optional(), stopped_list_ids: z.array(z.string()).optional() })
  .loose();

/** Returns how many stored records changed; runs in the caller's transaction. */
export async function applyMemberships(
  tx: StoreSession,
  connection_id: string,
  memberships: {
    list_ids: readonly string[];
    members: Readonly<Record<string, readonly string[]>>;
    stopped?: Readonly<Record<string, readonly string[]>>;
  },
): Promise<number> {
  const read = new Set(memberships.list_ids);
  let changed = 0;
  let after = "";
  for (;;) {
    const rows = await tx.db
      .selectFrom("record_snapshots")
      .select(["external_id", "payload_json"])
      .where("connection_id", "=", connection_id)
      .where("external_id", ">", after)
      .orderBy("external_id")
      .limit(PAGE)
      .execute();
    if (rows.length === 0) return changed;
    after = rows[rows.length - 1]?.external_id ?? after;
    for (const row of rows) {
      const payload = ListIdsSchema.safeParse(JSON.parse(row.payload_json));
      if (!payload.success) continue;
      const before = payload.data.list_ids ?? [];
      const next = corrected(before, read, memberships.members[row.external_id]);
      const stoppedBefore = payload.data.stopped_list_ids ?? [];
      const stopped = corrected(stoppedBefore, read, memberships.stopped?.[row.external_id]);
      if (sameSet(before, next) && sameSet(stoppedBefore, stopped)) continue;
      const { stopped_list_ids: _was, ...rest } = payload.data;
      const record = {
        ...rest,
        list_ids: next,
        ...(stopped.length > 0 ? { stopped_list_ids: stopped } : {}),
      };
      await tx.snapshots.put({
        connection_id,
        external_id: row.external_id,
        content_hash: contentHash(record),
        payload: JsonValueSchema.parse(record),
      });
      changed += 1;
    }
  }
}

/** The lists not read kept as they were, the ones read as the read found them. */
function corrected(
  before: readonly string[],
  read: ReadonlySet<string>,
  found: readonly string[] | undefined,
): string[] {
  return [...new Set([...before.filter((id) => !read.has(id)), ...(found ?? [])])].sort();
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}
