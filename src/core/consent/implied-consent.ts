/**
 * Implied consent that lapses by law (DESIGN.md §2 rule 9; CASL): consent implied by a donation
 * lasts two years, by an inquiry six months, and express consent never lapses. When the last act
 * that grounds a person's implied consent is older than its period and they gave no express consent,
 * the consent lapses: an opt-out by rule (`expiry_rule`), dated the day it lapsed, which the ledger
 * keeps like any other and which only the person's own opt-in lifts.
 */
import type { ConsentEvent, Provenance, Scope, TopicKey } from "./consent-event";
import { scopeKey } from "./consent-event";
import { decisionFor, type ChannelConsent, type ScopeDecision } from "./consent-state";

/** One act that grounds implied consent: its kind, when it happened, and the system's id for it. */
export type ConsentGround = { kind: "donation" | "inquiry"; at: string; ref?: string };

/** A span of the calendar (years and months keep their calendar length). */
export type CalendarPeriod = { years: number; months: number; days: number };

/** One jurisdiction's rule: whom it covers, for which scopes, and how long each ground lasts. */
export type ImpliedConsentRule = {
  /** The rule's name, shown in the evidence and in explain (`casl`). */
  name: string;
  /** The CRM address countries it covers, compared case-insensitively; `*` covers everyone. */
  countries: readonly string[];
  /** The topics it covers; none means all email (the global scope). */
  topics: readonly TopicKey[];
  periods: Readonly<Record<ConsentGround["kind"], CalendarPeriod>>;
};

/** An opt-out by rule, before the ledger gives it an id. */
export type LapseDraft = Omit<Extract<ConsentEvent, { kind: "opt_out" }>, "id">;

export type LapseInput = {
  contact_id: string;
  /** The country of the person's CRM address, when known. */
  country: string | null;
  /** The person's email consent, folded at `as_of`. */
  consent: ChannelConsent;
  events: readonly ConsentEvent[];
  /** Grounds read from the CRM record (the latest gift). */
  crm_grounds: readonly ConsentGround[];
  /** The CRM connection the grounds were read from. */
  crm_source?: Provenance;
  /** Connections whose record of the person Concord itself created: their sign-up is no act of the person's. */
  created_by_concord: ReadonlySet<string>;
  as_of: string;
};

/** Where an opt-out by rule says it came from: Concord's own compliance rules. */
export const LAPSE_SOURCE_SYSTEM = "concord";

/** The rules covering a person of `country` (case-insensitive; `*` covers anyone, even without one). */
export function rulesFor(rules: readonly ImpliedConsentRule[], country: string | null): ImpliedConsentRule[] {
  const c = (country ?? "").trim().toLowerCase();
  return rules.filter((r) =>
    r.countries.some((x) => x === "*" || (c !== "" && x.trim().toLowerCase() === c)),
  );
}

/** `iso` moved on by `period` in UTC; a day past the end of a shorter month is its last day. */
export function addPeriod(iso: string, period: CalendarPeriod): string {
  const d = new Date(iso);
  const day = d.getUTCDate();
  const target = new Date(
    Date.UTC(
      d.getUTCFullYear() + period.years,
      d.getUTCMonth() + period.months,
      1,
      d.getUTCHours(),
      d.getUTCMinutes(),
      d.getUTCSeconds(),
      d.getUTCMilliseconds(),
    ),
  );
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(day, lastDay) + period.days);
  return target.toISOString();
}

