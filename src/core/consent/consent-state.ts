/**
 * Consent state as a pure fold over consent events (DESIGN.md §2 rules 1–5): per channel, a
 * decision for the global scope and for each topic, each naming the rule and the event behind it.
 */
import {
  effectiveScope,
  type Actor,
  type Channel,
  type ConsentEvent,
  type ConsentEventId,
  type DeliverabilityEvent,
  type Mechanism,
  type OptInEvent,
  type OptOutEvent,
  type Scope,
  type TopicKey,
} from "./consent-event";
import { isEndingEventId } from "./record-ending";

/** Stable codes for the rule that decided a state; shown by `explain`. */
export type ConsentRule =
  | "no_opt_out" // nothing covers this scope: sendable unless a basis is required
  | "express_consent" // a standing express opt-in
  | "implied_consent" // a standing, unexpired implied opt-in
  | "implied_consent_expired" // the only basis was implied consent that has lapsed
  | "no_consent_basis" // a basis is required and there is none
  | "global_opt_out" // a global opt-out with no later qualifying opt-in
  | "topic_opt_out" // an opt-out of this topic with no later qualifying opt-in
  | "spam_complaint" // a spam complaint: a global opt-out
  | "lifted_by_contact_opt_in" // the person's own opt-in, after the opt-out
  | "lifted_by_operator_override" // an operator override with evidence of the person's request
  | "lifted_by_account_opt_in"; // the account undid its own (account-initiated) opt-out

export type OptOutRef = {
  event_id: ConsentEventId;
  scope: Scope;
  initiated_by: "contact" | "account";
  occurred_at: string;
  mechanism: OptOutEvent["mechanism"];
  source: OptOutEvent["source"];
  /** The opt-out a CRM record's ending made (deceased, inactive, deleted): no admin's opt-in lifts it. */
  record_ended?: true;
};

export type ScopeDecision = {
  sendable: boolean;
  status: "opted_out" | "opted_in" | "no_preference";
  rule: ConsentRule;
  /** The event that decided this state, when one did. */
  decided_by?: ConsentEventId;
  /** Opt-outs covering this scope that are still in force. */
  open_opt_outs: OptOutRef[];
  /** A resubscribe request waiting for the person's own action. */
  pending_resubscribe?: { event_id: ConsentEventId; requested_at: string };
};

export type DeliverabilityState = {
  status: "deliverable" | "soft_bounce" | "hard_bounce" | "cleaned";
  decided_by?: ConsentEventId;
  since?: string;
};

export type ChannelConsent = {
  channel: Channel;
  global: ScopeDecision;
  topics: Record<TopicKey, ScopeDecision>;
  deliverability: DeliverabilityState;
};

export type FoldOptions = {
  /** The moment the state is evaluated at (implied consent may have lapsed by then). */
  as_of: string;
  /** Topics to decide, besides every topic named by an event. */
  topics?: readonly TopicKey[];
  /** When true, a scope is sendable only with a standing opt-in (e.g. CASL). Default false. */
  require_consent_basis?: boolean;
};

/**
 * Total order used by the fold so the result never depends on arrival order: by time of the act,
 * then opt-outs before anything else at the same instant (opt-out precedence), then by id.
 */
const KIND_RANK: Record<ConsentEvent["kind"], number> = {
  opt_out: 0,
  deliverability: 1,
  resubscribe_requested: 2,
  opt_in: 3,
};

/**
 * When an event's act took place, for ordering: its `occurred_at`, except an event dated after
 * Concord saw it (a date typed by hand, a time zone read wrong, a vendor's clock ahead, a forged
 * delivery), which took place by `observed_at` at the latest. Otherwise an opt-in dated tomorrow
 * would lift an opt-out the person makes today, and an opt-out dated in 2099 would outlast every
 * opt-in of the person's own for ever.
 */
export function actedAt(e: ConsentEvent): number {
  const occurred = Date.parse(e.occurred_at);
  const observed = Date.parse(e.observed_at);
  return Number.isNaN(observed) ? occurred : Math.min(occurred, observed);
}

