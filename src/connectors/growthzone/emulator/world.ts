/**
 * The canonical emulated world in GrowthZone's own shapes: people as contacts (individuals or
 * organisations) with their email addresses, the opt-out from all email as the primary address's
 * Do Not Contact restriction, a topic's opt-out as Do Not Contact on the list of the topic's name,
 * lists as lists set to synchronise with the newsletter, and admin acts as this emulator's control
 * acts. GrowthZone numbers its own contacts: the world's ids are aliases the control API resolves
 * (a numeric one is kept as the contact id).
 */
import {
  notApplicable,
  type WorldAct,
  type WorldPerson,
  type WorldSeed,
  type WorldSeeded,
} from "../../emulator-kit/world";

const SYSTEM = "GrowthZone";
const CHUNK = 1_000;

function contactSeed(p: WorldPerson): Record<string, unknown> {
  let optedOut = p.opted_out_of_all_email === true || p.email?.opted_out === true;
  for (const r of [...(p.consent_records ?? [])].sort((a, b) => Date.parse(a.at) - Date.parse(b.at)))
    if (r.topic === undefined) optedOut = r.response === "opt_out";
  const emails = [
    ...(p.email
      ? [{ EmailAddress: p.email.address, IsDefault: true, Restriction: optedOut ? "DoNotContact" : "None" }]
      : []),
    ...(p.other_emails ?? []).map((e) => ({
      EmailAddress: e.address,
      IsDefault: false,
      Restriction: "None",
    })),
  ];
  return {
    alias: p.id,
    SystemContactTypeId: p.kind === "organisation" ? 2 : 1,
    ...(p.first !== undefined ? { FirstName: p.first } : {}),
    ...(p.last !== undefined ? { LastName: p.last } : {}),
    ...(p.kind === "organisation" ? { OrganizationName: p.organisation_name ?? "Organisation" } : {}),
    Emails: emails,
    CreatedDate: p.added_at,
    ModifiedDate: p.modified_at,
  };
}

/** The `POST /__emulator/seed` bodies: contacts in chunks, then the lists with their members. */
export function seedBodies(world: WorldSeed): Record<string, unknown>[] {
  if ((world.contacts ?? []).length > 0)
    throw notApplicable(SYSTEM, { as: "contact", action: "sign_up", email: "", list_ids: [] });
  const people = world.people ?? [];
  const bodies: Record<string, unknown>[] = [];
  for (let i = 0; i < people.length; i += CHUNK)
    bodies.push({ contacts: people.slice(i, i + CHUNK).map(contactSeed) });
  const lists = world.lists ?? [];
  if (lists.length > 0)
    bodies.push({
      groups: lists.map((l) => ({
        alias: l.id,
        Name: l.name,
        SyncWithNewsletter: true,
        Members: l.members ?? [],
      })),
    });
  return bodies;
}

export function seeded(answers: readonly unknown[]): WorldSeeded {
  const out: WorldSeeded = { records: [], lists: [] };
  for (const a of answers) {
    const body = (a ?? {}) as { contacts?: number[]; groups?: { GroupId: number; Name: string }[] };
    out.records.push(...(body.contacts ?? []).map(String));
    out.lists.push(...(body.groups ?? []).map((g) => ({ id: String(g.GroupId), name: g.Name })));
  }
  return out;
}

export function actBody(act: WorldAct): Record<string, unknown> {
  if (act.as === "contact") throw notApplicable(SYSTEM, act);
  switch (act.action) {
    case "opt_out_of_all_email":
    case "opt_out_address":
      return { action: "set_restriction", contact_id: act.id, restriction: "DoNotContact" };
    case "clear_opt_out_of_all_email":
    case "clear_opt_out_address":
      return { action: "set_restriction", contact_id: act.id, restriction: "None" };
    case "change_primary_email":
      return { action: "update_contact", contact_id: act.id, changes: { EmailAddress: act.address } };
    case "update_name":
      return {
        action: "update_contact",
        contact_id: act.id,
        changes: {
          ...(act.first !== undefined ? { FirstName: act.first } : {}),
          ...(act.last !== undefined ? { LastName: act.last } : {}),
        },
      };
    case "record_consent":
      return act.topic !== undefined
        ? {
            action: "set_list_do_not_contact",
            contact_id: act.id,
            group_name: act.topic,
            do_not_contact: act.response === "opt_out",
          }
        : {
            action: "set_restriction",
            contact_id: act.id,
            restriction: act.response === "opt_out" ? "DoNotContact" : "None",
          };
    case "add_to_list":
    case "remove_from_list":
      return {
        action: act.action === "add_to_list" ? "add_to_group" : "remove_from_group",
        contact_id: act.id,
        group_id: act.list_id,
      };
    case "unsubscribe":
      throw notApplicable(SYSTEM, act);
  }
}

export function actRecordId(answer: unknown, act: WorldAct): string | null {
  const id = (answer as { contact?: { ContactId?: unknown } } | undefined)?.contact?.ContactId;
  if (typeof id === "number") return String(id);
  return act.as === "admin" && "id" in act ? act.id : null;
}
