/**
 * The canonical emulated world in Kindful's own shapes: people as contacts (persons, or
 * organisations by their company name), "Integration Email Opt-in" for the opt-out from all email,
 * a topic's opt-out as a Yes/No custom field of the topic's name, lists as groups, and admin acts as
 * this emulator's control acts. Kindful gives its own numeric ids: the world's ids are kept as
 * aliases the control API resolves, and the seed answers the ids Kindful gave.
 */
import {
  notApplicable,
  type WorldAct,
  type WorldPerson,
  type WorldSeed,
  type WorldSeeded,
} from "../../emulator-kit/world";

const SYSTEM = "Kindful";
const CHUNK = 1_000;

function contactSeed(p: WorldPerson): Record<string, unknown> {
  const topicOptOuts: Record<string, string> = {};
  let optedOut = p.opted_out_of_all_email === true || p.email?.opted_out === true;
  for (const r of [...(p.consent_records ?? [])].sort((a, b) => Date.parse(a.at) - Date.parse(b.at))) {
    if (r.topic !== undefined) topicOptOuts[r.topic] = r.response === "opt_out" ? "Yes" : "No";
    else optedOut = r.response === "opt_out";
  }
  return {
    alias: p.id,
    first_name: p.first ?? null,
    last_name: p.last ?? null,
    company_name: p.kind === "organisation" ? (p.organisation_name ?? "Organisation") : null,
    email: p.email?.address ?? null,
    alt_email: p.other_emails?.[0]?.address ?? null,
    email_opt_in: optedOut ? "No" : "Yes",
    ...(Object.keys(topicOptOuts).length > 0 ? { custom_fields: topicOptOuts } : {}),
    created_at: p.added_at,
    updated_at: p.modified_at,
  };
}

/** The `POST /__emulator/seed` bodies: contacts in chunks, then groups (members by alias). */
export function seedBodies(world: WorldSeed): Record<string, unknown>[] {
  if ((world.contacts ?? []).length > 0)
    throw notApplicable(SYSTEM, { as: "contact", action: "sign_up", email: "", list_ids: [] });
  const people = world.people ?? [];
  const bodies: Record<string, unknown>[] = [];
  for (let i = 0; i < people.length; i += CHUNK)
    bodies.push({ contacts: people.slice(i, i + CHUNK).map(contactSeed) });
  if ((world.lists ?? []).length > 0)
    bodies.push({
      groups: (world.lists ?? []).map((l) => ({ alias: l.id, name: l.name, members: l.members ?? [] })),
    });
  return bodies;
}

export function seeded(answers: readonly unknown[]): WorldSeeded {
  const out: WorldSeeded = { records: [], lists: [] };
  for (const a of answers) {
    const body = (a ?? {}) as { contacts?: number[]; groups?: { id: number; name: string }[] };
    out.records.push(...(body.contacts ?? []).map(String));
    out.lists.push(...(body.groups ?? []).map((g) => ({ id: String(g.id), name: g.name })));
  }
  return out;
}

export function actBody(act: WorldAct): Record<string, unknown> {
  if (act.as === "contact") throw notApplicable(SYSTEM, act);
  const update = (changes: Record<string, unknown>, custom?: Record<string, string>) => ({
    action: "update_contact",
    contact_id: "id" in act ? act.id : "",
    changes,
    ...(custom ? { custom_fields: custom } : {}),
  });
  switch (act.action) {
    case "opt_out_of_all_email":
    case "opt_out_address":
      return update({ email_opt_in: "No" });
    case "clear_opt_out_of_all_email":
    case "clear_opt_out_address":
      return update({ email_opt_in: "Yes" });
    case "change_primary_email":
      return update({ email: act.address });
    case "update_name":
      return update({
        ...(act.first !== undefined ? { first_name: act.first } : {}),
        ...(act.last !== undefined ? { last_name: act.last } : {}),
      });
    case "record_consent":
      return act.topic !== undefined
        ? update({}, { [act.topic]: act.response === "opt_out" ? "Yes" : "No" })
        : update({ email_opt_in: act.response === "opt_out" ? "No" : "Yes" });
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

/** The contact an act touched, by the id Kindful gave it. */
export function actRecordId(answer: unknown, act: WorldAct): string | null {
  const id = (answer as { contact?: { id?: unknown } } | undefined)?.contact?.id;
  if (typeof id === "number") return String(id);
  return act.as === "admin" && "id" in act ? act.id : null;
}
