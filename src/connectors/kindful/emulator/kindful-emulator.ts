/**
 * An emulator of the Kindful API as Concord uses it (reference/apis.md §4, apis-more.md §1; every
 * assumption is in ../QUIRKS.md): token auth, contact queries with a `query_token` that pages and
 * expires after five idle minutes, the linked / changed / not_linked change feed, imports of at most
 * 100 rows (groups as import columns), linking, groups, the email lookup, and the common control API.
 */
import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import {
  createEmulatorKit,
  EmulatorControlError,
  listenOnLoopback,
  type EmulatorClock,
} from "../../emulator-kit/emulator-kit";

export type KindfulContact = {
  id: number;
  external_id: string | null;
  /** Moves on every change of a column; "changed" finds linked contacts whose version moved. */
  sync_version: number;
  /** The sync_version the integration linked at. */
  linked_version: number | null;
  first_name: string | null;
  last_name: string | null;
  company_name: string | null;
  email: string | null;
  alt_email: string | null;
  email_opt_in: "Yes" | "No";
  email_deliverable: "Yes" | "No";
  email_deliverable_error_reason: string | null;
  addr1: string | null;
  addr2: string | null;
  city: string | null;
  state: string | null;
  postal: string | null;
  country: string | null;
  primary_phone: string | null;
  custom_fields: Record<string, string>;
  created_at: string;
  updated_at: string;
};

export type KindfulGroup = { id: number; name: string; members: Set<number> };

/** The columns a query returns and an import writes. */
export const CONTACT_COLUMNS = [
  "first_name",
  "last_name",
  "company_name",
  "email",
  "alt_email",
  "email_opt_in",
  "email_deliverable",
  "email_deliverable_error_reason",
  "addr1",
  "addr2",
  "city",
  "state",
  "postal",
  "country",
  "primary_phone",
] as const;
type Column = (typeof CONTACT_COLUMNS)[number];

const PER_PAGE_MAX = 50;

/** A JSON value as text: strings and numbers as they are, anything else as JSON. */
const text = (v: unknown): string =>
  typeof v === "string"
    ? v
    : typeof v === "number" || typeof v === "boolean"
      ? `${v}`
      : v === null || v === undefined
        ? ""
        : JSON.stringify(v);
const IMPORT_ROWS_MAX = 100;
const QUERY_IDLE_MS = 5 * 60_000;

type Query = {
  ids: number[];
  /** The query's terms, for paging over the live result (`live_paging`). */
  terms: unknown[];
  pos: number;
  page: number;
  per_page: number;
  used_at: number;
  columns: string[];
  /** The custom fields the query asked for (`custom_fields`: "all", "linked" or names); none: none. */
  custom_fields: "all" | ReadonlySet<string>;
};
type ImportJob = {
  id: number;
  status: "pending" | "complete" | "failed";
  rows: {
    row: number;
    contact_id: number | null;
    status: "created" | "updated" | "ignored" | "error";
    error?: string;
  }[];
};

export type KindfulEmulatorOptions = {
  now?: EmulatorClock;
  logger?: boolean;
  /**
   * Each page of a query evaluates its terms again and pages by position over what matches now,
   * so linking a page's contacts moves the rest of a `not_linked` or `changed` feed up. Kindful
   * does not say whether a query token keeps its first result or pages the live one (**UNVERIFIED**):
   * by default the ids are fixed when the query starts.
   */
  live_paging?: boolean;
};

