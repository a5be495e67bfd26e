/**
 * The demo's activity simulator: people and admins acting in the emulated systems at a visible pace
 * (unsubscribing by link, one-click header or spam complaint, signing up, confirming a resubscribe;
 * admins editing people, flags, lists and consent) and people on Concord's own pages (its one-click
 * URL, its preference centre, its sign-up form and confirmation link), driven only through the emulated world's
 * canonical acts (each emulator turns them into its own control acts), with every act reported as
 * one readable event that names ids, never addresses.
 */
import type { WorldAct, WorldActAnswer } from "../connectors/emulator-kit/world";
import type { CrmWords } from "../connectors/manifest";
import { createRandom } from "./random";
import {
  CC_LISTS,
  DEMO_RANDOM_SEED,
  RE_LISTS,
  emailLocalPart,
  type CcAccountKey,
  type DemoPerson,
  type DemoWorld,
  type ReListKey,
} from "./seed";
import { errorMessage } from "../core/error-code";

/**
 * The part a system plays in the demo's world: the CRM, the main platform account (global
 * opt-outs, the newsletter) or the appeals account (one topic). The demo maps each to its
 * connections (several, when a world fans out).
 */
export type SimulatedRole = "crm" | "main" | "appeals";

export type SimulatorEvent = {
  at: string;
  /** The connection the act was done in. */
  system: string;
  /**
   * The act as the emulated world names it, e.g. `unsubscribe`, `opt_out_of_all_email`; or an act
   * on Concord's own pages (`concord_one_click`, `concord_preferences`, `concord_sign_up`,
   * `concord_confirm_sign_up`).
   */
  action: WorldAct["action"] | ConcordPageAct;
  actor: "contact" | "admin";
  /** What happened and what Concord should make of it, without personal data. */
  description: string;
  /** The CRM record's id, when the act concerned one. */
  crm_record: string | null;
  /** The platform contact's id, when the emulator answered with one. */
  platform_record: string | null;
};

/** What a person does on Concord's own pages. */
export type ConcordPageAct =
  "concord_one_click" | "concord_preferences" | "concord_sign_up" | "concord_confirm_sign_up";

/**
 * A person's mail client and browser on Concord's own pages, over real HTTP: the one-click
 * unsubscribe URL of an email's List-Unsubscribe header, the preference centre, and the sign-up
 * form with its emailed confirmation link. Each answers false when it could not be done (no such
 * person in Concord yet, no link).
 */
export type ConcordPages = {
  oneClick: (email: string) => Promise<boolean>;
  /** Leaves `topic` on the preference centre, keeping everything else. */
  leaveTopic?: { topic: string; label: string; run: (email: string) => Promise<boolean> };
  signUp?: (person: { email: string; first_name: string; last_name: string }) => Promise<boolean>;
  /** Opens the confirmation link emailed to `email` and confirms. */
  confirmSignUp?: (email: string) => Promise<boolean>;
};

export type SimulatorOptions = {
  world: DemoWorld;
  /** Does an act in a connection playing the role (the emulated world's `act`); says which. */
  act: (role: SimulatedRole, act: WorldAct) => Promise<WorldActAnswer & { connection: string }>;
  /** The roles the world has (a world without an appeals account has no appeals acts). */
  roles?: readonly SimulatedRole[];
  /** What the main platform is called in the descriptions ("Constant Contact", "Mailchimp"). */
  platform?: string;
  /** Addresses a platform sent a confirmation email to that the person has not confirmed yet. */
  pendingConfirmations: (system: SimulatedRole) => Promise<readonly string[]>;
  /** Concord's own pages, when the demo serves them (a public URL and a secret key). */
  concord?: ConcordPages;
  /** Called with each act done. */
  onEvent: (event: SimulatorEvent) => void;
  /** How the world's CRM names things (its manifest's words); Raiser's Edge's when absent. */
  crm?: CrmWords;
  /** Whether the CRM pushes its changes (webhooks), or Concord finds them at the next poll. */
  crmPushes?: boolean;
  /** Called when an act could not be done (the person is not there yet, a race with a sync). */
  onSkip?: (reason: string) => void;
  seed?: number;
  /** Pause between acts: uniformly between these (default 2–4 s). */
  minDelayMs?: number;
  maxDelayMs?: number;
  now?: () => Date;
};

