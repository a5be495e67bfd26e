/**
 * The canonical emulated world in Constant Contact's own shapes: contacts with their permission to
 * send (who opted them in or out, when, how), lists, and acts as this emulator's control acts. An
 * account holds contacts, not a CRM's people: those are refused.
 */
import { z } from "zod";
import {
  notApplicable,
  type WorldAct,
  type WorldContact,
  type WorldSeed,
  type WorldSeeded,
} from "../../emulator-kit/world";

const SYSTEM = "Constant Contact";
const CHUNK = 2_000;

const MECHANISMS = {
  unsubscribe_link: "footer_link",
  one_click_header: "one_click",
  spam_complaint: "spam_complaint",
} as const;

function contactSeed(c: WorldContact): Record<string, unknown> {
  const s = c.subscription;
  return {
    contact_id: c.id,
    ...(c.first !== undefined ? { first_name: c.first } : {}),
    ...(c.last !== undefined ? { last_name: c.last } : {}),
    create_source: c.added_by === "contact" ? "Contact" : "Account",
    created_at: c.added_at,
    updated_at: c.modified_at,
    email_address: {
      address: c.email,
      created_at: c.added_at,
      ...(s.status === "subscribed"
        ? { permission_to_send: s.explicit ? "explicit" : "implicit", opt_in_date: s.since ?? c.added_at }
        : {
            permission_to_send: "unsubscribed",
            opt_out_source: s.by === "contact" ? "Contact" : "Account",
            opt_out_date: s.at,
            ...(s.reason !== undefined ? { opt_out_reason: s.reason } : {}),
          }),
    },
    ...(s.status === "unsubscribed" && s.mechanism !== undefined
      ? { opt_out_mechanism: MECHANISMS[s.mechanism] }
      : {}),
    list_memberships: s.status === "unsubscribed" ? [] : c.list_ids,
  };
}

/** The `POST /__emulator/seed` bodies for a world: the lists first, then contacts in chunks. */
export function seedBodies(world: WorldSeed): Record<string, unknown>[] {
  if ((world.people ?? []).length > 0)
    throw notApplicable(SYSTEM, { as: "admin", action: "opt_out_of_all_email", id: "" });
  const bodies: Record<string, unknown>[] = [];
  if ((world.lists ?? []).length > 0)
    bodies.push({
      lists: (world.lists ?? []).map((l) => ({
        list_id: l.id,
        name: l.name,
        ...(l.description !== undefined ? { description: l.description } : {}),
      })),
    });
  const contacts = world.contacts ?? [];
  for (let i = 0; i < contacts.length; i += CHUNK)
    bodies.push({ contacts: contacts.slice(i, i + CHUNK).map(contactSeed) });
  return bodies;
}

/** What the seed answers added up: contact ids and lists. */
export function seeded(answers: readonly unknown[]): WorldSeeded {
  const out: WorldSeeded = { records: [], lists: [] };
  for (const a of answers) {
    const body = (a ?? {}) as {
      contacts?: { contact_id: string }[];
      lists?: { list_id: string; name: string }[];
    };
    out.records.push(...(body.contacts ?? []).map((c) => c.contact_id));
    out.lists.push(...(body.lists ?? []).map((l) => ({ id: l.list_id, name: l.name })));
  }
  return out;
}

/** The control act for a canonical act; a CRM's own flags and records are not acts an account has. */
export function actBody(act: WorldAct): Record<string, unknown> {
  if (act.as === "contact")
    return act.action === "sign_up"
      ? {
          as: "contact",
          action: "sign_up",
          email: act.email,
          ...(act.first_name !== undefined ? { first_name: act.first_name } : {}),
          ...(act.last_name !== undefined ? { last_name: act.last_name } : {}),
          list_ids: act.list_ids,
        }
      : {
          as: "contact",
          action: act.action,
          email: act.email,
          ...(act.reason !== undefined ? { reason: act.reason } : {}),
        };
  if (act.action === "unsubscribe")
    return {
      as: "admin",
      action: "unsubscribe",
      email: act.email,
      ...(act.reason !== undefined ? { reason: act.reason } : {}),
    };
  throw notApplicable(SYSTEM, act);
}

/** The contact id an act answered with, when it names one. */
export function actRecordId(answer: unknown): string | null {
  const contact = (answer as { contact?: { contact_id?: unknown } } | undefined)?.contact;
  return typeof contact?.contact_id === "string" ? contact.contact_id : null;
}

const StateSchema = z.object({
  contacts: z.array(
    z.object({
      email_address: z.object({ address: z.string() }).optional(),
      _emulator: z.object({
        resubscribe: z.object({ confirmed_at: z.string().nullable() }).nullable(),
      }),
    }),
  ),
  confirmation_emails: z.array(z.object({ kind: z.string(), email: z.string() })),
});

/** Addresses sent a resubscribe confirmation email that the person has not confirmed yet. */
export async function pendingConfirmations(origin: string): Promise<string[]> {
  const res = await fetch(`${origin}/__emulator/state`);
  const state = StateSchema.parse(await res.json());
  const sent = new Set(
    state.confirmation_emails.filter((m) => m.kind === "resubscribe").map((m) => m.email.toLowerCase()),
  );
  return state.contacts
    .filter((c) => c._emulator.resubscribe !== null && c._emulator.resubscribe.confirmed_at === null)
    .map((c) => c.email_address?.address.toLowerCase() ?? "")
    .filter((address) => sent.has(address));
}