export function createKindfulEmulator(options: KindfulEmulatorOptions = {}) {
  const { live_paging: _live, ...kitOptions } = options;
  const kit = createEmulatorKit({ name: "kindful", ...kitOptions });
  const { app, now } = kit;
  const contacts = new Map<number, KindfulContact>();
  const groups = new Map<number, KindfulGroup>();
  const queries = new Map<string, Query>();
  const imports = new Map<number, ImportJob>();
  const tokens = new Set<string>();
  /** The world's ids for contacts and groups (the control API's aliases), to Kindful's own. */
  const contactAlias = new Map<string, number>();
  const groupAlias = new Map<string, number>();
  const resolve = (aliases: Map<string, number>, id: unknown): number => aliases.get(text(id)) ?? Number(id);
  let nextContact = 1;
  let nextGroup = 1;
  let nextImport = 1;
  const iso = () => now().toISOString();

  const newToken = (): string => {
    const token = randomBytes(18).toString("hex");
    tokens.add(token);
    return token;
  };

  const fail = (reply: FastifyReply, status: number, error: string) => reply.code(status).send({ error });

  // Every API route needs `Authorization: Token token="…"` (a token the control API issued).
  app.addHook("preHandler", async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.url.startsWith("/api/")) return;
    const header = request.headers.authorization ?? "";
    const m = /^Token token="?([^"]+)"?$/.exec(header.trim());
    if (!m || !tokens.has(m[1]!))
      return fail(reply, 401, "Unauthorized: the token is missing, wrong or revoked");
  });

  const touch = (c: KindfulContact, at = iso()): void => {
    c.sync_version += 1;
    c.updated_at = at;
  };

  const blankContact = (id: number, at: string): KindfulContact => ({
    id,
    external_id: null,
    sync_version: 1,
    linked_version: null,
    first_name: null,
    last_name: null,
    company_name: null,
    email: null,
    alt_email: null,
    email_opt_in: "Yes",
    email_deliverable: "Yes",
    email_deliverable_error_reason: null,
    addr1: null,
    addr2: null,
    city: null,
    state: null,
    postal: null,
    country: null,
    primary_phone: null,
    custom_fields: {},
    created_at: at,
    updated_at: at,
  });

  const groupByName = (name: string): KindfulGroup | undefined =>
    [...groups.values()].find((g) => g.name.toLowerCase() === name.trim().toLowerCase());
  const groupNamed = (name: string): KindfulGroup => {
    const found = groupByName(name);
    if (found) return found;
    const g = { id: nextGroup++, name: name.trim(), members: new Set<number>() };
    groups.set(g.id, g);
    return g;
  };

  // ── queries ────────────────────────────────────────────────────────────────────────────────
  type Filter = unknown;
  const matches = (c: KindfulContact, f: Filter): boolean => {
    if (f === "linked") return c.external_id !== null;
    if (f === "not_linked") return c.external_id === null;
    if (f === "changed") return c.external_id !== null && c.sync_version !== c.linked_version;
    if (f === "near_postal") return true;
    if (f && typeof f === "object") {
      const o = f as Record<string, unknown>;
      if (Array.isArray(o["by_group_id"]))
        return (o["by_group_id"] as unknown[]).some(
          (id) => groups.get(Number(id))?.members.has(c.id) === true,
        );
      if (typeof o["has_email"] === "string")
        return (c.email !== null && c.email !== "") === (o["has_email"] === "Yes");
      if (Array.isArray(o["and"])) return (o["and"] as unknown[]).every((g) => matches(c, g));
      if (Array.isArray(o["or"])) return (o["or"] as unknown[]).some((g) => matches(c, g));
      if (Array.isArray(o["not"])) return !(o["not"] as unknown[]).some((g) => matches(c, g));
    }
    throw new Error(`unknown query term ${JSON.stringify(f)}`);
  };

  const row = (
    c: KindfulContact,
    columns: string[],
    custom: "all" | ReadonlySet<string> = "all",
  ): Record<string, unknown> => {
    const all = columns.includes("all");
    const out: Record<string, unknown> = {
      id: c.id,
      record_type: "contact",
      external_id: c.external_id,
      sync_version: c.sync_version,
      created_at: c.created_at,
      updated_at: c.updated_at,
    };
    for (const col of CONTACT_COLUMNS) if (all || columns.includes(col)) out[col] = c[col];
    // Custom fields come only as the query's own `custom_fields` asks (not with the columns).
    if (custom === "all") out["custom_fields"] = { ...c.custom_fields };
    else if (custom.size > 0)
      out["custom_fields"] = Object.fromEntries(
        Object.entries(c.custom_fields).filter(([n]) => custom.has(n)),
      );
    return out;
  };

  const pageOf = (token: string, q: Query, base: string) => {
    if (options.live_paging === true)
      q.ids = [...contacts.values()].filter((c) => q.terms.every((t) => matches(c, t))).map((c) => c.id);
    const ids = q.ids.slice(q.pos, q.pos + q.per_page);
    q.pos += ids.length;
    q.page += 1;
    q.used_at = now().getTime();
    const hasMore = q.pos < q.ids.length;
    return {
      page: q.page,
      query_token: token,
      results: ids.flatMap((id) => {
        const c = contacts.get(id);
        return c ? [row(c, q.columns, q.custom_fields)] : [];
      }),
      has_more: hasMore,
      _links: hasMore ? { next: { href: `${base}/api/v1/contacts/query?query_token=${token}` } } : {},
    };
  };

  app.post("/api/v1/contacts/query", async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const base = `http://${request.headers.host ?? "127.0.0.1"}`;
    const token =
      typeof body["query_token"] === "string"
        ? body["query_token"]
        : typeof (request.query as Record<string, unknown>)["query_token"] === "string"
          ? text((request.query as Record<string, unknown>)["query_token"])
          : undefined;
    if (token !== undefined) {
      const q = queries.get(token);
      if (!q || now().getTime() - q.used_at > QUERY_IDLE_MS) {
        queries.delete(token);
        return fail(reply, 400, "Invalid query_token: it is unknown or expired (5 minutes without use)");
      }
      return pageOf(token, q, base);
    }
    const perPage = body["per_page"] === undefined ? PER_PAGE_MAX : Number(body["per_page"]);
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > PER_PAGE_MAX)
      return fail(reply, 400, `per_page must be between 1 and ${PER_PAGE_MAX}`);
    const terms = Array.isArray(body["query"]) ? (body["query"] as unknown[]) : [];
    const columnsBody = body["columns"] as { contact?: unknown } | undefined;
    const columns = Array.isArray(columnsBody?.contact)
      ? (columnsBody.contact as unknown[]).map(String)
      : ["all"];
    const asked = Array.isArray(body["custom_fields"])
      ? (body["custom_fields"] as unknown[]).map(String)
      : [];
    const custom: Query["custom_fields"] =
      asked.includes("all") || asked.includes("linked") ? "all" : new Set(asked);
    let ids: number[];
    try {
      ids = [...contacts.values()].filter((c) => terms.every((t) => matches(c, t))).map((c) => c.id);
    } catch (e) {
      return fail(reply, 400, (e as Error).message);
    }
    const fresh = randomBytes(8).toString("hex");
    const q: Query = {
      ids,
      terms,
      pos: 0,
      page: 0,
      per_page: perPage,
      used_at: now().getTime(),
      columns,
      custom_fields: custom,
    };
    queries.set(`tok_${fresh}`, q);
    return pageOf(`tok_${fresh}`, q, base);
  });

  app.get("/api/v1/contacts/:id", async (request, reply) => {
    const c = contacts.get(Number((request.params as { id: string }).id));
    if (!c) return fail(reply, 404, "Not found");
    return row(c, ["all"]);
  });

  app.get("/api/v1/contacts/email_exist", async (request) => {
    const email = text((request.query as Record<string, unknown>)["email"] ?? "")
      .trim()
      .toLowerCase();
    const found = [...contacts.values()].filter((c) => (c.email ?? "").toLowerCase() === email);
    return { exist: found.length > 0, ids: found.map((c) => c.id) };
  });

  app.post("/api/v1/contacts/link", async (request, reply) => {
    const body = (request.body ?? {}) as { action_type?: unknown; data?: unknown };
    if (body.action_type !== "update")
      return fail(reply, 400, 'action_type must be "update" (create does not move the sync version)');
    if (!Array.isArray(body.data) || body.data.length > IMPORT_ROWS_MAX)
      return fail(reply, 400, `data must be an array of at most ${IMPORT_ROWS_MAX} links`);
    let linked = 0;
    for (const d of body.data as Record<string, unknown>[]) {
      const c = contacts.get(Number(d["id"]));
      if (!c) continue;
      c.external_id = text(d["external_id"] ?? c.id);
      c.linked_version = Number(d["sync_version"] ?? c.sync_version);
      linked += 1;
    }
    return { linked };
  });

  app.get("/api/v1/groups", async () => ({
    results: [...groups.values()].map((g) => ({ id: g.id, name: g.name, count: g.members.size })),
  }));

  // ── imports ────────────────────────────────────────────────────────────────────────────────
  const MATCHERS = new Set(["id", "external_id", "email"]);
  const applyImport = (job: ImportJob, body: Record<string, unknown>): void => {
    const actionType = body["action_type"];
    const matchBy = (body["match_by"] as { contact?: unknown } | undefined)?.contact ?? "external_id";
    const groupNames = Array.isArray(body["groups"]) ? (body["groups"] as unknown[]).map(String) : [];
    // Custom fields are row columns the import names in its own `custom_fields` (a row's nested
    // object is no column: ignored, as any unknown key is).
    const customNames = Array.isArray(body["custom_fields"])
      ? (body["custom_fields"] as unknown[]).map(String)
      : [];
    const at = iso();
    (body["data"] as Record<string, unknown>[]).forEach((d, i) => {
      const key = d[text(matchBy)];
      let c =
        matchBy === "id"
          ? contacts.get(Number(key))
          : [...contacts.values()].find((x) =>
              matchBy === "email"
                ? (x.email ?? "").toLowerCase() ===
                    text(key ?? "")
                      .trim()
                      .toLowerCase() && key
                : x.external_id !== null && x.external_id === text(key),
            );
      // A create leaves a contact it matches as it is (the public client: "create" ignores matching
      // contacts): an import never re-subscribes anyone by creating them again.
      if (c && actionType === "create") {
        job.rows.push({
          row: i,
          contact_id: c.id,
          status: "ignored",
          error: `a contact already has this ${text(matchBy)}; a create does not change it`,
        });
        return;
      }
      if (!c && actionType === "update") {
        job.rows.push({
          row: i,
          contact_id: null,
          status: "error",
          error: `no contact with ${text(matchBy)} ${text(key)}`,
        });
        return;
      }
      // An update older than the contact's latest change is ignored (the importing guide's rule).
      if (c && d["updated_at"] !== undefined) {
        const given =
          typeof d["updated_at"] === "number" ? d["updated_at"] * 1000 : Date.parse(text(d["updated_at"]));
        if (Number.isNaN(given)) {
          job.rows.push({ row: i, contact_id: c.id, status: "error", error: "updated_at is not a time" });
          return;
        }
        if (given < Date.parse(c.updated_at)) {
          job.rows.push({
            row: i,
            contact_id: c.id,
            status: "ignored",
            error: "older than the contact's latest change",
          });
          return;
        }
      } else if (c && actionType === "update") {
        job.rows.push({
          row: i,
          contact_id: c.id,
          status: "error",
          error: "updated_at is required to update",
        });
        return;
      }
      const created = !c;
      if (!c) {
        c = blankContact(nextContact++, at);
        contacts.set(c.id, c);
      }
      let changed = false;
      for (const col of CONTACT_COLUMNS) {
        if (!(col in d)) continue;
        const v = d[col] === null || d[col] === undefined ? null : text(d[col]);
        if (col === "email_opt_in" || col === "email_deliverable") {
          if (v !== "Yes" && v !== "No") {
            job.rows.push({
              row: i,
              contact_id: c.id,
              status: "error",
              error: `${col} must be "Yes" or "No"`,
            });
            return;
          }
        }
        if ((c as Record<Column, unknown>)[col] !== v) {
          (c as Record<Column, unknown>)[col] = v;
          changed = true;
        }
      }
      for (const k of customNames) {
        if (!(k in d)) continue;
        const v = d[k];
        if (v === null || v === undefined) {
          if (k in c.custom_fields) {
            c.custom_fields = Object.fromEntries(Object.entries(c.custom_fields).filter(([n]) => n !== k));
            changed = true;
          }
        } else if (c.custom_fields[k] !== text(v)) {
          c.custom_fields[k] = text(v);
          changed = true;
        }
      }
      for (const name of groupNames) {
        const flag = text(d[name] ?? "").toLowerCase();
        if (flag !== "yes" && flag !== "no") continue;
        const g = groupNamed(name);
        if (flag === "yes") g.members.add(c.id);
        else g.members.delete(c.id);
      }
      if (changed && !created) touch(c, at);
      job.rows.push({ row: i, contact_id: c.id, status: created ? "created" : "updated" });
    });
    job.status = "complete";
  };

  app.post("/api/v1/imports", async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (body["action_type"] !== "create" && body["action_type"] !== "update")
      return fail(reply, 400, 'action_type must be "create" or "update"');
    const data = body["data"];
    if (!Array.isArray(data) || data.length === 0 || data.length > IMPORT_ROWS_MAX)
      return fail(reply, 400, `data must hold 1 to ${IMPORT_ROWS_MAX} records`);
    const matchBy = (body["match_by"] as { contact?: unknown } | undefined)?.contact ?? "external_id";
    if (typeof matchBy !== "string" || !MATCHERS.has(matchBy))
      return fail(reply, 400, `match_by.contact must be one of ${[...MATCHERS].join(", ")}`);
    const job: ImportJob = { id: nextImport++, status: "pending", rows: [] };
    imports.set(job.id, job);
    // Imports run in the background; the job shows pending until they have.
    setImmediate(() => {
      applyImport(job, body);
    });
    return { id: job.id, status: job.status };
  });

  app.get("/api/v1/import/:id", async (request, reply) => {
    const job = imports.get(Number((request.params as { id: string }).id));
    if (!job) return fail(reply, 404, "Not found");
    return { id: job.id, status: job.status, results: job.rows };
  });

  // ── control ────────────────────────────────────────────────────────────────────────────────
  const contactById = (id: unknown): KindfulContact => {
    const c = contacts.get(resolve(contactAlias, id));
    if (!c) throw new EmulatorControlError("not_found", `no contact ${text(id)}`);
    return c;
  };

  kit.registerControl({
    reset: () => {
      contacts.clear();
      groups.clear();
      queries.clear();
      imports.clear();
      nextContact = 1;
      nextGroup = 1;
      contactAlias.clear();
      groupAlias.clear();
    },
    seed: (body: {
      contacts?: Record<string, unknown>[];
      groups?: { id?: number; alias?: string; name: string; members?: (number | string)[] }[];
    }) => {
      const made: number[] = [];
      for (const seed of body.contacts ?? []) {
        const { alias, ...s } = seed;
        const known = alias !== undefined ? contactAlias.get(text(alias)) : undefined;
        // A numeric world id is kept as Kindful's own (the demo's people keep their numbers).
        const numeric = /^\d{1,15}$/.test(text(alias)) ? Number(text(alias)) : undefined;
        const id = typeof s["id"] === "number" ? s["id"] : (known ?? numeric ?? nextContact);
        nextContact = Math.max(nextContact, id + 1);
        if (alias !== undefined) contactAlias.set(text(alias), id);
        const c = { ...blankContact(id, text(s["created_at"] ?? iso())), ...s, id };
        c.custom_fields = { ...((s["custom_fields"] as Record<string, string> | undefined) ?? {}) };
        c.updated_at = text(s["updated_at"] ?? c.created_at);
        contacts.set(id, c);
        made.push(id);
      }
      const madeGroups: { id: number; name: string }[] = [];
      for (const g of body.groups ?? []) {
        const known = g.alias !== undefined ? groupAlias.get(g.alias) : undefined;
        const id = g.id ?? known ?? nextGroup;
        nextGroup = Math.max(nextGroup, id + 1);
        if (g.alias !== undefined) groupAlias.set(g.alias, id);
        const group = groups.get(id) ?? { id, name: g.name, members: new Set<number>() };
        group.name = g.name;
        for (const m of g.members ?? []) group.members.add(resolve(contactAlias, m));
        groups.set(id, group);
        madeGroups.push({ id, name: g.name });
      }
      return { contacts: made, groups: madeGroups };
    },
    token: () => ({ token: newToken() }),
    revoke: (body: { token?: string }) => {
      if (body.token) tokens.delete(body.token);
      else tokens.clear();
      return { revoked: true };
    },
    act: (body: Record<string, unknown>) => {
      const at = iso();
      switch (body["action"]) {
        case "update_contact": {
          const c = contactById(body["contact_id"]);
          const changes = (body["changes"] ?? {}) as Record<string, unknown>;
          for (const [k, v] of Object.entries(changes)) {
            if (!(CONTACT_COLUMNS as readonly string[]).includes(k))
              throw new EmulatorControlError("invalid_column", `no column ${k}`);
            (c as Record<string, unknown>)[k] = v === null ? null : text(v);
          }
          const custom = body["custom_fields"] as Record<string, string> | undefined;
          if (custom) Object.assign(c.custom_fields, custom);
          touch(c, at);
          return { contact: row(c, ["all"]) };
        }
        case "add_to_group":
        case "remove_from_group": {
          const c = contactById(body["contact_id"]);
          const g = groups.get(resolve(groupAlias, body["group_id"]));
          if (!g) throw new EmulatorControlError("not_found", `no group ${text(body["group_id"])}`);
          if (body["action"] === "add_to_group") g.members.add(c.id);
          else g.members.delete(c.id);
          return { group: { id: g.id, name: g.name, count: g.members.size } };
        }
        case "create_group": {
          const g = groupNamed(text(body["name"]));
          return { group: { id: g.id, name: g.name } };
        }
        case "rename_group": {
          const g = groups.get(resolve(groupAlias, body["group_id"]));
          if (!g) throw new EmulatorControlError("not_found", `no group ${text(body["group_id"])}`);
          g.name = text(body["name"]);
          return { group: { id: g.id, name: g.name } };
        }
        case "delete_group": {
          groups.delete(resolve(groupAlias, body["group_id"]));
          return { deleted: true };
        }
        case "delete_contact": {
          const c = contactById(body["contact_id"]);
          contacts.delete(c.id);
          for (const g of groups.values()) g.members.delete(c.id);
          return { deleted: c.id };
        }
        default:
          throw new EmulatorControlError("unknown_action", `unknown act ${text(body["action"])}`);
      }
    },
    state: () => ({
      contacts: [...contacts.values()],
      groups: [...groups.values()].map((g) => ({ id: g.id, name: g.name, members: [...g.members] })),
    }),
  });

  return { app, kit, contacts, groups, newToken };
}

export type StartedKindfulEmulator = ReturnType<typeof createKindfulEmulator> & {
  baseUrl: string;
  close: () => Promise<void>;
};

export async function startKindfulEmulator(
  options: KindfulEmulatorOptions & { port?: number } = {},
): Promise<StartedKindfulEmulator> {
  const { port, ...rest } = options;
  const emulator = createKindfulEmulator(rest);
  const baseUrl = await listenOnLoopback(emulator.app, port ?? 0);
  return { ...emulator, baseUrl, close: () => emulator.app.close() };
}