export type Simulator = {
  start: () => void;
  /**
   * Says Concord's first sync is done: the people it imported are in the accounts now. Until then
   * the simulator acts in Raiser's Edge and on the contacts the accounts already held.
   */
  firstSyncDone: () => void;
  /** Does one act now; resolves with it, or undefined when no act found anyone to act on. */
  step: () => Promise<SimulatorEvent | undefined>;
  /** Stops the timer and waits for an act in flight. */
  stop: () => Promise<void>;
};

type Person = DemoPerson & {
  /** In the main account (seeded there, or imported by Concord's first sync). */
  in_main: boolean;
  in_appeals: boolean;
  /** Would be imported by the first sync (in a synced list, sendable). */
  eligible_main: boolean;
  eligible_appeals: boolean;
  /** Unsubscribed in the main account by their own act (a resubscribe can bring them back). */
  unsubscribed_main_by_contact: boolean;
  /** When that happened (ms; 0 when seeded), so a cleared flag comes after Concord carried it. */
  opted_out_at: number;
};

type WebOnly = { email: string; unsubscribed: boolean };

type Act = {
  name: string;
  /** The role the act needs, when the world may lack it. */
  role?: SimulatedRole;
  weight: number;
  run: () => Promise<SimulatorEvent | undefined>;
};

/** How long a cleared flag waits for the confirmation email before the simulator forgets it. */
const RESUBSCRIBE_PATIENCE_MS = 5 * 60_000;
const RESUBSCRIBE_CHECK_MS = 8_000;
/** An opt-out is left alone this long before an admin clears it: Concord has carried it by then. */
const SETTLE_MS = 20_000;
/** A person opens Concord's confirmation email a little after signing up. */
const SIGN_UP_CONFIRM_AFTER_MS = 6_000;

