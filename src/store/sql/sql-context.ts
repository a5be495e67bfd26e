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
