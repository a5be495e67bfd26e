/**
 * What the store's PostgreSQL connections see of the database: its own schema and nothing else.
 *
 * The migrator asks which tables exist before it runs. Asked of the whole database, that question
 * names every schema in it, and an installation sharing the database that drops its schema in the
 * meantime makes the question fail ("schema … does not exist"), so the store would not open. It
 * could also find another installation's migration table and take it for this store's. Asked here,
 * it reads the catalogue by the store's own schema name (`search_path`'s first schema when the
 * store is given none), so other schemas neither break nor answer it.
 */
import { PostgresDialect, sql, type DatabaseIntrospector, type Kysely, type TableMetadata } from "kysely";
import { DEFAULT_MIGRATION_LOCK_TABLE, DEFAULT_MIGRATION_TABLE } from "kysely/migration";

type ColumnRow = {
  table: string;
  table_type: string;
  column: string | null;
  not_null: boolean | null;
  has_default: boolean | null;
  type: string | null;
  type_schema: string | null;
  column_description: string | null;
  auto_incrementing: string | null;
};

/** PostgreSQL as kysely speaks it, with the introspection scoped to the store's schema. */
export class StoreSchemaDialect extends PostgresDialect {
  readonly #schema: string | undefined;

  constructor(config: ConstructorParameters<typeof PostgresDialect>[0], schema: string | undefined) {
    super(config);
    this.#schema = schema;
  }

  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return storeSchemaIntrospector(db, this.#schema);
  }
}

export function storeSchemaIntrospector(
  db: Kysely<unknown>,
  schema: string | undefined,
): DatabaseIntrospector {
  const own = schema === undefined ? sql`current_schema()` : sql`${schema}::text`;
  return {
    async getSchemas() {
      const { rows } = await sql<{
        name: string;
      }>`select nspname as name from pg_catalog.pg_namespace where nspname = ${own}`.execute(db);
      return rows.map((r) => ({ name: r.name }));
    },

    async getTables(options = { withInternalKyselyTables: false }) {
      const { rows } = await sql<ColumnRow & { schema: string }>`
        select c.relname as "table", c.relkind as table_type, ns.nspname as "schema",
               a.attname as "column", a.attnotnull as not_null, a.atthasdef as has_default,
               typ.typname as "type", dtns.nspname as type_schema,
               col_description(a.attrelid, a.attnum) as column_description,
               pg_get_serial_sequence(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), a.attname)
                 as auto_incrementing
          from pg_catalog.pg_class c
          join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
          left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          left join pg_catalog.pg_type typ on typ.oid = a.atttypid
          left join pg_catalog.pg_namespace dtns on dtns.oid = typ.typnamespace
         where ns.nspname = ${own}
           and c.relkind in ('r', 'v', 'p', 'f')
         order by c.relname, a.attnum`.execute(db);
      const internal = new Set([DEFAULT_MIGRATION_TABLE, DEFAULT_MIGRATION_LOCK_TABLE]);
      const tables = new Map<string, TableMetadata>();
      for (const row of rows) {
        if (!options.withInternalKyselyTables && internal.has(row.table)) continue;
        let table = tables.get(row.table);
        if (table === undefined) {
          table = {
            name: row.table,
            schema: row.schema,
            isView: row.table_type === "v",
            isForeign: row.table_type === "f",
            columns: [],
          };
          tables.set(row.table, table);
        }
        if (row.column === null) continue;
        table.columns.push({
          name: row.column,
          dataType: row.type ?? "",
          ...(row.type_schema === null ? {} : { dataTypeSchema: row.type_schema }),
          isNullable: row.not_null !== true,
          hasDefaultValue: row.has_default === true,
          isAutoIncrementing: row.auto_incrementing !== null,
          ...(row.column_description === null ? {} : { comment: row.column_description }),
        });
      }
      return [...tables.values()];
    },
  };
}
