/**
 * Full reconciliation: re-read every connection of a pair in full, then compare what each linked
 * system shows about opting out with what the consent rules decide from the ledger. Every
 * difference is listed with its cause and whether the rules let Concord fix it; `fix` applies the
 * fixable ones (consent operations only) and compares again.
 */
import type { Pair } from "../config/concord-config";
import { decisionFor, foldChannelConsent, type ScopeDecision } from "../core/consent/consent-state";
import { GLOBAL_SCOPE, type Scope } from "../core/consent/consent-event";
import {
  ACCOUNT_OBSERVED,
  sameObservedScope,
  shownConsent,
  showsAnyOptOut,
  type ConsentFact,
  type ObservedScope,
} from "../core/consent/system-consent";
import { pairTopics } from "../planner/plan-pair";
import type { Plan } from "../planner/plan";
import type { PlanContact } from "../planner/plan-input";
import { executePlan, type ExecutionReport } from "../executor/execute-plan";
import { loadPlanContactsById } from "../pipeline/load-plan-contacts";
import { resolvePair, type ResolvedPair } from "../pipeline/resolve-pair";
import {
  asJson,
  planFromStore,
  recordLapses,
  pullOne,
  pullPair,
  rereadCrmWrites,
  storeOperations,
  type PlanFromStoreOptions,
  type SyncDeps,
} from "./sync-pair";
import type { PullReport } from "../pipeline/pull-connection";

export type DifferenceKind =
  /** The rules say opted out; the system still shows the person subscribed. */
  | "opt_out_missing"
  /** The person's own opt-in lifted an opt-out the system still shows or does not record. */
  | "opt_in_missing"
  /** An admin asked to resubscribe; the person has not confirmed: the system shows them out, rightly. */
  | "waiting_for_person"
  /** Sendable by the rules, unsubscribed in the platform: only the person can resubscribe there. */
  | "platform_only_opt_out"
  /** An opt-out from a record matched only by address, kept out of the CRM by the pair's policy. */
  | "unlinked_opt_out_not_applied";

export type Difference = {
  kind: DifferenceKind;
  contact_id: string;
  email: string | null;
  connection_id: string;
  scope: Scope;
  /** What the system shows, in its own words. */
  system_shows: string;
  /** What the rules decide, with the rule and the deciding event. */
  rules_say: string;
  cause: string;
  fixable: boolean;
};

export type ReconcileReport = {
  pair_id: string;
  run_id: string;
  status: "succeeded" | "failed";
  error?: { code: string; message: string };
  pulls: PullReport[];
  contacts_compared: number;
  /** Opted-out people per connection, as each system shows them. */
  opt_outs_by_connection: Record<string, number>;
  differences: Difference[];
  fixed?: ExecutionReport;
  /** Differences left after fixing (only with `fix`). */
  remaining?: Difference[];
};

/** What a record shows about a scope, in its system's own words (its consent facts' labels). */
function shows(facts: readonly ConsentFact[], scope: ObservedScope, fallback: string): string {
  const words = facts.filter((f) => sameObservedScope(f.scope, scope)).map((f) => f.label);
  return words.length > 0 ? words.join("; ") : fallback;
}

function describeDecision(d: ScopeDecision): string {
  const by = d.decided_by !== undefined ? ` by ${d.decided_by}` : "";
  return `${d.sendable ? "sendable" : "not sendable"} (rule ${d.rule}${by})`;
}

