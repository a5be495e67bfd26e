/**
 * The emulated world in canonical terms: the people a CRM holds, the contacts an email platform
 * holds, their lists, and the acts people and admins do there. Each emulator's `world.ts` turns
 * these into its own seed shapes and control acts, so the demo, the tests and the benchmarks build
 * and drive a world without naming any vendor's fields.
 */

/** A consent response a CRM keeps on record for a person. */
export type WorldConsentRecord = {
  /** The construct the response is for (a consent category's name); absent: all email. */
  topic?: string;
  response: "opt_in" | "opt_out";
  at: string;
  /** When it was entered, if later than `at`. */
  recorded_at?: string;
  /** How it reached the system, in the system's own words ("Web form", "Phone"). */
  source: string;
  statement?: string;
  /** The staff member or integration that entered it. */
  entered_by: string;
};

/** A person (or organisation) a CRM holds. */
export type WorldPerson = {
  /** The record id the system is to give it. */
  id: string;
  kind: "individual" | "organisation";
  first?: string;
  last?: string;
  middle?: string;
  title?: string;
  preferred_name?: string;
  gender?: string;
  organisation_name?: string;
  lookup_id?: string;
  /** The primary address, and whether the address itself is flagged not to be emailed. */
  email?: { address: string; opted_out?: boolean };
  other_emails?: { address: string; label: string }[];
  /** The CRM's own opt-out from all email (a flag on the record). */
  opted_out_of_all_email?: boolean;
  deceased?: boolean;
  inactive?: boolean;
  consent_records?: WorldConsentRecord[];
  added_at: string;
  modified_at: string;
};

/** A contact an email platform holds, with its subscription as the platform shows it. */
export type WorldContact = {
  id: string;
  email: string;
  first?: string;
  last?: string;
  /** Who put the contact in the account: the person (a sign-up form) or the account (an import). */
  added_by: "contact" | "account";
  added_at: string;
  modified_at: string;
  subscription:
    | { status: "subscribed"; explicit: boolean; since?: string }
    | {
        status: "unsubscribed";
        by: "contact" | "account";
        at: string;
        reason?: string;
        mechanism?: "unsubscribe_link" | "one_click_header" | "spam_complaint";
      };
  list_ids: string[];
};

export type WorldList = { id: string; name: string; description?: string; members?: string[] };

export type WorldSeed = {
  people?: WorldPerson[];
  contacts?: WorldContact[];
  lists?: WorldList[];
  /**
   * Topics the system lets its contacts choose among, where it has such a construct (Mailchimp's
   * groups); a system without one ignores them.
   */
  topics?: { name: string }[];
};

/** What a seed made: the record ids and lists the system holds now. */
export type WorldSeeded = { records: string[]; lists: { id: string; name: string }[] };

/** A person's act (the common control API of DESIGN.md §4) or an admin's, in canonical terms. */
export type WorldAct =
  | {
      as: "contact";
      action: "unsubscribe" | "one_click_unsubscribe" | "spam_complaint" | "confirm_resubscribe";
      email: string;
      reason?: string;
    }
  | {
      as: "contact";
      action: "sign_up";
      email: string;
      first_name?: string;
      last_name?: string;
      list_ids: string[];
    }
  /** The CRM's own flag: opted out of all email, or cleared by an admin. */
  | { as: "admin"; action: "opt_out_of_all_email" | "clear_opt_out_of_all_email"; id: string }
  /** An address flagged not to be emailed, or cleared. */
  | { as: "admin"; action: "opt_out_address" | "clear_opt_out_address"; id: string; address?: string }
  /** An account user unsubscribing a contact in a platform. */
  | { as: "admin"; action: "unsubscribe"; email: string; reason?: string }
  | { as: "admin"; action: "change_primary_email"; id: string; address: string; remove_old?: boolean }
  | { as: "admin"; action: "update_name"; id: string; first?: string; last?: string }
  | {
      as: "admin";
      action: "record_consent";
      id: string;
      topic?: string;
      response: "opt_in" | "opt_out";
      source: string;
      statement?: string;
    }
  | { as: "admin"; action: "add_to_list" | "remove_from_list"; id: string; list_id: string };

/** What an act answered: the id of the record it touched, when the system named one. */
export type WorldActAnswer = { record_id: string | null; answer: unknown };

/** An act the system refused (no such person, not applicable there), with the control API's code. */
export class WorldActError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** POSTs JSON to an emulator's control API; anything but 2xx is a WorldActError with its answer. */
export async function postControl(origin: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${origin}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const answer: unknown = text === "" ? undefined : safeJson(text);
  if (!res.ok) {
    const code =
      answer !== null && typeof answer === "object" && "code" in answer && typeof answer.code === "string"
        ? answer.code
        : `http_${res.status}`;
    throw new WorldActError(code, `${path} answered ${res.status}: ${text.slice(0, 500)}`);
  }
  return answer;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** An act this system has no way to do (a person's act in a CRM, a CRM flag on a platform). */
export const notApplicable = (system: string, act: WorldAct): WorldActError =>
  new WorldActError("not_applicable", `${system} has no "${act.as} ${act.action}" act`);

/** How an emulator's `world.ts` turns the canonical world into its control API's bodies. */
export type EmulatorWorld = {
  seedBodies: (world: WorldSeed) => Record<string, unknown>[];
  seeded: (answers: readonly unknown[]) => WorldSeeded;
  actBody: (act: WorldAct) => Record<string, unknown>;
  /** The record an act touched, from the control API's answer. */
  actRecordId: (answer: unknown, act: WorldAct) => string | null;
};

/**
 * Granting, seeding and acting through an emulator's control API (`/__emulator/token`, `seed`,
 * `act`), the same for every emulator: a grant is a fresh refresh token for the OAuth client, with
 * whatever else the system's credentials hold (`extra`: an API subscription key…).
 */
export function controlApi(
  origin: string,
  options: { client: { id: string; secret: string }; extra?: Record<string, string>; world: EmulatorWorld },
) {
  const { client, world } = options;
  return {
    grant: async (as?: { client_id?: string }): Promise<Record<string, string>> => {
      const clientId = as?.client_id ?? client.id;
      const token = (await postControl(origin, "/__emulator/token", { client_id: clientId })) as {
        refresh_token?: unknown;
      };
      if (typeof token.refresh_token !== "string")
        throw new WorldActError("no_refresh_token", `${origin}/__emulator/token answered no refresh token`);
      return {
        client_id: clientId,
        client_secret: client.secret,
        refresh_token: token.refresh_token,
        ...(options.extra ?? {}),
      };
    },
    seed: async (w: WorldSeed): Promise<WorldSeeded> => {
      const answers: unknown[] = [];
      for (const body of world.seedBodies(w))
        answers.push(await postControl(origin, "/__emulator/seed", body));
      return world.seeded(answers);
    },
    act: async (act: WorldAct): Promise<WorldActAnswer> => {
      const answer = await postControl(origin, "/__emulator/act", world.actBody(act));
      return { record_id: world.actRecordId(answer, act), answer };
    },
  };
}
