/**
 * The canonical emulated world in Raiser's Edge NXT's own shapes: people as constituents (with their
 * email addresses, "Requests No Email" and consent records), lists as static constituent lists, and
 * admin acts as this emulator's control acts. Constituents do not act in a CRM: a person's act here
 * is refused.
 */
import {
  notApplicable,
  type WorldAct,
  type WorldPerson,
  type WorldSeed,
  type WorldSeeded,
} from "../../emulator-kit/world";

const SYSTEM = "Raiser's Edge NXT";
const CHUNK = 1_000;

function constituentSeed(p: WorldPerson): Record<string, unknown> {
  const consents = (p.consent_records ?? []).map((r) => ({
    channel: "Email",
    ...(r.topic !== undefined ? { category: r.topic } : {}),
    constituent_consent_response: r.response === "opt_in" ? "OptIn" : "OptOut",
    consent_date: r.at,
    date_added: r.recorded_at ?? r.at,
    source: r.source,
    ...(r.statement !== undefined ? { consent_statement: r.statement } : {}),
    user_name: r.entered_by,
  }));
  return {
    id: p.id,
    ...(p.lookup_id !== undefined ? { lookup_id: p.lookup_id } : {}),
    type: p.kind === "organisation" ? "Organization" : "Individual",
    ...(p.kind === "organisation"
      ? { name: p.organisation_name ?? "Organisation" }
      : {
          ...(p.first !== undefined ? { first: p.first } : {}),
          ...(p.last !== undefined ? { last: p.last } : {}),
          ...(p.title !== undefined ? { title: p.title } : {}),
          ...(p.middle !== undefined ? { middle: p.middle } : {}),
          ...(p.preferred_name !== undefined ? { preferred_name: p.preferred_name } : {}),
          ...(p.gender !== undefined ? { gender: p.gender } : {}),
        }),
    date_added: p.added_at,
    date_modified: p.modified_at,
    ...(p.opted_out_of_all_email === true ? { requests_no_email: true } : {}),
    ...(p.deceased === true ? { deceased: true } : {}),
    ...(p.inactive === true ? { inactive: true } : {}),
    ...(p.email !== undefined
      ? {
          email: {
            address: p.email.address,
            type: "Email",
            primary: true,
            do_not_email: p.email.opted_out === true,
            inactive: false,
          },
        }
      : {}),
    ...(p.other_emails !== undefined && p.other_emails.length > 0
      ? {
          email_addresses: p.other_emails.map((e) => ({
            address: e.address,
            type: e.label,
            primary: false,
            do_not_email: false,
            inactive: false,
          })),
        }
      : {}),
    ...(consents.length > 0 ? { consents } : {}),
  };
}

/** The `POST /__emulator/seed` bodies for a world: constituents in chunks, then the lists. */
export function seedBodies(world: WorldSeed): Record<string, unknown>[] {
  if ((world.contacts ?? []).length > 0)
    throw notApplicable(SYSTEM, { as: "contact", action: "sign_up", email: "", list_ids: [] });
  const people = world.people ?? [];
  const bodies: Record<string, unknown>[] = [];
  for (let i = 0; i < people.length; i += CHUNK)
    bodies.push({ constituents: people.slice(i, i + CHUNK).map(constituentSeed) });
  if ((world.lists ?? []).length > 0)
    bodies.push({
      lists: (world.lists ?? []).map((l) => ({
        id: l.id,
        name: l.name,
        ...(l.description !== undefined ? { description: l.description } : {}),
        list_type: "Constituent",
        ids: l.members ?? [],
      })),
    });
  return bodies;
}

/** What the seed answers added up: constituent ids and lists. */
export function seeded(answers: readonly unknown[]): WorldSeeded {
  const out: WorldSeeded = { records: [], lists: [] };
  for (const a of answers) {
    const body = (a ?? {}) as { constituents?: { id: string }[]; lists?: { id: string; name: string }[] };
    out.records.push(...(body.constituents ?? []).map((c) => c.id));
    out.lists.push(...(body.lists ?? []));
  }
  return out;
}

/** The control act for a canonical act; a person's act is not one a CRM has. */
export function actBody(act: WorldAct): Record<string, unknown> {
  if (act.as === "contact") throw notApplicable(SYSTEM, act);
  switch (act.action) {
    case "opt_out_of_all_email":
      return { as: "admin", action: "set_requests_no_email", constituent_id: act.id };
    case "clear_opt_out_of_all_email":
      return { as: "admin", action: "clear_requests_no_email", constituent_id: act.id };
    case "opt_out_address":
    case "clear_opt_out_address":
      return {
        as: "admin",
        action: act.action === "opt_out_address" ? "set_do_not_email" : "clear_do_not_email",
        constituent_id: act.id,
        ...(act.address !== undefined ? { address: act.address } : {}),
      };
    case "change_primary_email":
      return {
        as: "admin",
        action: "change_primary_email",
        constituent_id: act.id,
        new_address: act.address,
        remove_old: act.remove_old === true,
      };
    case "update_name":
      return {
        as: "admin",
        action: "update_constituent",
        constituent_id: act.id,
        changes: {
          ...(act.first !== undefined ? { first: act.first } : {}),
          ...(act.last !== undefined ? { last: act.last } : {}),
        },
      };
    case "record_consent":
      return {
        as: "admin",
        action: "add_consent",
        constituent_id: act.id,
        ...(act.topic !== undefined ? { category: act.topic } : {}),
        response: act.response === "opt_in" ? "OptIn" : "OptOut",
        consent: {
          source: act.source,
          ...(act.statement !== undefined ? { consent_statement: act.statement } : {}),
        },
      };
    case "add_to_list":
    case "remove_from_list":
      return { as: "admin", action: act.action, list_id: act.list_id, ids: [act.id] };
    case "unsubscribe":
      throw notApplicable(SYSTEM, act);
  }
}

/** The constituent an act touched: an admin's acts name it. */
export function actRecordId(_answer: unknown, act: WorldAct): string | null {
  return act.as === "admin" && "id" in act ? act.id : null;
}
