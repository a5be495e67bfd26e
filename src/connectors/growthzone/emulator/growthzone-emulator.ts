/**
 * An emulator of the GrowthZone API as Concord uses it (reference/apis.md §5, apis-more.md §2;
 * every assumption is in ../QUIRKS.md): `Authorization: ApiKey …`, OData-style paging (`$top` at
 * most 100, `$skip`; un-prefixed names ignored), the `{TotalRecordAvailable, Results}` envelope,
 * contacts with their email addresses and each address's restriction (None, Transactional Only, Do
 * Not Contact), lists and committees with the newsletter-sync setting and a per-list Do Not
 * Contact, the contacts delta, 429s past a rate, and the common control API.
 */
import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { CallLimits } from "../../emulator-kit/call-limits";
import {
  createEmulatorKit,
  EmulatorControlError,
  listenOnLoopback,
  type EmulatorClock,
} from "../../emulator-kit/emulator-kit";

export type Restriction = "None" | "TransactionalOnly" | "DoNotContact";
export const RESTRICTIONS: readonly Restriction[] = ["None", "TransactionalOnly", "DoNotContact"];

export type GzEmail = {
  ContactEmailAddressId: number;
  EmailAddress: string;
  /** 0 Other, 1 Primary, 2 Work, 3 Secondary, 4 Personal. */
  EmailAddressTypeId: number;
  IsDefault: boolean;
  Restriction: Restriction;
};

export type GzContact = {
  ContactId: number;
  /** 1 Individual, 2 Organization. */
  SystemContactTypeId: number;
  FirstName: string | null;
  LastName: string | null;
  OrganizationName: string | null;
  Emails: GzEmail[];
  CreatedDate: string;
  ModifiedDate: string;
  IsDeleted: boolean;
};

export type GzGroup = {
  GroupId: number;
  Name: string;
  Category: "List" | "Committee";
  /** "Synchronize contacts with authorized third party newsletter". */
  SyncWithNewsletter: boolean;
  DisallowOptOut: boolean;
  Members: Map<number, { DoNotContact: boolean; AddedDate: string }>;
};

const PAGE_MAX = 100;
const INVALID = { Message: "The request is invalid." };

const text = (v: unknown): string =>
  typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? `${v}` : "";

export type GrowthZoneEmulatorOptions = {
  now?: EmulatorClock;
  logger?: boolean;
  /** Requests a second before 429 (GrowthZone answered 429 at about 8 a second); null: none. */
  ratePerSecond?: number | null;
  /** Refuse `$orderby` on the delta (400), as a GrowthZone that does not take it would. */
  refuseDeltaOrder?: boolean;
  /** Ignore `$orderby` on the delta (listed by contact id all the same). */
  ignoreDeltaOrder?: boolean;
};