/** Compares a planned pair: the plan's consent operations are the fixable differences. */
export function compareConsent(
  resolved: ResolvedPair,
  contacts: readonly PlanContact[],
  plan: Plan,
  as_of: string,
): Difference[] {
  const byId = new Map(contacts.map((c) => [c.contact.id, c]));
  const topics = pairTopics(resolved.pair);
  const out: Difference[] = [];
  const decisionOf = (c: PlanContact, scope: Scope): ScopeDecision =>
    decisionFor(
      foldChannelConsent(c.events, "email", {
        as_of,
        topics,
        require_consent_basis: resolved.policies.require_consent_basis,
      }),
      scope,
    );
  const emailOf = (c: PlanContact | undefined): string | null =>
    c?.crm?.emails.find((e) => e.primary)?.address ?? c?.contact.primary_email ?? null;

  for (const op of plan.operations) {
    if (op.priority !== "consent") continue;
    for (const id of op.contact_ids) {
      const c = byId.get(id);
      if (!c) continue;
      const o = op.operation;
      const platform = resolved.pair.platforms.find((p) => p.connection_id === op.connection_id);
      const scope = op.scope ?? GLOBAL_SCOPE;
      const decision = decisionOf(c, scope);
      if (o.kind === "request_resubscribe") continue; // reported below as waiting
      const held = platform !== undefined ? c.platforms[op.connection_id] : c.crm;
      out.push({
        kind: o.kind === "record_opt_in" ? "opt_in_missing" : "opt_out_missing",
        contact_id: id,
        email: emailOf(c),
        connection_id: op.connection_id,
        scope,
        system_shows:
          o.kind === "record_opt_in"
            ? "an opt-out the person has since lifted, or no record of their opt-in"
            : o.kind === "record_opt_out"
              ? shows(
                  held?.consent_state ?? [],
                  o.scope,
                  platform !== undefined ? "subscribed" : "no opt-out",
                )
              : "no opt-out",
        rules_say: describeDecision(decision),
        cause: op.reason.message,
        fixable: true,
      });
    }
  }
  for (const w of plan.waiting) {
    const c = byId.get(w.contact_id);
    out.push({
      kind: "waiting_for_person",
      contact_id: w.contact_id,
      email: emailOf(c),
      connection_id: w.connection_id,
      scope:
        resolved.pair.platforms.find((p) => p.connection_id === w.connection_id)?.account_scope ??
        GLOBAL_SCOPE,
      system_shows: "unsubscribed",
      rules_say: `opted out until the person confirms (resubscribe requested ${w.requested_at}, event ${w.event_id})`,
      cause: w.requested_now
        ? "An admin cleared the opt-out in the CRM; the platform's confirmation email goes out with the fix."
        : "An admin cleared the opt-out in the CRM; the confirmation email was sent and the person has not confirmed.",
      fixable: w.requested_now,
    });
  }
  for (const u of plan.unlinked_opt_outs) {
    if (u.applied) continue;
    out.push({
      kind: "unlinked_opt_out_not_applied",
      contact_id: u.contact_id,
      email: emailOf(byId.get(u.contact_id)),
      connection_id: resolved.pair.crm.connection_id,
      scope: u.scope,
      system_shows: "no opt-out",
      rules_say: `opted out by ${u.event_id} from ${u.connection_id}`,
      cause: `The record in ${u.connection_id} was matched to this person only by its address; the pair's policy (report_only) keeps it out of the CRM.`,
      fixable: false,
    });
  }
  // Unsubscribed on a platform although the rules say sendable: only the person can change that.
  for (const c of contacts) {
    for (const p of platformOnlyOptOuts(resolved, c, as_of)) {
      const rec = c.platforms[p.connection_id];
      if (!rec) continue;
      const decision = decisionOf(c, p.account_scope);
      if (plan.waiting.some((w) => w.contact_id === c.contact.id && w.connection_id === p.connection_id))
        continue;
      out.push({
        kind: "platform_only_opt_out",
        contact_id: c.contact.id,
        email: rec.email,
        connection_id: p.connection_id,
        scope: p.account_scope,
        system_shows: shows(rec.consent_state, ACCOUNT_OBSERVED, "unsubscribed"),
        rules_say: describeDecision(decision),
        cause:
          "The person is sendable by the rules (their own opt-in elsewhere), but this platform lets only the person resubscribe there.",
        fixable: false,
      });
    }
  }
  return out.sort(
    (a, b) =>
      (a.email ?? "").localeCompare(b.email ?? "") ||
      a.connection_id.localeCompare(b.connection_id) ||
      a.kind.localeCompare(b.kind),
  );
}

/** The platforms that show the contact unsubscribed although the rules say sendable there. */
function platformOnlyOptOuts(
  resolved: ResolvedPair,
  c: PlanContact,
  as_of: string,
): ResolvedPair["pair"]["platforms"] {
  const unsubscribed = resolved.pair.platforms.filter((p) => {
    const rec = c.platforms[p.connection_id];
    return (
      rec !== undefined &&
      rec.deleted !== true &&
      shownConsent(rec.consent_state, ACCOUNT_OBSERVED) === "opt_out"
    );
  });
  if (unsubscribed.length === 0) return [];
  const state = foldChannelConsent(c.events, "email", {
    as_of,
    topics: pairTopics(resolved.pair),
    require_consent_basis: resolved.policies.require_consent_basis,
  });
  return unsubscribed.filter((p) => {
    const decision = decisionFor(state, p.account_scope);
    return decision.sendable && !decision.pending_resubscribe;
  });
}

/** Adds the contact to the opted-out counts of each system that shows it opted out. */
function countOptOuts(counts: Record<string, number>, resolved: ResolvedPair, c: PlanContact): void {
  const crm = c.crm;
  if (crm && crm.deleted !== true && showsAnyOptOut(crm.consent_state))
    counts[resolved.pair.crm.connection_id] = (counts[resolved.pair.crm.connection_id] ?? 0) + 1;
  for (const p of resolved.pair.platforms) {
    const rec = c.platforms[p.connection_id];
    if (rec && rec.deleted !== true && showsAnyOptOut(rec.consent_state))
      counts[p.connection_id] = (counts[p.connection_id] ?? 0) + 1;
  }
}