export function compareEvents(a: ConsentEvent, b: ConsentEvent): number {
  const t = actedAt(a) - actedAt(b);
  if (t !== 0) return t;
  const k = KIND_RANK[a.kind] - KIND_RANK[b.kind];
  if (k !== 0) return k;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Mechanisms only the person can perform. An opt-out through one of them is the person's whatever
 * actor a connector reported, so a mislabelled actor can never let the account undo it (rule 4).
 */
const PERSON_ONLY_MECHANISMS: ReadonlySet<OptOutEvent["mechanism"]> = new Set([
  "unsubscribe_link",
  "one_click_header",
  "spam_complaint",
  "preference_page",
  "phone_request",
  "written_request",
]);

/** Opt-outs say whether the person or the organisation initiated them; staff recording a request act for the person. */
export const optOutInitiator = (event: OptOutEvent): "contact" | "account" =>
  PERSON_ONLY_MECHANISMS.has(event.mechanism)
    ? "contact"
    : event.actor.kind === "account" || event.actor.kind === "platform"
      ? "account"
      : "contact";

/**
 * The opt-ins that may lift an opt-out a person made (DESIGN.md §2 rule 3): the person's own act,
 * never an import nor Concord's own write seen again, or an operator override that references the
 * person's own request. The one statement of the rule: the fold, the planner and the connectors
 * that write consent records all ask here.
 */
export function isPersonsOwnOptIn(o: {
  actor: Actor["kind"];
  mechanism: Mechanism;
  request_reference?: string | undefined;
}): boolean {
  const referenced = (o.request_reference ?? "").trim() !== "";
  if (o.actor === "contact")
    return o.mechanism !== "import" && o.mechanism !== "sync" && (!takenByStaff(o.mechanism) || referenced);
  if (o.actor === "operator") return referenced;
  return false;
}

/**
 * A request the person made to staff (a call, a letter, a word at an event), which staff recorded:
 * it lifts an opt-out only with a reference to the person's written request, as an operator
 * override does; without one it asks the person to confirm (a resubscribe request), as an admin
 * clearing a flag does (DESIGN.md §2 rule 3).
 */
const takenByStaff = (mechanism: Mechanism): boolean =>
  mechanism === "phone_request" || mechanism === "written_request";

/** A person's opt-in staff recorded without a reference: a resubscribe request, not an opt-in. */
const requestThroughStaff = (e: OptInEvent): boolean =>
  e.actor.kind === "contact" && takenByStaff(e.mechanism) && !isPersonsOwnOptInEvent(e);

/** The rule-3 view of an opt-in event. */
const optInAct = (e: OptInEvent) => ({
  actor: e.actor.kind,
  mechanism: e.mechanism,
  request_reference: e.evidence.request_reference,
});

/** Whether an opt-in event is the person's own (or an override with evidence): see `isPersonsOwnOptIn`. */
export const isPersonsOwnOptInEvent = (e: OptInEvent): boolean => isPersonsOwnOptIn(optInAct(e));

/** How an opt-in may lift an opt-out, or null when it may not (DESIGN.md §2 rules 3 and 4). */
export function liftRule(optIn: OptInEvent, optOut: OptOutRef): ConsentRule | null {
  if (actedAt(optIn) <= Date.parse(optOut.occurred_at)) return null;
  if (!scopeLifts(optIn.scope, optOut.scope)) return null;
  switch (optIn.actor.kind) {
    case "contact":
      return isPersonsOwnOptInEvent(optIn) ? "lifted_by_contact_opt_in" : null;
    case "operator":
      return isPersonsOwnOptInEvent(optIn) ? "lifted_by_operator_override" : null;
    case "account":
      // The account undoes only its own opt-out: one it made itself, in the same account, of the same
      // scope (a topic's mark cleared is not the whole address's restriction undone, which still
      // stands in the system). An admin of one system re-subscribing someone never lifts an opt-out
      // another system recorded — except Concord's own copy of an opt-out (`sync`), which is no act
      // of its own: the act it copies decides, wherever it was recorded. Nor the opt-out a record's
      // ending made: an admin clearing a restriction on a record still marked deceased or inactive
      // has not undone the ending (marked alive or active again, it asks the person to resubscribe).
      return optOut.initiated_by === "account" &&
        optOut.record_ended !== true &&
        optOut.mechanism !== "spam_complaint" &&
        sameScope(optIn.scope, optOut.scope) &&
        (optOut.source.connection === optIn.source.connection || optOut.mechanism === "sync")
        ? "lifted_by_account_opt_in"
        : null;
    case "platform":
      return null;
  }
}

const sameScope = (a: Scope, b: Scope): boolean =>
  a.kind === "global" ? b.kind === "global" : b.kind === "topic" && a.topic === b.topic;

/**
 * A global opt-in lifts only global opt-outs; a topic opt-in lifts opt-outs of that topic and, for
 * that topic alone, a global opt-out. A global opt-in never reopens a topic the person left.
 */
function scopeLifts(optIn: Scope, optOut: Scope): boolean {
  if (optIn.kind === "global") return optOut.kind === "global";
  return optOut.kind === "global" || optOut.topic === optIn.topic;
}

/** Whether an event of scope `scope` bears on the decision for `target`: global bears on every topic. */
const covers = (scope: Scope, target: Scope): boolean =>
  scope.kind === "global" || (target.kind === "topic" && scope.topic === target.topic);

const ref = (event: OptOutEvent): OptOutRef => ({
  event_id: event.id,
  scope: effectiveScope(event),
  initiated_by: optOutInitiator(event),
  // When it took place (`actedAt`): dated after Concord saw it, by then.
  occurred_at: actedAt(event) < Date.parse(event.occurred_at) ? event.observed_at : event.occurred_at,
  mechanism: event.mechanism,
  source: event.source,
  ...(isEndingEventId(event.evidence.source_record_id) ? { record_ended: true as const } : {}),
});

/** Decides one scope of one channel from its events, already sorted by compareEvents. */
function decideScope(sorted: readonly ConsentEvent[], target: Scope, options: FoldOptions): ScopeDecision {
  let open: OptOutRef[] = [];
  let lastLift: { rule: ConsentRule; event: OptInEvent } | undefined;
  // Every opt-in standing since the last covering opt-out: a later implied opt-in must not hide an
  // earlier express one (express consent does not lapse), so the basis is chosen after the loop.
  let bases: OptInEvent[] = [];
  let pending: { id: ConsentEventId; occurred_at: string } | undefined;

  for (const event of sorted) {
    if (event.kind === "opt_out") {
      const r = ref(event);
      if (!covers(r.scope, target)) continue;
      open.push(r);
      bases = [];
      pending = undefined;
      lastLift = undefined;
    } else if (event.kind === "opt_in") {
      if (!covers(event.scope, target)) continue;
      const remaining: OptOutRef[] = [];
      let rule: ConsentRule | null = null;
      for (const o of open) {
        const r = liftRule(event, o);
        if (r) rule = r;
        else remaining.push(o);
      }
      if (rule) lastLift = { rule, event };
      else if (remaining.length > 0 && requestThroughStaff(event)) pending = event;
      open = remaining;
      if (open.length === 0) {
        // Concord's own write seen again (`sync`) copies an act the ledger holds with its own basis:
        // as a basis it would turn an implied opt-in express (it is read back as a consent record),
        // and take the decision from the act it copies by the order of two ids at one instant.
        if (event.mechanism !== "sync") bases.push(event);
        pending = undefined;
      }
    } else if (event.kind === "resubscribe_requested") {
      if (open.length > 0 && covers(event.scope, target)) pending = event;
    }
  }

  const pendingPart = pending
    ? { pending_resubscribe: { event_id: pending.id, requested_at: pending.occurred_at } }
    : {};
  const latestOpen = open[open.length - 1];
  if (latestOpen) {
    const rule: ConsentRule =
      latestOpen.mechanism === "spam_complaint"
        ? "spam_complaint"
        : latestOpen.scope.kind === "global"
          ? "global_opt_out"
          : "topic_opt_out";
    return {
      sendable: false,
      status: "opted_out",
      rule,
      decided_by: latestOpen.event_id,
      open_opt_outs: open,
      ...pendingPart,
    };
  }
  const asOf = Date.parse(options.as_of);
  const lapsed = (e: OptInEvent): boolean =>
    e.basis === "implied" && e.expires_at !== undefined && Date.parse(e.expires_at) <= asOf;
  const latest = (pick: (e: OptInEvent) => boolean): OptInEvent | undefined => bases.filter(pick).at(-1);
  const basis = latest((e) => e.basis === "express") ?? latest((e) => !lapsed(e));
  const expiredBasis = bases.at(-1);
  if (!basis && expiredBasis) {
    return {
      sendable: !options.require_consent_basis,
      status: "no_preference",
      rule: "implied_consent_expired",
      decided_by: expiredBasis.id,
      open_opt_outs: [],
    };
  }
  if (basis) {
    const rule: ConsentRule =
      lastLift && lastLift.event.id === basis.id
        ? lastLift.rule
        : basis.basis === "express"
          ? "express_consent"
          : "implied_consent";
    return { sendable: true, status: "opted_in", rule, decided_by: basis.id, open_opt_outs: [] };
  }
  return options.require_consent_basis
    ? { sendable: false, status: "no_preference", rule: "no_consent_basis", open_opt_outs: [] }
    : { sendable: true, status: "no_preference", rule: "no_opt_out", open_opt_outs: [] };
}

function decideDeliverability(sorted: readonly ConsentEvent[]): DeliverabilityState {
  let last: DeliverabilityEvent | undefined;
  for (const event of sorted) if (event.kind === "deliverability") last = event;
  return last
    ? { status: last.status, decided_by: last.id, since: last.occurred_at }
    : { status: "deliverable" };
}

/** Removes repeated events (same id): applying an event twice changes nothing. */
export function uniqueEvents(events: readonly ConsentEvent[]): ConsentEvent[] {
  const seen = new Map<string, ConsentEvent>();
  for (const e of events) if (!seen.has(e.id)) seen.set(e.id, e);
  return [...seen.values()];
}

/** Folds one contact's events for one channel into its consent state. */
export function foldChannelConsent(
  events: readonly ConsentEvent[],
  channel: Channel,
  options: FoldOptions,
): ChannelConsent {
  const sorted = uniqueEvents(events)
    .filter((e) => e.channel === channel)
    .sort(compareEvents);
  const topicKeys = new Set<TopicKey>(options.topics ?? []);
  for (const e of sorted)
    if (e.kind !== "deliverability" && e.scope.kind === "topic") topicKeys.add(e.scope.topic);
  const topics: Record<TopicKey, ScopeDecision> = {};
  for (const topic of [...topicKeys].sort())
    topics[topic] = decideScope(sorted, { kind: "topic", topic }, options);
  return {
    channel,
    global: decideScope(sorted, { kind: "global" }, options),
    topics,
    deliverability: decideDeliverability(sorted),
  };
}

/** The decision for a scope: a topic's own decision, or the global one when no topic is mapped. */
export function decisionFor(state: ChannelConsent, scope: Scope): ScopeDecision {
  if (scope.kind === "global") return state.global;
  return state.topics[scope.topic] ?? state.global;
}
