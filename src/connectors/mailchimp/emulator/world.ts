/**
 * The canonical emulated world in Mailchimp's own shapes: one audience, its tags standing for the
 * world's lists, members with their status and how they left (a link, the one-click header, a spam
 * complaint, an account user), and acts as this emulator's control acts. An audience holds
 * members, not a CRM's people: those are refused.
 */
import { z } from "zod";
import {
  notApplicable,
  type WorldAct,
  type WorldContact,
  type WorldSeed,
  type WorldSeeded,
} from "../../emulator-kit/world";

const SYSTEM = "Mailchimp";
const CHUNK = 2_000;
import { DEFAULT_AUDIENCE } from "./mailchimp-emulator";

/** The audience every emulated world's connection reads: the account's one audience. */
export const WORLD_AUDIENCE = DEFAULT_AUDIENCE;

const VIA = {
  unsubscribe_link: "link",
  one_click_header: "one_click",
  spam_complaint: "spam_complaint",
} as const;

function memberSeed(c: WorldContact, tagOf: (listId: string) => string | undefined): Record<string, unknown> {
  const s = c.subscription;
  return {
    email: c.email,
    status: s.status,
    ...(c.first !== undefined ? { first_name: c.first } : {}),
    ...(c.last !== undefined ? { last_name: c.last } : {}),
    source: c.added_by === "contact" ? "Hosted Signup Form" : "Import",
    timestamp_signup: c.added_by === "contact" ? c.added_at : "",
    last_changed: c.modified_at,
    ...(s.status === "subscribed" ? { timestamp_opt: s.since ?? c.added_at } : {}),
    ...(s.status === "unsubscribed"
      ? {
          unsubscribe: {
            by: s.by === "contact" ? "user" : "admin",
            ...(s.by === "contact"
              ? { via: s.mechanism !== undefined ? VIA[s.mechanism] : "link" }
              : { via: "admin" }),
            ...(s.reason !== undefined ? { reason: s.reason } : {}),
            at: s.at,
          },
        }
      : {}),
    tags: c.list_ids.map(tagOf).filter((t): t is string => t !== undefined),
  };
}

/** The `POST /__emulator/seed` bodies for a world: the audience and its tags, then members in chunks. */
export function seedBodies(world: WorldSeed): Record<string, unknown>[] {
  if ((world.people ?? []).length > 0)
    throw notApplicable(SYSTEM, { as: "admin", action: "opt_out_of_all_email", id: "" });
  const lists = world.lists ?? [];
  const tagOf = (listId: string): string | undefined => lists.find((l) => l.id === listId)?.name;
  const bodies: Record<string, unknown>[] = [
    {
      audience: {
        ...WORLD_AUDIENCE,
        double_optin: true,
        tags: lists.map((l) => l.name),
        ...((world.topics ?? []).length > 0
          ? { interest_categories: [{ title: "Topics", interests: (world.topics ?? []).map((t) => t.name) }] }
          : {}),
      },
    },
  ];
  const contacts = world.contacts ?? [];
  for (let i = 0; i < contacts.length; i += CHUNK)
    bodies.push({
      list_id: WORLD_AUDIENCE.id,
      members: contacts.slice(i, i + CHUNK).map((c) => memberSeed(c, tagOf)),
    });
  return bodies;
}

/** What the seed answers added up: member ids (subscriber hashes) and tags as lists (`tag:<id>`). */
export function seeded(answers: readonly unknown[]): WorldSeeded {
  const out: WorldSeeded = { records: [], lists: [] };
  for (const a of answers) {
    const body = (a ?? {}) as {
      members?: { id: string }[];
      audience?: { tags?: { id: number; name: string }[] };
    };
    out.records.push(...(body.members ?? []).map((m) => m.id));
    out.lists.push(...(body.audience?.tags ?? []).map((t) => ({ id: `tag:${t.id}`, name: t.name })));
  }
  return out;
}

/** The control act for a canonical act; a CRM's own flags and records are not acts an audience has. */
export function actBody(act: WorldAct): Record<string, unknown> {
  const base = { list_id: WORLD_AUDIENCE.id };
  if (act.as === "contact") {
    if (act.action === "sign_up")
      return {
        ...base,
        as: "contact",
        action: "sign_up",
        email: act.email,
        ...(act.first_name !== undefined ? { first_name: act.first_name } : {}),
        ...(act.last_name !== undefined ? { last_name: act.last_name } : {}),
        // World list ids are tags here (`tag:<id>`); a sign-up form names tags by name or id.
        tags: act.list_ids.map((id) => id.replace(/^tag:/, "")),
      };
    return {
      ...base,
      as: "contact",
      action: act.action === "confirm_resubscribe" ? "confirm" : act.action,
      email: act.email,
      ...(act.reason !== undefined ? { reason: act.reason } : {}),
    };
  }
  if (act.action === "unsubscribe")
    return {
      ...base,
      as: "admin",
      action: "unsubscribe",
      email: act.email,
      ...(act.reason !== undefined ? { reason: act.reason } : {}),
    };
  throw notApplicable(SYSTEM, act);
}

/** The member (subscriber hash) an act answered with. */
export function actRecordId(answer: unknown): string | null {
  const member = (answer as { member?: { id?: unknown } } | undefined)?.member;
  return typeof member?.id === "string" ? member.id : null;
}

const StateSchema = z.object({
  audiences: z.array(
    z.object({
      members: z.array(
        z.object({
          email_address: z.string(),
          status: z.string(),
          _emulator: z.object({ confirmation_sent_at: z.string().nullable() }),
        }),
      ),
    }),
  ),
});

/** Addresses sent a confirmation email (a resubscribe or a double opt-in) not yet confirmed. */
export async function pendingConfirmations(origin: string): Promise<string[]> {
  const res = await fetch(`${origin}/__emulator/state`);
  const state = StateSchema.parse(await res.json());
  return state.audiences.flatMap((a) =>
    a.members
      .filter((m) => m.status === "pending" && m._emulator.confirmation_sent_at !== null)
      .map((m) => m.email_address.toLowerCase()),
  );
}