export function describePeriod(p: CalendarPeriod): string {
  const parts = [
    [p.years, "year"],
    [p.months, "month"],
    [p.days, "day"],
  ] as const;
  return parts
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n} ${unit}${n === 1 ? "" : "s"}`)
    .join(" ");
}

/** Decisions that rest on an opt-in that lifted an opt-out: the person's own, or an override. */
const LIFT_RULES = new Set(["lifted_by_contact_opt_in", "lifted_by_operator_override"]);

/**
 * Whether a decision rests on express consent, which never lapses. An opt-out lifted by the
 * person's own opt-in lasts as that opt-in does: express (a confirmed sign-up, a written request)
 * for good, implied (a sign-up the platform holds as implicit permission) only for its period, as
 * it would without the opt-out before it.
 */
function lasting(decision: ScopeDecision, events: readonly ConsentEvent[]): boolean {
  if (decision.rule === "express_consent") return true;
  if (!LIFT_RULES.has(decision.rule)) return false;
  const basis = events.find((e) => e.id === decision.decided_by);
  return basis?.kind !== "opt_in" || basis.basis !== "implied";
}

/**
 * Per covering rule and scope it names, where the person is still sendable and gave no express
 * consent: the ground that lasts longest, with the day it lapses (a person with no known ground is
 * left alone: nothing says their consent is implied).
 */
function* lapseCandidates(
  input: LapseInput,
  rules: readonly ImpliedConsentRule[],
): Generator<{ rule: ImpliedConsentRule; scope: Scope; ground: Ground; until: string }> {
  for (const rule of rulesFor(rules, input.country)) {
    const scopes: Scope[] =
      rule.topics.length === 0
        ? [{ kind: "global" }]
        : rule.topics.map((topic) => ({ kind: "topic", topic }));
    for (const scope of scopes) {
      const decision = decisionFor(input.consent, scope);
      if (!decision.sendable || lasting(decision, input.events)) continue;
      // The ground that lasts longest decides; its lapse is the consent's.
      let last: { ground: Ground; until: string } | undefined;
      for (const ground of groundsFor(input, scope)) {
        const until = addPeriod(ground.at, rule.periods[ground.kind]);
        if (last === undefined || until > last.until) last = { ground, until };
      }
      if (last !== undefined) yield { rule, scope, ...last };
    }
  }
}

/**
 * The opt-outs by rule due for one person at `as_of`: per scope a covering rule names, where the
 * person is still sendable, gave no express consent, and every ground known for them has lapsed.
 * A person with no known ground is left alone (nothing says their consent is implied).
 */
export function impliedConsentLapses(input: LapseInput, rules: readonly ImpliedConsentRule[]): LapseDraft[] {
  const out: LapseDraft[] = [];
  const asOf = Date.parse(input.as_of);
  const seen = new Set<string>();
  for (const { rule, scope, ground, until } of lapseCandidates(input, rules)) {
    const key = scopeKey(scope);
    if (seen.has(key) || Date.parse(until) > asOf) continue;
    seen.add(key);
    out.push({
      kind: "opt_out",
      contact_id: input.contact_id,
      channel: "email",
      scope,
      source: { system: LAPSE_SOURCE_SYSTEM, connection: `compliance:${rule.name}` },
      mechanism: "expiry_rule",
      actor: { kind: "platform" },
      occurred_at: until,
      observed_at: new Date(asOf).toISOString(),
      evidence: {
        reason: `Implied consent (rule ${rule.name}) from ${ground.kind === "donation" ? "a donation" : "an inquiry or sign-up"} on ${ground.at.slice(0, 10)}${ground.where ? ` (${ground.where})` : ""} lapsed on ${until.slice(0, 10)} after ${describePeriod(rule.periods[ground.kind])}; no express consent is recorded.`,
        source_record_id: ground.ref,
      },
    });
  }
  return out;
}

/** The first instant after `as_of` at which the person's implied consent lapses under `rules`, if any. */
export function nextLapseAt(input: LapseInput, rules: readonly ImpliedConsentRule[]): string | undefined {
  const asOf = Date.parse(input.as_of);
  let next: string | undefined;
  for (const { until } of lapseCandidates(input, rules))
    if (Date.parse(until) > asOf && (next === undefined || Date.parse(until) < Date.parse(next)))
      next = until;
  return next;
}

type Ground = ConsentGround & { ref: string; where?: string };

/**
 * What grounds the person's implied consent to `scope`: the CRM record's grounds, and every implied
 * opt-in the ledger holds for the scope or all email (a platform sign-up the account made, which
 * counts as an inquiry: the shorter period, never longer than the law allows). A record Concord
 * itself imported is no sign-up: the platform's date on it is the import's.
 */
function groundsFor(input: LapseInput, scope: Scope): Ground[] {
  const grounds: Ground[] = input.crm_grounds.map((g) => ({
    ...g,
    ref: g.ref ?? `${g.kind}:${g.at}`,
    ...(input.crm_source ? { where: input.crm_source.connection } : {}),
  }));
  for (const e of input.events) {
    if (e.kind !== "opt_in" || e.basis !== "implied" || e.channel !== "email") continue;
    if (e.scope.kind !== "global" && scopeKey(e.scope) !== scopeKey(scope)) continue;
    if (input.created_by_concord.has(e.source.connection)) continue;
    // An account's own edit (staff clearing a flag they set) is no inquiry by the person.
    if (e.actor.kind === "account" && e.mechanism === "admin_edit") continue;
    grounds.push({ kind: "inquiry", at: e.occurred_at, ref: e.id, where: e.source.connection });
  }
  return grounds.filter((g) => !Number.isNaN(Date.parse(g.at)));
}