export function createSimulator(options: SimulatorOptions): Simulator {
  const rng = createRandom((options.seed ?? DEMO_RANDOM_SEED) ^ 0x5eed);
  const now = options.now ?? (() => new Date());
  const minDelay = options.minDelayMs ?? 2_000;
  const maxDelay = Math.max(minDelay, options.maxDelayMs ?? 4_000);
  const crm: CrmWords = options.crm ?? {
    name: "Raiser's Edge",
    record: "constituent",
    opt_out_written: 'ticks "Requests No Email"',
    admin_opted_out: 'ticked "Requests No Email"',
    admin_cleared: 'cleared "Requests No Email"',
  };
  const pushes = options.crmPushes ?? true;
  const people = new Map<string, Person>();
  const usedEmails = new Set<string>();
  for (const p of options.world.people) {
    if (p.email) usedEmails.add(p.email.toLowerCase());
    const eligible = (list: ReListKey[], extra: boolean): boolean =>
      p.email_valid &&
      !p.deceased &&
      !p.inactive &&
      !p.address_opted_out &&
      !p.opted_out_of_all_email &&
      extra &&
      p.lists.some((l) => list.includes(l));
    people.set(p.re_id, {
      ...p,
      lists: [...p.lists],
      in_main: false,
      in_appeals: false,
      eligible_main: eligible(["newsletter", "events"], true),
      eligible_appeals: eligible(["appeals"], !p.appeals_opt_out),
      unsubscribed_main_by_contact: false,
      opted_out_at: 0,
    });
  }
  const webOnly: WebOnly[] = [];
  for (const c of options.world.ccContacts) {
    usedEmails.add(c.email.toLowerCase());
    const p = c.re_id === null ? undefined : people.get(c.re_id);
    if (!p) {
      if (c.account === "main") webOnly.push({ email: c.email, unsubscribed: c.unsubscribed });
      continue;
    }
    // The first sync carries these seeded opt-outs to the CRM; the model follows.
    if (c.account === "main") {
      p.in_main = true;
      if (c.unsubscribed) {
        p.opted_out_of_all_email = true;
        p.unsubscribed_main_by_contact = true;
      }
    } else {
      p.in_appeals = true;
      if (c.unsubscribed) p.appeals_opt_out = true;
    }
  }
  const all = [...people.values()];
  const awaitingConfirmation = new Map<string, { email: string; since: number }>();
  let lastResubscribeCheck = 0;
  let stepCount = 0;
  let synced = false;

  const platform = options.platform ?? "Constant Contact";
  /** The connection each role last acted in, for the event that reports the act. */
  const actedIn = new Map<SimulatedRole, string>();
  const control = async (role: SimulatedRole, act: WorldAct): Promise<WorldActAnswer> => {
    const done = await options.act(role, act);
    actedIn.set(role, done.connection);
    return done;
  };
  const contactIdOf = (answer: WorldActAnswer): string | null => answer.record_id;
  const event = (
    system: SimulatedRole,
    actor: SimulatorEvent["actor"],
    action: WorldAct["action"],
    description: string,
    ids: { crm?: string | null; platform?: string | null },
  ): SimulatorEvent => ({
    at: now().toISOString(),
    system: actedIn.get(system) ?? system,
    action,
    actor,
    description,
    crm_record: ids.crm ?? null,
    platform_record: ids.platform ?? null,
  });
  const pickWhere = (test: (p: Person) => boolean): Person | undefined => {
    // Sample rather than filter 5,000 people on every act.
    for (let i = 0; i < 200; i += 1) {
      const p = rng.pick(all);
      if (test(p)) return p;
    }
    const matching = all.filter(test);
    return matching.length > 0 ? rng.pick(matching) : undefined;
  };
  const reachable = (p: Person): boolean =>
    p.email !== null && p.email_valid && !p.deceased && !p.inactive && !p.address_opted_out;
  const mainSubscriber = (p: Person): boolean => reachable(p) && p.in_main && !p.opted_out_of_all_email;
  const appealsSubscriber = (p: Person): boolean =>
    reachable(p) && p.in_appeals && !p.opted_out_of_all_email && !p.appeals_opt_out;
  const listName = (key: ReListKey): string => RE_LISTS.find((l) => l.key === key)?.name ?? key;
  const listId = (key: ReListKey): string => RE_LISTS.find((l) => l.key === key)?.id ?? key;
  const ccListId = (account: CcAccountKey, key: string): string =>
    CC_LISTS[account].find((l) => l.key === key)?.list_id ?? key;
  const newEmail = (first: string, last: string): string => {
    const base = `${emailLocalPart(first)}.${emailLocalPart(last)}`;
    const domain = rng.pick(["example.org", "example.com", "example.net", "mail.example.org"]);
    let candidate = `${base}@${domain}`;
    for (let n = 2; usedEmails.has(candidate); n += 1) candidate = `${base}${n}@${domain}`;
    usedEmails.add(candidate);
    return candidate;
  };
  const markMainOptOut = (p: Person, byContact: boolean): void => {
    p.opted_out_of_all_email = true;
    p.opted_out_at = Date.now();
    if (byContact) p.unsubscribed_main_by_contact = true;
  };

  // Contacts unsubscribing (footer link, the mail client's one-click header, a spam complaint).
  const contactOptOut = (
    account: CcAccountKey,
    action: "unsubscribe" | "one_click_unsubscribe" | "spam_complaint",
  ): (() => Promise<SimulatorEvent | undefined>) => {
    const how = {
      unsubscribe: "clicked the unsubscribe link in an email's footer",
      one_click_unsubscribe: "unsubscribed with the mail client's one-click button (List-Unsubscribe header)",
      spam_complaint: "marked an email as spam (a complaint is a global opt-out)",
    }[action];
    return async () => {
      const system: SimulatedRole = account;
      const subscribedWebOnly = webOnly.filter((x) => !x.unsubscribed);
      if (
        account === "main" &&
        action === "unsubscribe" &&
        stepCount > 1 &&
        subscribedWebOnly.length > 0 &&
        rng.chance(0.15)
      ) {
        const w = rng.pick(subscribedWebOnly);
        {
          const answer = await control(system, { as: "contact", action, email: w.email });
          w.unsubscribed = true;
          return event(
            system,
            "contact",
            action,
            `someone not in ${crm.name} ${how}: Concord matches by address and reports it`,
            { platform: contactIdOf(answer) },
          );
        }
      }
      const p = pickWhere(account === "main" ? mainSubscriber : appealsSubscriber);
      if (!p?.email) return undefined;
      const answer = await control(system, {
        as: "contact",
        action,
        email: p.email,
        ...(action === "unsubscribe"
          ? { reason: rng.pick(["Too many emails", "No longer interested", "Other"]) }
          : {}),
      });
      const global = account === "main" || action === "spam_complaint";
      if (global) markMainOptOut(p, account === "main");
      else p.appeals_opt_out = true;
      const effect = global
        ? `Concord ${crm.opt_out_written} in ${crm.name} and unsubscribes them in every account`
        : `Concord records an Appeals opt-out in ${crm.name}; the main account keeps them`;
      return event(system, "contact", action, `a contact ${how}: ${effect}`, {
        crm: p.re_id,
        platform: contactIdOf(answer),
      });
    };
  };

  const allActs: Act[] = [
    { name: "cc_main_unsubscribe", weight: 10, run: contactOptOut("main", "unsubscribe") },
    { name: "cc_main_one_click", weight: 5, run: contactOptOut("main", "one_click_unsubscribe") },
    { name: "cc_main_spam", weight: 2, run: contactOptOut("main", "spam_complaint") },
    {
      name: "cc_appeals_unsubscribe",
      role: "appeals",
      weight: 6,
      run: contactOptOut("appeals", "unsubscribe"),
    },
    {
      name: "cc_appeals_one_click",
      role: "appeals",
      weight: 2,
      run: contactOptOut("appeals", "one_click_unsubscribe"),
    },
    {
      name: "cc_sign_up_new",
      weight: 6,
      run: async () => {
        const first = rng.pick([
          "Robin",
          "Alex",
          "Jamie",
          "Casey",
          "Morgan",
          "Taylor",
          "Noor",
          "Kai",
          "Rowan",
        ]);
        const last = rng.pick(["Fernández", "Okoye", "Lindqvist", "Brennan", "Achebe", "Moreau", "Ishikawa"]);
        const email = newEmail(first, last);
        const lists = rng.chance(0.4) ? ["newsletter", "events"] : ["newsletter"];
        const answer = await control("main", {
          as: "contact",
          action: "sign_up",
          email,
          first_name: first,
          last_name: last,
          list_ids: lists.map((k) => ccListId("main", k)),
        });
        webOnly.push({ email, unsubscribed: false });
        return event(
          "main",
          "contact",
          "sign_up",
          `a new person signed up on the website for ${lists.join(" and ")} (not in ${crm.name}: the pair does not create ${crm.record}s, so they stay platform-only)`,
          { platform: contactIdOf(answer) },
        );
      },
    },
    {
      name: "cc_sign_up_events",
      weight: 4,
      run: async () => {
        const p = pickWhere((x) => mainSubscriber(x) && !x.lists.includes("events"));
        if (!p?.email) return undefined;
        const answer = await control("main", {
          as: "contact",
          action: "sign_up",
          email: p.email,
          list_ids: [ccListId("main", "events")],
        });
        p.lists.push("events");
        return event(
          "main",
          "contact",
          "sign_up",
          `a ${crm.record} joined "Events" on the website: the list is synced both ways, so ${crm.name} adds them to "Event invitations"`,
          { crm: p.re_id, platform: contactIdOf(answer) },
        );
      },
    },
    {
      name: "cc_admin_unsubscribe",
      weight: 2,
      run: async () => {
        const p = pickWhere(mainSubscriber);
        if (!p?.email) return undefined;
        const answer = await control("main", {
          as: "admin",
          action: "unsubscribe",
          email: p.email,
          reason: "Asked by phone to stop all email",
        });
        markMainOptOut(p, false);
        return event(
          "main",
          "admin",
          "unsubscribe",
          `an account user unsubscribed a contact who phoned in: a global opt-out, so Concord ${crm.opt_out_written} in ${crm.name}`,
          { crm: p.re_id, platform: contactIdOf(answer) },
        );
      },
    },
    {
      name: "re_opt_out_of_all_email",
      weight: 5,
      run: async () => {
        const p = pickWhere((x) => mainSubscriber(x) || appealsSubscriber(x));
        if (!p) return undefined;
        await control("crm", { as: "admin", action: "opt_out_of_all_email", id: p.re_id });
        markMainOptOut(p, false);
        return event(
          "crm",
          "admin",
          "opt_out_of_all_email",
          `an admin ${crm.admin_opted_out} after a phone call: ${pushes ? "the webhook reaches Concord" : "Concord reads it at the next poll"} and unsubscribes them in every account`,
          { crm: p.re_id },
        );
      },
    },
    {
      name: "re_clear_opt_out_of_all_email",
      weight: 2,
      run: async () => {
        const p = pickWhere(
          (x) =>
            synced &&
            x.unsubscribed_main_by_contact &&
            x.opted_out_of_all_email &&
            Date.now() - x.opted_out_at > SETTLE_MS &&
            !awaitingConfirmation.has(x.re_id),
        );
        if (!p?.email) return undefined;
        await control("crm", { as: "admin", action: "clear_opt_out_of_all_email", id: p.re_id });
        awaitingConfirmation.set(p.re_id, { email: p.email.toLowerCase(), since: Date.now() });
        return event(
          "crm",
          "admin",
          "clear_opt_out_of_all_email",
          `an admin ${crm.admin_cleared} because the person asked to hear from us again: no one is resubscribed by an admin — Concord has ${platform} send its confirmation email and waits for the person`,
          { crm: p.re_id },
        );
      },
    },
    {
      name: "re_change_primary_email",
      weight: 4,
      run: async () => {
        const p = pickWhere((x) => mainSubscriber(x) && x.type === "Individual");
        if (!p) return undefined;
        const address = newEmail(p.first, p.last);
        await control("crm", {
          as: "admin",
          action: "change_primary_email",
          id: p.re_id,
          address,
          remove_old: rng.chance(0.5),
        });
        p.email = address;
        return event(
          "crm",
          "admin",
          "change_primary_email",
          "an admin entered a new primary email address: Concord changes the linked contact's address instead of creating a duplicate",
          { crm: p.re_id },
        );
      },
    },
    {
      name: "re_update_name",
      weight: 5,
      run: async () => {
        const p = pickWhere((x) => x.type === "Individual" && (x.in_main || x.in_appeals) && reachable(x));
        if (!p) return undefined;
        const last = `${p.last.split("-")[0] ?? p.last}-${rng.pick(["Okafor", "Lindqvist", "Moreau", "Brennan", "Tanaka"])}`;
        await control("crm", { as: "admin", action: "update_name", id: p.re_id, last });
        p.last = last;
        return event(
          "crm",
          "admin",
          "update_name",
          `an admin updated a ${crm.record}'s last name: ${crm.name} owns names, so ${platform} follows`,
          { crm: p.re_id },
        );
      },
    },
    {
      name: "re_add_consent",
      weight: 2,
      run: async () => {
        const p = pickWhere(appealsSubscriber);
        if (!p) return undefined;
        await control("crm", {
          as: "admin",
          action: "record_consent",
          id: p.re_id,
          topic: "Appeals",
          response: "opt_out",
          source: rng.pick(["Phone", "Mail", "In person"]),
        });
        p.appeals_opt_out = true;
        return event(
          "crm",
          "admin",
          "record_consent",
          pushes
            ? `an admin recorded an Appeals opt-out the person gave by phone: ${crm.name} does not mark the ${crm.record} changed for a consent record, so it travels with the next full reconciliation`
            : `an admin recorded an Appeals opt-out the person gave by phone: Concord reads it at the next poll and carries it to the appeals account`,
          { crm: p.re_id },
        );
      },
    },
    {
      name: "re_add_to_list",
      weight: 6,
      run: async () => {
        const key = rng.pick<ReListKey>(["newsletter", "newsletter", "events", "appeals"]);
        const p = pickWhere(
          (x) =>
            reachable(x) &&
            !x.opted_out_of_all_email &&
            !x.lists.includes(key) &&
            (key !== "appeals" || (x.type === "Individual" && !x.appeals_opt_out)),
        );
        if (!p) return undefined;
        await control("crm", { as: "admin", action: "add_to_list", id: p.re_id, list_id: listId(key) });
        p.lists.push(key);
        if (key === "appeals") p.in_appeals = true;
        else p.in_main = true;
        return event(
          "crm",
          "admin",
          "add_to_list",
          `an admin added a ${crm.record} to "${listName(key)}": the next poll sends them to ${platform}`,
          { crm: p.re_id },
        );
      },
    },
    {
      name: "re_remove_from_list",
      weight: 3,
      run: async () => {
        const p = pickWhere((x) => mainSubscriber(x) && x.lists.includes("newsletter"));
        if (!p) return undefined;
        await control("crm", {
          as: "admin",
          action: "remove_from_list",
          id: p.re_id,
          list_id: listId("newsletter"),
        });
        p.lists = p.lists.filter((l) => l !== "newsletter");
        return event(
          "crm",
          "admin",
          "remove_from_list",
          `an admin removed a ${crm.record} from "Monthly newsletter": Concord removes the Newsletter membership and keeps the contact`,
          { crm: p.re_id },
        );
      },
    },
  ];
  // People on Concord's own pages: once Concord's first sync has them, their links work.
  const concord = options.concord;
  const concordEvent = (action: ConcordPageAct, description: string, crm: string | null): SimulatorEvent => ({
    at: now().toISOString(),
    system: "concord",
    action,
    actor: "contact",
    description,
    crm_record: crm,
    platform_record: null,
  });
  const signedUp: { email: string; at: number }[] = [];
  if (concord !== undefined) {
    allActs.push({
      name: "concord_one_click",
      weight: 4,
      run: async () => {
        const p = synced ? pickWhere(mainSubscriber) : undefined;
        if (!p?.email || !(await concord.oneClick(p.email))) return undefined;
        markMainOptOut(p, true);
        return concordEvent(
          "concord_one_click",
          "a person pressed their mail client's Unsubscribe (Concord's List-Unsubscribe one-click URL): recorded before the answer, and every system unsubscribes them within seconds",
          p.re_id,
        );
      },
    });
    const leave = concord.leaveTopic;
    if (leave !== undefined)
      allActs.push({
        name: "concord_preferences",
        weight: 3,
        run: async () => {
          // Everyone who receives email has the topic in Concord, whichever accounts hold them.
          const p = synced ? pickWhere((x) => mainSubscriber(x) && !x.appeals_opt_out) : undefined;
          if (!p?.email || !(await leave.run(p.email))) return undefined;
          p.appeals_opt_out = true;
          return concordEvent(
            "concord_preferences",
            `a person unticked "${leave.label}" on Concord's preference centre: an opt-out of that topic only, carried to the systems that stand for it`,
            p.re_id,
          );
        },
      });
    const signUp = concord.signUp;
    if (signUp !== undefined)
      allActs.push({
        name: "concord_sign_up",
        weight: 3,
        run: async () => {
          const first = rng.pick(["Ines", "Tomás", "Priya", "Olu", "Hana", "Emil", "Zara"]);
          const last = rng.pick(["Costa", "Nakamura", "Osei", "Laine", "Dubois", "Rahman"]);
          const email = newEmail(first, last);
          if (!(await signUp({ email, first_name: first, last_name: last }))) return undefined;
          signedUp.push({ email, at: Date.now() });
          return concordEvent(
            "concord_sign_up",
            "a new person filled in Concord's sign-up form: nothing is recorded until they confirm the emailed link",
            null,
          );
        },
      });
  }

  /** A person who signed up on Concord's form opens the emailed link and confirms. */
  const confirmSignUp = async (): Promise<SimulatorEvent | undefined> => {
    const confirm = concord?.confirmSignUp;
    const waiting = signedUp[0];
    if (confirm === undefined || waiting === undefined || Date.now() - waiting.at < SIGN_UP_CONFIRM_AFTER_MS)
      return undefined;
    signedUp.shift();
    if (!(await confirm(waiting.email))) return undefined;
    webOnly.push({ email: waiting.email, unsubscribed: false });
    return concordEvent(
      "concord_confirm_sign_up",
      `a person confirmed the link Concord emailed them: their own express opt-in, and ${platform} adds them to the newsletter`,
      null,
    );
  };

  const showcase = new Set(["concord_one_click", "concord_preferences", "concord_sign_up"]);
  const roles = new Set(options.roles ?? (["crm", "main", "appeals"] as const));
  const acts = allActs.filter((a) => a.role === undefined || roles.has(a.role));

  /** A person confirms the confirmation email the platform sent at Concord's request, when one is out. */
  const confirmResubscribe = async (): Promise<SimulatorEvent | undefined> => {
    if (awaitingConfirmation.size === 0 || Date.now() - lastResubscribeCheck < RESUBSCRIBE_CHECK_MS)
      return undefined;
    lastResubscribeCheck = Date.now();
    for (const [id, w] of awaitingConfirmation)
      if (Date.now() - w.since > RESUBSCRIBE_PATIENCE_MS) awaitingConfirmation.delete(id);
    const pending = new Set((await options.pendingConfirmations("main")).map((e) => e.toLowerCase()));
    const ready = [...awaitingConfirmation].filter(([, w]) => pending.has(w.email));
    const chosen = ready.length > 0 ? rng.pick(ready) : undefined;
    if (!chosen) return undefined;
    const [reId, w] = chosen;
    awaitingConfirmation.delete(reId);
    const answer = await control("main", { as: "contact", action: "confirm_resubscribe", email: w.email });
    const p = people.get(reId);
    if (p) {
      p.opted_out_of_all_email = false;
      p.unsubscribed_main_by_contact = false;
    }
    return event(
      "main",
      "contact",
      "confirm_resubscribe",
      `a person confirmed ${platform}'s confirmation email: their own act, so Concord makes them sendable again and records it in ${crm.name}`,
      { crm: reId, platform: contactIdOf(answer) },
    );
  };

  const step = async (): Promise<SimulatorEvent | undefined> => {
    stepCount += 1;
    try {
      const confirmed = (await confirmResubscribe()) ?? (await confirmSignUp());
      if (confirmed) return confirmed;
    } catch (error) {
      options.onSkip?.(`confirming: ${errorMessage(error)}`);
    }
    // The first act is always a footer-link unsubscribe: the demo shows an opt-out crossing at once.
    // Once Concord's first sync is done, each of Concord's own pages is shown once, in turn.
    const firstAct = acts[0];
    const shown = synced ? acts.find((a) => showcase.has(a.name)) : undefined;
    if (shown !== undefined) showcase.delete(shown.name);
    const tries: Act[] = stepCount === 1 && firstAct ? [firstAct] : shown !== undefined ? [shown] : [];
    for (let i = 0; i < 6; i += 1) tries.push(acts[rng.weighted(acts.map((a) => a.weight))] ?? acts[0]!);
    for (const act of tries) {
      try {
        const done = await act.run();
        if (done) return done;
        options.onSkip?.(`${act.name}: nobody to act on`);
      } catch (error) {
        options.onSkip?.(`${act.name}: ${errorMessage(error)}`);
      }
    }
    return undefined;
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = true;
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(
      () => {
        running = step()
          .then((e) => {
            if (e) options.onEvent(e);
          })
          .catch((error: unknown) => {
            options.onSkip?.(`step failed: ${errorMessage(error)}`);
          })
          .finally(schedule);
      },
      rng.int(minDelay, maxDelay),
    );
  };

  return {
    start: () => {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    firstSyncDone: () => {
      synced = true;
      for (const p of all) {
        if (p.eligible_main) p.in_main = true;
        if (p.eligible_appeals) p.in_appeals = true;
      }
    },
    step,
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