/**
 * Plans the pair from the store and compares. Contacts stream through once (counted as they pass);
 * only the ones a difference names are read again afterwards, so a pair of any size is compared
 * without holding every contact.
 */
async function planAndCompare(
  deps: SyncDeps,
  resolved: ResolvedPair,
  lapses: PlanFromStoreOptions["lapses"] = "act",
): Promise<{
  plan: Plan;
  contacts_compared: number;
  opt_outs_by_connection: Record<string, number>;
  differences: Difference[];
}> {
  const asOf = deps.now().toISOString();
  const counts: Record<string, number> = { [resolved.pair.crm.connection_id]: 0 };
  for (const p of resolved.pair.platforms) counts[p.connection_id] = 0;
  const named = new Set<string>();
  const { plan, contacts_planned } = await planFromStore(deps, resolved, {
    lapses,
    visit: (c) => {
      countOptOuts(counts, resolved, c);
      if (platformOnlyOptOuts(resolved, c, asOf).length > 0) named.add(c.contact.id);
    },
  });
  for (const op of plan.operations)
    if (op.priority === "consent") for (const id of op.contact_ids) named.add(id);
  for (const w of plan.waiting) named.add(w.contact_id);
  for (const u of plan.unlinked_opt_outs) if (!u.applied) named.add(u.contact_id);
  const contacts = await loadPlanContactsById(deps.store, resolved, [...named]);
  return {
    plan,
    contacts_compared: contacts_planned,
    opt_outs_by_connection: counts,
    differences: compareConsent(resolved, contacts, plan, asOf),
  };
}

/** Reconciles one pair: full pull, compare, and with `fix` apply the consent fixes and compare again. */
export async function reconcilePair(
  deps: SyncDeps,
  pair: Pair,
  options: { fix?: boolean; pull?: boolean } = {},
): Promise<ReconcileReport> {
  const run = await deps.store.runs.create({ kind: "reconcile", pair_id: pair.id });
  const report: ReconcileReport = {
    pair_id: pair.id,
    run_id: run.id,
    status: "succeeded",
    pulls: [],
    contacts_compared: 0,
    opt_outs_by_connection: {},
    differences: [],
  };
  const resolved = await resolvePair(deps.config, pair, deps.connections, deps.store);
  if (!resolved.ok) {
    report.status = "failed";
    report.error = { code: resolved.error.code, message: resolved.error.message };
    await deps.store.runs.finish(run.id, "failed", asJson(report));
    return report;
  }
  const r = resolved.value;
  if (options.pull !== false) report.pulls = await pullPair(deps, pair, r, true);
  const pullFailed = report.pulls.find((p) => p.error !== null);
  if (pullFailed?.error) {
    // A partial read would report differences that are not there: say so instead.
    report.status = "failed";
    report.error = {
      code: pullFailed.error.code,
      message: `Could not read ${pullFailed.connection_id} in full (${pullFailed.error.message}); nothing was compared.`,
    };
    await deps.store.runs.finish(run.id, "failed", asJson(report));
    return report;
  }
  let compared = await planAndCompare(deps, r);
  if (options.fix === true)
    compared = await recordLapses(deps, pair, compared, (lapses) =>
      planAndCompare(deps, r, lapses ? "act" : "defer"),
    );
  const { plan, contacts_compared, opt_outs_by_connection, differences } = compared;
  report.contacts_compared = contacts_compared;
  report.opt_outs_by_connection = opt_outs_by_connection;
  report.differences = differences;

  if (options.fix === true && report.differences.some((d) => d.fixable)) {
    const consentOnly = { operations: plan.operations.filter((o) => o.priority === "consent") };
    await deps.store.transaction(async (tx) => {
      const saved = await tx.plans.save({
        run_id: run.id,
        pair_id: pair.id,
        plan: asJson({ reconcile: true, operations: consentOnly.operations.map((o) => o.op_id) }),
        counts: { operations: consentOnly.operations.length },
      });
      await storeOperations(tx, saved.id, consentOnly.operations);
    });
    report.fixed = await executePlan(
      { store: deps.store, connections: deps.connections, now: deps.now },
      consentOnly,
    );
    const touched = new Set(consentOnly.operations.map((o) => o.connection_id));
    // Re-read what was fixed so the second comparison sees the systems, not our intentions.
    for (const p of pair.platforms.map((x) => x.connection).filter((c) => touched.has(c)))
      await pullOne(deps, pair, p, r.platform_list_ids[p] ?? []);
    await rereadCrmWrites(deps, pair, consentOnly.operations);
    report.remaining = (await planAndCompare(deps, r)).differences;
  }
  // The whole report is the run's summary: the latest reconciliation can be shown (and exported)
  // without running it again.
  await deps.store.runs.finish(run.id, "succeeded", asJson(report));
  return report;
}