export function createGrowthZoneEmulator(options: GrowthZoneEmulatorOptions = {}) {
  /**
   * Answers as a GrowthZone that differs from what Concord expects, set by a test while it runs:
   * member rows that carry no `DoNotContact` (the member listing is **UNVERIFIED**).
   */
  const quirks = { memberRowsWithoutDoNotContact: false };
  const kit = createEmulatorKit({
    name: "growthzone",
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  });
  const { app, now } = kit;
  const limits = new CallLimits({
    now,
    per_second: options.ratePerSecond === undefined ? 8 : options.ratePerSecond,
    window: "sliding",
    daily: null,
  });
  const contacts = new Map<number, GzContact>();
  const groups = new Map<number, GzGroup>();
  const keys = new Set<string>();
  const contactAlias = new Map<string, number>();
  const groupAlias = new Map<string, number>();
  let nextContact = 1000;
  let nextGroup = 1;
  let nextEmail = 1;
  const iso = () => now().toISOString();
  const resolve = (aliases: Map<string, number>, id: unknown): number => aliases.get(text(id)) ?? Number(id);

  app.addHook("preHandler", async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.url.startsWith("/api/")) return;
    const m = /^ApiKey\s+(\S+)$/.exec((request.headers.authorization ?? "").trim());
    if (!m || !keys.has(m[1]!))
      return reply.code(401).send({ Message: "Authorization has been denied for this request." });
    const verdict = limits.admit();
    if (verdict.kind !== "ok")
      return reply
        .code(429)
        .header("retry-after", String(verdict.retry_after_seconds))
        .send({ Message: "Too many requests." });
  });

  /** `$top` and `$skip` (un-prefixed names are ignored, as GrowthZone ignores them). */
  const paging = (request: FastifyRequest): { top: number; skip: number } | undefined => {
    const q = request.query as Record<string, unknown>;
    const top = q["$top"] === undefined ? PAGE_MAX : Number(q["$top"]);
    const skip = q["$skip"] === undefined ? 0 : Number(q["$skip"]);
    if (!Number.isInteger(top) || top < 1 || top > PAGE_MAX || !Number.isInteger(skip) || skip < 0)
      return undefined;
    return { top, skip };
  };
  const page = <T>(request: FastifyRequest, reply: FastifyReply, all: T[]) => {
    const p = paging(request);
    if (!p) return reply.code(400).send(INVALID);
    return { TotalRecordAvailable: all.length, Results: all.slice(p.skip, p.skip + p.top) };
  };

  const primaryOf = (c: GzContact): GzEmail | undefined => c.Emails.find((e) => e.IsDefault) ?? c.Emails[0];
  const displayName = (c: GzContact): string =>
    c.SystemContactTypeId === 2
      ? (c.OrganizationName ?? "")
      : [c.FirstName, c.LastName].filter(Boolean).join(" ");
  const listItem = (c: GzContact) => ({
    ContactId: c.ContactId,
    FirstName: c.FirstName,
    LastName: c.LastName,
    DisplayName: displayName(c),
    PrimaryEmailAddress: primaryOf(c)?.EmailAddress ?? null,
    PrimaryEmailAddressId: primaryOf(c)?.ContactEmailAddressId ?? null,
    SystemContactTypeId: c.SystemContactTypeId,
    ModifiedDate: c.ModifiedDate,
  });
  const detail = (c: GzContact) => ({
    ...listItem(c),
    OrganizationName: c.OrganizationName,
    CreatedDate: c.CreatedDate,
    Emails: c.Emails.map((e) => ({ ...e })),
  });
  const touch = (c: GzContact) => {
    c.ModifiedDate = iso();
  };
  const live = () =>
    [...contacts.values()].filter((c) => !c.IsDeleted).sort((a, b) => a.ContactId - b.ContactId);
  const contactOr404 = (id: unknown, reply: FastifyReply): GzContact | undefined => {
    const c = contacts.get(Number(id));
    if (!c || c.IsDeleted) {
      void reply.code(404).send({ Message: "No contact was found." });
      return undefined;
    }
    return c;
  };

  app.get("/api/contacts/all", async (request, reply) => page(request, reply, live().map(listItem)));

  app.get("/api/contacts/delta", async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const since = Date.parse(text(query["modifiedSince"]));
    if (Number.isNaN(since)) return reply.code(400).send(INVALID);
    // Which order GrowthZone lists the delta in is not documented: here by contact id, unless
    // `$orderby=ModifiedDate` asks for the oldest change first (another order is refused).
    const orderBy =
      query["$orderby"] === undefined || options.ignoreDeltaOrder === true
        ? undefined
        : text(query["$orderby"]).trim();
    if (
      orderBy !== undefined &&
      (options.refuseDeltaOrder === true || !/^ModifiedDate( asc)?$/i.test(orderBy))
    )
      return reply.code(400).send(INVALID);
    const changed = [...contacts.values()]
      .filter((c) => Date.parse(c.ModifiedDate) >= since)
      .sort((a, b) =>
        orderBy === undefined
          ? a.ContactId - b.ContactId
          : Date.parse(a.ModifiedDate) - Date.parse(b.ModifiedDate) || a.ContactId - b.ContactId,
      )
      .map((c) => ({
        ContactId: c.ContactId,
        DisplayName: displayName(c),
        ModifiedDate: c.ModifiedDate,
        IsDeleted: c.IsDeleted,
        SystemContactTypeId: c.SystemContactTypeId,
      }));
    return page(request, reply, changed);
  });

  app.get("/api/contacts/:id", async (request, reply) => {
    const c = contactOr404((request.params as { id: string }).id, reply);
    return c ? detail(c) : reply;
  });

  app.post("/api/contacts", async (request, reply) => {
    const b = (request.body ?? {}) as Record<string, unknown>;
    const email = text(b["EmailAddress"]).trim();
    if (email === "" || !email.includes("@"))
      return reply.code(400).send({ Message: "EmailAddress is required." });
    const c: GzContact = {
      ContactId: nextContact++,
      SystemContactTypeId: 1,
      FirstName: text(b["FirstName"]) || null,
      LastName: text(b["LastName"]) || null,
      OrganizationName: null,
      Emails: [
        {
          ContactEmailAddressId: nextEmail++,
          EmailAddress: email,
          EmailAddressTypeId: 1,
          IsDefault: true,
          Restriction: "None",
        },
      ],
      CreatedDate: iso(),
      ModifiedDate: iso(),
      IsDeleted: false,
    };
    contacts.set(c.ContactId, c);
    return reply.code(201).send({ ContactId: c.ContactId });
  });

  app.put("/api/contacts/:id", async (request, reply) => {
    const c = contactOr404((request.params as { id: string }).id, reply);
    if (!c) return reply;
    const b = (request.body ?? {}) as Record<string, unknown>;
    for (const k of ["FirstName", "LastName", "OrganizationName"] as const)
      if (k in b) c[k] = b[k] === null ? null : text(b[k]);
    touch(c);
    return detail(c);
  });

  app.post("/api/contacts/:id/emails", async (request, reply) => {
    const c = contactOr404((request.params as { id: string }).id, reply);
    if (!c) return reply;
    const b = (request.body ?? {}) as Record<string, unknown>;
    const address = text(b["EmailAddress"]).trim();
    if (!address.includes("@")) return reply.code(400).send({ Message: "EmailAddress is invalid." });
    const isDefault = b["IsDefault"] === true;
    if (isDefault) for (const e of c.Emails) e.IsDefault = false;
    const e: GzEmail = {
      ContactEmailAddressId: nextEmail++,
      EmailAddress: address,
      EmailAddressTypeId: isDefault ? 1 : 0,
      IsDefault: isDefault || c.Emails.length === 0,
      Restriction: "None",
    };
    c.Emails.push(e);
    touch(c);
    return reply.code(201).send(e);
  });

  app.put("/api/contacts/:id/emails/:emailId", async (request, reply) => {
    const params = request.params as { id: string; emailId: string };
    const c = contactOr404(params.id, reply);
    if (!c) return reply;
    const e = c.Emails.find((x) => x.ContactEmailAddressId === Number(params.emailId));
    if (!e) return reply.code(404).send({ Message: "No email address was found." });
    const b = (request.body ?? {}) as Record<string, unknown>;
    if ("Restriction" in b) {
      if (!RESTRICTIONS.includes(b["Restriction"] as Restriction))
        return reply.code(400).send({ Message: `Restriction must be one of ${RESTRICTIONS.join(", ")}.` });
      e.Restriction = b["Restriction"] as Restriction;
    }
    if ("EmailAddress" in b) {
      const address = text(b["EmailAddress"]).trim();
      if (!address.includes("@")) return reply.code(400).send({ Message: "EmailAddress is invalid." });
      e.EmailAddress = address;
    }
    if (b["IsDefault"] === true) for (const x of c.Emails) x.IsDefault = x === e;
    touch(c);
    return e;
  });

  const groupItem = (g: GzGroup) => ({
    GroupId: g.GroupId,
    Name: g.Name,
    Category: g.Category,
    SyncWithNewsletter: g.SyncWithNewsletter,
    DisallowOptOut: g.DisallowOptOut,
    MemberCount: g.Members.size,
  });
  const groupOr404 = (id: unknown, reply: FastifyReply): GzGroup | undefined => {
    const g = groups.get(Number(id));
    if (!g) void reply.code(404).send({ Message: "No group was found." });
    return g;
  };

  app.get("/api/groups/all", async (request, reply) =>
    page(request, reply, [...groups.values()].map(groupItem)),
  );

  app.get("/api/groups/:id/members", async (request, reply) => {
    const g = groupOr404((request.params as { id: string }).id, reply);
    if (!g) return reply;
    const members = [...g.Members.entries()]
      .filter(([id]) => contacts.get(id)?.IsDeleted === false)
      .sort(([a], [b]) => a - b)
      .map(([ContactId, m]) =>
        quirks.memberRowsWithoutDoNotContact
          ? { ContactId, AddedDate: m.AddedDate }
          : { ContactId, DoNotContact: m.DoNotContact, AddedDate: m.AddedDate },
      );
    return page(request, reply, members);
  });

  app.post("/api/groups/:id/members", async (request, reply) => {
    const g = groupOr404((request.params as { id: string }).id, reply);
    if (!g) return reply;
    const id = Number(((request.body ?? {}) as Record<string, unknown>)["ContactId"]);
    if (!contacts.get(id) || contacts.get(id)?.IsDeleted)
      return reply.code(404).send({ Message: "No contact was found." });
    if (!g.Members.has(id)) g.Members.set(id, { DoNotContact: false, AddedDate: iso() });
    return reply.code(201).send({ GroupId: g.GroupId, ContactId: id });
  });

  app.put("/api/groups/:id/members/:contactId", async (request, reply) => {
    const params = request.params as { id: string; contactId: string };
    const g = groupOr404(params.id, reply);
    if (!g) return reply;
    const m = g.Members.get(Number(params.contactId));
    if (!m) return reply.code(404).send({ Message: "The contact is not a member." });
    const b = (request.body ?? {}) as Record<string, unknown>;
    if (typeof b["DoNotContact"] !== "boolean") return reply.code(400).send(INVALID);
    m.DoNotContact = b["DoNotContact"];
    return { GroupId: g.GroupId, ContactId: Number(params.contactId), DoNotContact: m.DoNotContact };
  });

  app.delete("/api/groups/:id/members/:contactId", async (request, reply) => {
    const params = request.params as { id: string; contactId: string };
    const g = groupOr404(params.id, reply);
    if (!g) return reply;
    g.Members.delete(Number(params.contactId));
    return reply.code(204).send();
  });

  // ── control ────────────────────────────────────────────────────────────────────────────────
  const contactById = (id: unknown): GzContact => {
    const c = contacts.get(resolve(contactAlias, id));
    if (!c || c.IsDeleted) throw new EmulatorControlError("not_found", `no contact ${text(id)}`);
    return c;
  };
  const groupById = (id: unknown, name?: unknown): GzGroup => {
    const g =
      groups.get(resolve(groupAlias, id)) ??
      [...groups.values()].find(
        (x) => typeof name === "string" && x.Name.toLowerCase() === name.toLowerCase(),
      );
    if (!g) throw new EmulatorControlError("not_found", `no list or committee ${text(id)}`);
    return g;
  };

  kit.registerControl({
    reset: () => {
      contacts.clear();
      groups.clear();
      contactAlias.clear();
      groupAlias.clear();
      limits.reset();
    },
    seed: (body: { contacts?: Record<string, unknown>[]; groups?: Record<string, unknown>[] }) => {
      const made: number[] = [];
      for (const s of body.contacts ?? []) {
        const alias = text(s["alias"]);
        const numeric = /^\d{1,15}$/.test(alias) ? Number(alias) : undefined;
        const id = contactAlias.get(alias) ?? numeric ?? nextContact;
        nextContact = Math.max(nextContact, id + 1);
        if (alias !== "") contactAlias.set(alias, id);
        const emails = (Array.isArray(s["Emails"]) ? (s["Emails"] as Record<string, unknown>[]) : []).map(
          (e, i) => ({
            ContactEmailAddressId: nextEmail++,
            EmailAddress: text(e["EmailAddress"]),
            EmailAddressTypeId: i === 0 ? 1 : 0,
            IsDefault: e["IsDefault"] === true || i === 0,
            Restriction: (RESTRICTIONS.includes(e["Restriction"] as Restriction)
              ? e["Restriction"]
              : "None") as Restriction,
          }),
        );
        contacts.set(id, {
          ContactId: id,
          SystemContactTypeId: s["SystemContactTypeId"] === 2 ? 2 : 1,
          FirstName: s["FirstName"] === undefined ? null : text(s["FirstName"]) || null,
          LastName: s["LastName"] === undefined ? null : text(s["LastName"]) || null,
          OrganizationName: s["OrganizationName"] === undefined ? null : text(s["OrganizationName"]) || null,
          Emails: emails,
          CreatedDate: text(s["CreatedDate"]) || iso(),
          ModifiedDate: text(s["ModifiedDate"]) || iso(),
          IsDeleted: false,
        });
        made.push(id);
      }
      const madeGroups: { GroupId: number; Name: string }[] = [];
      for (const g of body.groups ?? []) {
        const alias = text(g["alias"]);
        const id = groupAlias.get(alias) ?? nextGroup++;
        if (alias !== "") groupAlias.set(alias, id);
        const group: GzGroup = groups.get(id) ?? {
          GroupId: id,
          Name: text(g["Name"]),
          Category: g["Category"] === "Committee" ? "Committee" : "List",
          SyncWithNewsletter: g["SyncWithNewsletter"] !== false,
          DisallowOptOut: g["DisallowOptOut"] === true,
          Members: new Map(),
        };
        for (const m of Array.isArray(g["Members"]) ? (g["Members"] as unknown[]) : [])
          group.Members.set(resolve(contactAlias, m), { DoNotContact: false, AddedDate: iso() });
        groups.set(id, group);
        madeGroups.push({ GroupId: id, Name: group.Name });
      }
      return { contacts: made, groups: madeGroups };
    },
    token: () => {
      const key = randomBytes(20).toString("hex");
      keys.add(key);
      return { api_key: key };
    },
    revoke: () => {
      keys.clear();
      return { revoked: true };
    },
    act: (body: Record<string, unknown>) => {
      switch (body["action"]) {
        case "set_restriction": {
          const c = contactById(body["contact_id"]);
          const r = body["restriction"] as Restriction;
          if (!RESTRICTIONS.includes(r))
            throw new EmulatorControlError(
              "invalid",
              `restriction must be one of ${RESTRICTIONS.join(", ")}`,
            );
          const e = primaryOf(c);
          if (!e) throw new EmulatorControlError("no_email", `contact ${c.ContactId} has no email address`);
          e.Restriction = r;
          touch(c);
          return { contact: detail(c) };
        }
        case "update_contact": {
          const c = contactById(body["contact_id"]);
          const changes = (body["changes"] ?? {}) as Record<string, unknown>;
          for (const k of ["FirstName", "LastName", "OrganizationName"] as const)
            if (k in changes) c[k] = text(changes[k]) || null;
          if (typeof changes["EmailAddress"] === "string") {
            const e = primaryOf(c);
            if (e) e.EmailAddress = changes["EmailAddress"];
            else
              c.Emails.push({
                ContactEmailAddressId: nextEmail++,
                EmailAddress: changes["EmailAddress"],
                EmailAddressTypeId: 1,
                IsDefault: true,
                Restriction: "None",
              });
          }
          touch(c);
          return { contact: detail(c) };
        }
        case "delete_contact": {
          const c = contactById(body["contact_id"]);
          c.IsDeleted = true;
          touch(c);
          return { contact: { ContactId: c.ContactId } };
        }
        case "add_to_group":
        case "remove_from_group":
        case "set_list_do_not_contact": {
          const c = contactById(body["contact_id"]);
          const g = groupById(body["group_id"], body["group_name"]);
          if (body["action"] === "add_to_group")
            g.Members.set(c.ContactId, { DoNotContact: false, AddedDate: iso() });
          else if (body["action"] === "remove_from_group") g.Members.delete(c.ContactId);
          else {
            const m = g.Members.get(c.ContactId);
            if (!m)
              throw new EmulatorControlError("not_member", `contact ${c.ContactId} is not in ${g.Name}`);
            m.DoNotContact = body["do_not_contact"] === true;
          }
          return { contact: { ContactId: c.ContactId }, group: groupItem(g) };
        }
        case "create_group": {
          const g: GzGroup = {
            GroupId: nextGroup++,
            Name: text(body["name"]),
            Category: body["category"] === "Committee" ? "Committee" : "List",
            SyncWithNewsletter: body["sync_with_newsletter"] !== false,
            DisallowOptOut: false,
            Members: new Map(),
          };
          groups.set(g.GroupId, g);
          return { group: groupItem(g) };
        }
        case "update_group": {
          const g = groupById(body["group_id"]);
          if (typeof body["name"] === "string") g.Name = body["name"];
          if (typeof body["sync_with_newsletter"] === "boolean")
            g.SyncWithNewsletter = body["sync_with_newsletter"];
          return { group: groupItem(g) };
        }
        case "delete_group": {
          const g = groupById(body["group_id"]);
          groups.delete(g.GroupId);
          return { deleted: g.GroupId };
        }
        default:
          throw new EmulatorControlError("unknown_action", `unknown act ${text(body["action"])}`);
      }
    },
    state: () => ({
      contacts: [...contacts.values()],
      groups: [...groups.values()].map((g) => ({
        ...groupItem(g),
        Members: [...g.Members.entries()].map(([ContactId, m]) => ({ ContactId, ...m })),
      })),
    }),
  });

  return { app, kit, contacts, groups, quirks };
}

export type StartedGrowthZoneEmulator = ReturnType<typeof createGrowthZoneEmulator> & {
  baseUrl: string;
  close: () => Promise<void>;
};

export async function startGrowthZoneEmulator(
  options: GrowthZoneEmulatorOptions & { port?: number } = {},
): Promise<StartedGrowthZoneEmulator> {
  const { port, ...rest } = options;
  const emulator = createGrowthZoneEmulator(rest);
  const baseUrl = await listenOnLoopback(emulator.app, port ?? 0);
  return { ...emulator, baseUrl, close: () => emulator.app.close() };
}
