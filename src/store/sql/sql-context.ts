/** What every SQL repository is built from: a kysely handle (connection or transaction) and the clock. */
import type { Kysely } from "kysely";
import type { Database } from "../schema";

export type SqlContext = {
  db: Kysely<Database>;
  clock: () => Date;
};

export const isoNow = (ctx: SqlContext): string => ctx.clock().toISOString();

/** Row counts come back as bigint from both drivers; tiny helper so call sites stay readable. */
export const affected = (count: bigint | undefined): number => Number(count ?? 0n);

/** Ids at most this many to a statement's `in (…)` list: far within both databases' parameter limits. */
export const IN_LIST_CHUNK = 500;

/** `values` in chunks for `in (…)` lists. */
export function inChunks<T>(values: readonly T[]): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < values.length; i += IN_LIST_CHUNK) chunks.push(values.slice(i, i + IN_LIST_CHUNK));
  return chunks;
}
