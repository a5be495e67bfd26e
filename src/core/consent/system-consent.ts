/**
 * Consent as a connected system shows it, in that system's own terms: the scopes it keeps consent
 * in (all email, the whole account, or one of its constructs such as a consent category, a list or
 * an interest) and the typed facts a record carries about them. Connectors report these; the
 * engine maps scopes to topics and compares facts with the ledger, never naming a vendor's field.
 */
import type { Channel } from "./consent-event";

/** One construct of a system a topic may stand for: its type (as the manifest names it) and id. */
export type ConstructRef = { type: string; id: string; name?: string };

/** Where a consent observation or write applies, in the system's own terms. */
export type ObservedScope =
  | { kind: "global" }
  /** The whole account/connection (Constant Contact): global or a topic, per the config's topics. */
  | { kind: "account" }
  /** One construct of the system (a Raiser's Edge consent category, a list): a topic, per the config. */
  | { kind: "construct"; construct: ConstructRef };

export const GLOBAL_OBSERVED: ObservedScope = { kind: "global" };
export const ACCOUNT_OBSERVED: ObservedScope = { kind: "account" };
export const constructScope = (type: string, id: string, name?: string): ObservedScope => ({
  kind: "construct",
  construct: { type, id, ...(name !== undefined ? { name } : {}) },
});

/**
 * What a record shows about consent for one scope now. `opted_out`: the system will not send for
 * it; `opted_in`: it holds the person's consent; `pending`: it waits for the person to confirm;
 * `none`: it records nothing either way (a cleared flag, a category never answered).
 */
export type ConsentFactStatus = "opted_out" | "opted_in" | "pending" | "none";

export type ConsentFact = {
  channel: Channel;
  scope: ObservedScope;
  status: ConsentFactStatus;
  /** The system's own field or construct the fact is read from; explain shows it beside the label. */
  source: string;
  /** The fact in the words the system's users see it: "Requests No Email: yes". */
  label: string;
  /**
   * `state`: what the system acts on now (a flag, a subscription status, a category's response);
   * `record`: the newest entry of a consent history the system keeps beside its state.
   */
  role: "state" | "record";
  /**
   * The system keeps no history of this state (who changed it, when): Concord sees it change only
   * against the last snapshot, and an opt-out cleared there is a resubscribe request (rule 3).
   */
  unversioned?: true;
  /**
   * For an unversioned opt-out: the account sets and clears it (GrowthZone's Do Not Contact), so
   * its clearing is also the account's opt-in, which lifts only an opt-out the account made there
   * itself (DESIGN.md §2 rule 4); any other opt-out still waits for the person (the resubscribe
   * request beside it).
   */
  account_may_lift?: true;
  /**
   * The system holds this scope's consent as given or not given, nothing else (a Mailchimp GDPR
   * marketing permission): `none` is consent not given, so nothing is sent for the scope, and a
   * consent given that a later read no longer shows was withdrawn.
   */
  requires_consent?: true;
  /** When the system says the state was taken (ISO-8601 UTC), where it says. */
  at?: string;
};

/** Whether two observed scopes are the same scope of one system. */
export function sameObservedScope(a: ObservedScope, b: ObservedScope): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind !== "construct" || b.kind !== "construct") return true;
  return (
    a.construct.type === b.construct.type &&
    a.construct.id.trim().toLowerCase() === b.construct.id.trim().toLowerCase()
  );
}

/** A stable key of an observed scope: `global`, `account`, `consent_category:appeals`. */
export const observedScopeKey = (s: ObservedScope): string =>
  s.kind === "construct" ? `${s.construct.type}:${s.construct.id.trim().toLowerCase()}` : s.kind;

const ofScope = (facts: readonly ConsentFact[], scope: ObservedScope, channel: Channel): ConsentFact[] =>
  facts.filter((f) => f.channel === channel && sameObservedScope(f.scope, scope));

/**
 * What a record shows for a scope: `opt_out` when any state fact says the system will not send,
 * else `opt_in` when one holds consent, else nothing.
 */
export function shownConsent(
  facts: readonly ConsentFact[],
  scope: ObservedScope,
  channel: Channel = "email",
): "opt_out" | "opt_in" | undefined {
  const state = ofScope(facts, scope, channel).filter((f) => f.role === "state");
  if (state.some((f) => f.status === "opted_out")) return "opt_out";
  if (state.some((f) => f.status === "opted_in")) return "opt_in";
  return undefined;
}

/**
 * Whether a record shows that nothing is sent to the person for a scope: it shows an opt-out, or
 * the scope requires a consent the record does not show given.
 */
export function showsNotSent(
  facts: readonly ConsentFact[],
  scope: ObservedScope,
  channel: Channel = "email",
): boolean {
  const shown = shownConsent(facts, scope, channel);
  if (shown === "opt_out") return true;
  return shown !== "opt_in" && ofScope(facts, scope, channel).some((f) => f.requires_consent === true);
}

/**
 * The response a system has on record for a scope: its consent history's newest entry where it
 * keeps one beside its state, else what its state shows.
 */
export function recordedConsent(
  facts: readonly ConsentFact[],
  scope: ObservedScope,
  channel: Channel = "email",
): "opt_out" | "opt_in" | undefined {
  const records = ofScope(facts, scope, channel).filter((f) => f.role === "record");
  if (records.length === 0) return shownConsent(facts, scope, channel);
  const status = records[records.length - 1]?.status;
  return status === "opted_out" ? "opt_out" : status === "opted_in" ? "opt_in" : undefined;
}

/** Whether any state fact of the record, in any scope, says the system will not send. */
export const showsAnyOptOut = (facts: readonly ConsentFact[], channel: Channel = "email"): boolean =>
  facts.some((f) => f.channel === channel && f.role === "state" && f.status === "opted_out");
