/**
 * A column compared as an expression (`column || ''`), so the database cannot pick an index that
 * starts with it. SQLite plans a store nobody has analysed by the query's shape alone, and prefers an
 * equality on the primary key's first column (a link's connection) to a selective index (the
 * link's contact): for a list of contacts it would read every link of the connection. Used where
 * the other condition is the selective one; PostgreSQL plans the same statement by its statistics.
 */
import { sql, type RawBuilder } from "kysely";

export const unindexed = (column: string): RawBuilder<string> => sql<string>`${sql.ref(column)} || ''`;
