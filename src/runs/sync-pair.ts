/**
 * One sync of a pair (DESIGN.md §3): pull every connection → record → plan → store the plan →
 * execute (consent first) → re-read the platforms that took new contacts, so the records they made
 * are linked. A dry run stops once the plan is stored. Every stage commits its own writes atomically
 * and every later stage re-derives its work from what is stored, so a run killed anywhere and run
 * again reaches the same state (ADR 8).
 */
import type { ConcordConfig, Pair } from "../config/concord-config";
import { unindexed } from "../store/unindexed";
import { movedBaselines } from "../planner/apply-plan-effects";
import type { Plan } from "../planner/plan";
import type { PlanContact } from "../planner/plan-input";
import { createPairPlanner } from "../planner/plan-pair";
import type { JsonValue, Run, StoreSession } from "../store/ports";
import { sha256Hex } from "../pipeline/content-hash";
import { consentEventId } from "../ledger/consent-event-id";
import { appendConsentEvents } from "../ledger/consent-ledger";
import { executePlan, type ExecuteDeps, type ExecutionReport } from "../executor/execute-plan";
import { loadPlanContacts, loadPlanContactsById, type PlanItem } from "../pipeline/load-plan-contacts";
import { planMarkKey, writePlanMarks, type NewPlanMark, type PlanMarking } from "../pipeline/plan-marks";
import type { OpenedConnection } from "../connections/open-connection";
import { pullConnection, recordWebhookChanges, type PullReport } from "../pipeline/pull-connection";
import { resolvePair, saveListSyncState, type ResolvedPair } from "../pipeline/resolve-pair";
import { recordPlanStanding } from "../pipeline/plan-standing";
import { changeInstant } from "../store/change-order";
import { fieldLinks, linkGenerations, type LinkSigner } from "./personal-links";
import { errorMessage } from "../core/error-code";

export type SyncOptions = {
  dry_run?: boolean;
  /** Read everything instead of changes since the checkpoint (the scheduled full reconciliation). */
  full?: boolean;
  /** Skip the pull (the records were just recorded, e.g. by a webhook re-read). */
  pull?: boolean;
  /**
   * The pair's pulls, made just before the run took the pair (a poll reads before it waits for
   * the pair, so its reads never hold up a webhook's sync): reported as the run's own.
   */
  pulled?: readonly PullReport[];
  /**
   * The pair as resolved for those pulls, when no run in between could have changed it: then the
   * connections' lists are not read again. A pair on a platform some pair's list rules act on is
   * resolved again, because those rules' runs create, rename and delete lists.
   */
  resolved?: ResolvedPair;
  /** Plan only these contacts (a webhook's targets); all of the pair's contacts otherwise. */
  contact_ids?: readonly string[];
  kind?: "sync" | "reconcile";
};

export type SyncDeps = {
  store: StoreSession;
  config: ConcordConfig;
  connections: ReadonlyMap<string, OpenedConnection>;
  now: () => Date;
  /** Signs the personal links a pair writes into platform fields; without it none are written. */
  links?: LinkSigner;
  onStage?: (stage: SyncStage, detail?: string) => void;
  onProgress?: ExecuteDeps["onProgress"];
  afterBatch?: ExecuteDeps["afterBatch"];
  batch_size?: number;
};

export type SyncStage = "pull" | "plan" | "execute" | "link" | "done";

export type SyncReport = {
  run_id: string;
  pair_id: string;
  status: "succeeded" | "failed";
  dry_run: boolean;
  error?: { code: string; message: string };
  pulls: PullReport[];
  plan_id?: string;
  plan?: PlanSummary;
  execution?: ExecutionReport;
  /** Pulls after execution that linked the contacts the platforms created. */
  relinks: PullReport[];
  /** Baselines moved because both sides now agree on new values. */
  baselines_updated: number;
  /**
   * Contacts the plan covered; of them, those unchanged since a plan made of them what their marks
   * keep, added to the plan as marked without being planned again (ADR 29, ADR 31).
   */
  contacts?: { planned: number; unchanged: number };
  /** Implied consent found lapsed but not acted on this run, and why (the CRM could not confirm it). */
  lapses_deferred?: LapseDeferral;
  /** CRM lists a list rule selects whose platform list this run did not make or change, and why. */
  lists_left?: { crm_list: string; platform: string; reason: string }[];
};

export type LapseDeferral = { contacts: number; reason: string };

/** What a stored plan says, without operation payloads: counts, reasons, skips and waits. */
export type PlanSummary = Pick<
  Plan,
  "pair_id" | "as_of" | "counts" | "gains" | "skipped" | "waiting" | "unlinked_opt_outs" | "lapses"
> & {
  operations: {
    op_id: string;
    connection_id: string;
    kind: string;
    priority: string;
    contacts: number;
    reason: Plan["operations"][number]["reason"];
  }[];
};

export function summarisePlan(plan: Plan): PlanSummary {
  return {
    pair_id: plan.pair_id,
    as_of: plan.as_of,
    counts: plan.counts,
    gains: plan.gains,
    skipped: plan.skipped,
    waiting: plan.waiting,
    unlinked_opt_outs: plan.unlinked_opt_outs,
    lapses: plan.lapses,
    operations: plan.operations.map((o) => ({
      op_id: o.op_id,
      connection_id: o.connection_id,
      kind: o.operation.kind,
      priority: o.priority,
      contacts: o.contact_ids.length,
      reason: o.reason,
    })),
  };
}

export const asJson = (value: unknown): JsonValue => JSON.parse(JSON.stringify(value)) as JsonValue;

/** Runs one sync of `pair`; never throws for vendor or config trouble (the report says), only for bugs. */
export async function syncPair(deps: SyncDeps, pair: Pair, options: SyncOptions = {}): Promise<SyncReport> {
  const dryRun = options.dry_run === true;
  const run = await deps.store.runs.create({
    kind: options.kind === "reconcile" ? "reconcile" : dryRun ? "dry_run" : "sync",
    pair_id: pair.id,
  });
  const report: SyncReport = {
    run_id: run.id,
    pair_id: pair.id,
    status: "succeeded",
    dry_run: dryRun,
    pulls: [],
    relinks: [],
    baselines_updated: 0,
  };
  try {
    const resolved =
      options.resolved !== undefined
        ? { ok: true as const, value: options.resolved }
        : await resolvePair(deps.config, pair, deps.connections, deps.store);
    if (!resolved.ok) return await finish(deps, run, report, resolved.error);
    const r = resolved.value;
    if (options.contact_ids === undefined && r.list_sync_skipped.length > 0)
      report.lists_left = r.list_sync_skipped.map((l) => ({ ...l }));

    if (options.pulled !== undefined) report.pulls = [...options.pulled];
    else if (options.pull !== false) {
      deps.onStage?.("pull");
      report.pulls = await pullPair(deps, pair, r, options.full === true);
    }

    deps.onStage?.("plan");
    // The scheduled full reconciliation plans every contact again rather than trust the marks.
    const planning: PlanFromStoreOptions = {
      ...(options.contact_ids !== undefined ? { contact_ids: options.contact_ids } : {}),
      ...(options.full === true ? { marks: "refresh" as const } : {}),
    };
    let planned: Planned & { lapses_deferred?: LapseDeferral } = await planFromStore(deps, r, planning);
    if (!dryRun)
      planned = await recordLapses(deps, pair, planned, (lapses) =>
        planFromStore(deps, r, { ...planning, lapses: lapses ? "act" : "defer" }),
      );
    const { plan, baselines } = planned;
    report.contacts = { planned: planned.contacts_planned, unchanged: planned.contacts_unchanged };
    if (planned.lapses_deferred) report.lapses_deferred = planned.lapses_deferred;
    const planId = await savePlan(
      deps.store,
      run.id,
      pair.id,
      plan,
      baselines,
      options.contact_ids !== undefined,
    );
    report.plan_id = planId;
    report.plan = summarisePlan(plan);
    report.baselines_updated = baselines.size;
    if (dryRun) return await finish(deps, run, report);

    deps.onStage?.(
      "execute",
      `${plan.operations.length} operation${plan.operations.length === 1 ? "" : "s"}`,
    );
    report.execution = await executePlan(
      {
        store: deps.store,
        connections: deps.connections,
        now: deps.now,
        ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
        ...(deps.afterBatch ? { afterBatch: deps.afterBatch } : {}),
        ...(deps.batch_size !== undefined ? { batch_size: deps.batch_size } : {}),
      },
      plan,
    );

    const after = await linkAndCommit(deps, pair, r, plan.operations, report.execution, run.id);
    report.relinks = after.relinks;
    report.baselines_updated += after.baselines_updated;
    // The CRM lists the list rules follow are kept once every list change of this plan is applied,
    // and none waited for a platform's lists, so a rename or a deletion not yet carried is seen
    // again at the next run.
    if (options.contact_ids === undefined && pair.list_sync.length > 0 && r.list_changes_wait !== true) {
      const listOps = plan.operations.filter((o) => o.reason.code.startsWith("list_")).map((o) => o.op_id);
      const done = await Promise.all(listOps.map((id) => deps.store.operations.get(id)));
      if (done.every((o) => o?.status === "succeeded"))
        await saveListSyncState(deps.store, pair.crm, pair.id, r.list_sync_state);
    }
    // What a whole plan was made under: a later poll that finds it standing makes no run (ADR 33).
    if (options.contact_ids === undefined && planned.key !== undefined && planned.standing !== undefined) {
      await recordPlanStanding(deps.store, pair.id, {
        key: planned.key,
        contacts: planned.contacts_planned,
        ...planned.standing,
        operations: plan.operations.length,
        run_id: run.id,
        planned_at: plan.as_of,
        checked_at: deps.now().toISOString(),
      });
    }
    return await finish(deps, run, report);
  } catch (error) {
    await deps.store.runs.finish(run.id, "failed", {
      error: errorMessage(error),
    });
    throw error;
  }
}

/**
 * What follows executing a plan (syncPair, and applying a stored plan): re-read the platforms that
 * took new contacts so the records they made are linked, claim those links as Concord's, and commit
 * the baselines the written records now agree on.
 */
export async function linkAndCommit(
  deps: SyncDeps,
  pair: Pair,
  resolved: ResolvedPair,
  operations: Plan["operations"],
  execution: ExecutionReport,
  runId: string,
): Promise<{ relinks: PullReport[]; baselines_updated: number }> {
  const relinks: PullReport[] = [];
  // Bulk imports do not return the ids they made: read the platforms back so they are linked now,
  // not at the next poll (a link-less contact would otherwise be planned for import again).
  const created = new Set(
    operations
      .filter((o) => o.operation.kind === "upsert_contacts" || o.operation.kind === "change_email")
      .map((o) => o.connection_id),
  );
  if (created.size > 0) {
    deps.onStage?.("link");
    for (const connectionId of created)
      relinks.push(await pullOne(deps, pair, connectionId, resolved.platform_list_ids[connectionId] ?? []));
  }
  await rereadCrmWrites(deps, pair, operations);
  // Records Concord's imports made were linked by their address: they are Concord's, not unlinked uploads.
  for (const [connectionId, contactIds] of Object.entries(execution.imported))
    await deps.store.links.claim(connectionId, contactIds);
  // Commit: what the written records now agree on becomes their baseline, so a change either side
  // makes before the next run is seen as that side's change (ADR 8).
  const baselines_updated = await commitBaselines(
    deps.store,
    resolved,
    operations.flatMap((o) => o.contact_ids),
    runId,
    deps.now(),
  );
  return { relinks, baselines_updated };
}

async function finish(
  deps: SyncDeps,
  run: Run,
  report: SyncReport,
  error?: { code: string; message: string },
): Promise<SyncReport> {
  if (error) {
    report.status = "failed";
    report.error = { code: error.code, message: error.message };
  }
  // Health reports (an auth failure seen mid-run) are stored and alerted before the run says it is done.
  await Promise.all([...deps.connections.values()].map((c) => c.settled()));
  await deps.store.runs.finish(run.id, report.status, runSummary(report));
  deps.onStage?.("done");
  return report;
}

/** The run row's summary: counts, not contact lists (those live in the plan). */
function runSummary(report: SyncReport): JsonValue {
  return asJson({
    dry_run: report.dry_run,
    ...(report.error ? { error: report.error } : {}),
    pulls: report.pulls.map((p) => ({
      connection_id: p.connection_id,
      records_seen: p.records_seen,
      records_changed: p.records_changed,
      consent_events_appended: p.consent_events_appended,
      ...(p.records_refused_erased > 0 ? { records_refused_erased: p.records_refused_erased } : {}),
      ...(p.records_stale > 0 ? { records_stale: p.records_stale } : {}),
      // What the read could not attribute to one person (kept out of the ledger until reviewed).
      ...(p.ambiguous_records > 0 ? { ambiguous_records: p.ambiguous_records } : {}),
      ...(p.held_opt_ins > 0 ? { held_opt_ins: p.held_opt_ins } : {}),
      ...(p.held_observations > 0 ? { held_observations: p.held_observations } : {}),
      error: p.error,
    })),
    ...(report.plan
      ? {
          plan_id: report.plan_id,
          operations: report.plan.operations.length,
          counts: report.plan.counts,
          gains: report.plan.gains,
          skipped: report.plan.counts.skipped_records,
          consent_lapsed: report.plan.lapses.length,
          waiting_for_contact: report.plan.waiting.length,
        }
      : {}),
    ...(report.execution ? { execution: executionSummary(report.execution) } : {}),
    baselines_updated: report.baselines_updated,
    ...(report.contacts ? { contacts: report.contacts } : {}),
    ...(report.lists_left ? { lists_left: report.lists_left } : {}),
  });
}

/** An execution's counts for a run's stored summary (the refusals themselves are in the outcomes). */
export const executionSummary = (x: ExecutionReport) => ({
  operations: x.operations,
  items: x.items,
  waiting: x.waiting,
  rejections: x.rejections.length,
});

/** Pulls the CRM (with the mapped lists' memberships), then every platform. */
export async function pullPair(
  deps: Pick<SyncDeps, "store" | "config" | "connections" | "now">,
  pair: Pair,
  resolved: ResolvedPair,
  full: boolean,
): Promise<PullReport[]> {
  const targets = [
    { id: pair.crm, lists: resolved.crm_list_ids },
    ...pair.platforms.map((p) => ({
      id: p.connection,
      lists: resolved.platform_list_ids[p.connection] ?? [],
    })),
  ];
  // One after the other, the CRM first: identity is decided against what is already stored, so two
  // pulls never each create a contact for one new address, and platform records match CRM records.
  const reports: PullReport[] = [];
  for (const { id, lists } of targets) reports.push(await pullOne(deps, pair, id, lists, full));
  return reports;
}

/** Pulls one connection of the pair (changes since its checkpoint, or everything when `full`). */
export function pullOne(
  deps: Pick<SyncDeps, "store" | "config" | "connections" | "now">,
  pair: Pair,
  connectionId: string,
  listIds: readonly string[],
  full = false,
): Promise<PullReport> {
  const opened = deps.connections.get(connectionId);
  if (!opened) throw new Error(`connection ${connectionId} of pair ${pair.id} is not open`);
  return pullConnection({
    store: deps.store,
    connection: opened,
    config: deps.config,
    pair,
    now: deps.now,
    options: { ...(full ? { full: true } : {}), list_ids: [...listIds] },
  });
}

type Planned = Awaited<ReturnType<typeof planFromStore>>;

export type PlanFromStoreOptions = {
  /** Plan only these contacts (a webhook's targets); none: the whole pair. */
  contact_ids?: readonly string[];
  /** Sees each contact as planned (a reconciliation counts and compares with it). */
  visit?: (contact: PlanContact) => void;
  /**
   * A whole pair's plan: `reuse` (the default) adds the contacts unchanged since their marks were
   * made as their marks keep them; `refresh` plans every contact and marks them anew (the scheduled
   * full reconciliation). Either way the contacts planned are marked (ADR 29 to 31).
   */
  marks?: "reuse" | "refresh";
  /**
   * `defer`: implied consent found lapsed is not acted on (the CRM could not confirm it); those
   * contacts are planned as if it had not lapsed. The plan's key is the same either way, so the
   * marks a plan that acts on lapses wrote stand for this one, and the other way round.
   */
  lapses?: "act" | "defer";
};

/**
 * Plans from the store's current state; also returns the baselines that moved (both sides agree
 * now). A whole pair's plan adds the contacts unchanged since their marks as the marks keep them,
 * and marks those it plans (ADR 29 to 31); a webhook's few contacts, and a plan that visits every
 * contact, plan each one without marks.
 */
export async function planFromStore(
  deps: Pick<SyncDeps, "store" | "now" | "links">,
  resolved: ResolvedPair,
  options: PlanFromStoreOptions = {},
): Promise<{
  plan: Plan;
  contacts_planned: number;
  /** Of `contacts_planned`, those their marks stood for (added as marked, not planned again). */
  contacts_unchanged: number;
  baselines: Map<string, JsonValue>;
  /** The key the plan marked its contacts under (a whole pair's plan only). */
  key?: string;
  /**
   * A whole pair's plan only: the instant in the store's change order taken before any contact
   * was read, how many contacts it planned without leaving a mark, and the first instant time
   * alone could change a contact's part (ADR 34).
   */
  standing?: { since: string; unmarked: number; until: string | null };
}> {
  // Contacts stream from the store into the planner one at a time: a pair of any size holds its
  // plan and the baselines that moved, never every contact (ADR 8).
  const baselines = new Map<string, JsonValue>();
  const { contact_ids: contactIds, visit } = options;
  const fieldLinking = await fieldLinksFor(deps, resolved);
  const personalLinks = fieldLinking?.links;
  const asOf = deps.now().toISOString();
  const planner = createPairPlanner({
    ...(personalLinks !== undefined ? { personal_links: personalLinks } : {}),
    pair: resolved.pair,
    // A whole pair's plan carries its list rules' changes; a webhook's few contacts do not.
    ...(contactIds === undefined && resolved.list_changes.length > 0
      ? { list_changes: resolved.list_changes }
      : {}),
    fields: resolved.fields,
    policies: resolved.policies,
    as_of: asOf,
    hash: sha256Hex,
    ...(resolved.implied_consent.length > 0
      ? {
          implied_consent: {
            rules: resolved.implied_consent,
            event_id: consentEventId,
            ...(options.lapses === "defer" ? { defer: true } : {}),
          },
        }
      : {}),
  });
  const marking: PlanMarking | undefined =
    contactIds === undefined && visit === undefined
      ? { key: markKeyOf(resolved, fieldLinking), as_of: asOf, reuse: options.marks !== "refresh" }
      : undefined;
  // Before any contact is read: a change committed after it is one this plan may not have seen.
  const since = marking !== undefined ? await changeInstant(deps.store) : undefined;
  const source =
    contactIds === undefined
      ? loadPlanContacts(deps.store, resolved, marking)
      : (await loadPlanContactsById(deps.store, resolved, contactIds)).map((contact): PlanItem => ({
          contact,
        }));
  let contacts_planned = 0;
  let contacts_unchanged = 0;
  let contacts_marked = 0;
  let until: string | undefined;
  const earliest = (at: string | undefined): void => {
    if (at !== undefined && (until === undefined || at < until)) until = at;
  };
  const marks: NewPlanMark[] = [];
  /** Writes these marks, less those whose personal links were revoked since the plan signed them. */
  const writeMarks = async (key: string, some: NewPlanMark[]): Promise<void> => {
    const current = await withCurrentLinks(deps.store, fieldLinking?.generations, some);
    contacts_marked += current.length;
    await writePlanMarks(deps.store, resolved.pair.id, key, current);
  };
  for await (const item of source) {
    contacts_planned += 1;
    if ("marked" in item) {
      planner.replay(item.contribution);
      contacts_unchanged += 1;
      earliest(item.until);
      continue;
    }
    let c = item.contact;
    const agreed = movedBaselines(resolved.pair, resolved.fields, c, { now: asOf, executed: false });
    if (agreed) {
      baselines.set(c.contact.id, asJson(agreed));
      c = { ...c, baselines: agreed };
    }
    const outcome = planner.add(c);
    visit?.(c);
    // Planned from its rows alone, with no baseline to move: the next plan may add the same again.
    if (
      outcome.contribution !== undefined &&
      !agreed &&
      marking !== undefined &&
      item.plan_rev !== undefined
    ) {
      marks.push({
        contact_id: c.contact.id,
        plan_rev: item.plan_rev,
        contribution: outcome.contribution,
        ...(outcome.until !== undefined ? { until: outcome.until } : {}),
      });
      earliest(outcome.until);
      if (marks.length >= MARKS_WRITTEN_TOGETHER) await writeMarks(marking.key, marks.splice(0));
    }
  }
  if (marking !== undefined) await writeMarks(marking.key, marks);
  return {
    plan: planner.finish(),
    contacts_planned,
    contacts_unchanged,
    baselines,
    ...(marking !== undefined && since !== undefined
      ? {
          key: marking.key,
          standing: {
            since,
            unmarked: contacts_planned - contacts_unchanged - contacts_marked,
            until: until ?? null,
          },
        }
      : {}),
  };
}

/** The key a whole plan of the pair is made and marked under now (`planMarkKey`). */
export async function planKeyFor(
  deps: Pick<SyncDeps, "store" | "now" | "links">,
  resolved: ResolvedPair,
): Promise<string> {
  return markKeyOf(resolved, await fieldLinksFor(deps, resolved));
}

const markKeyOf = (resolved: ResolvedPair, fieldLinking: Awaited<ReturnType<typeof fieldLinksFor>>): string =>
  planMarkKey(
    resolved,
    // One link set signed for a fixed id stands for the signer, its URL and the window.
    fieldLinking !== undefined ? JSON.stringify(fieldLinking.links(PLAN_KEY_LINK_PROBE)) : undefined,
  );

/** Not a contact id (those are generated): the id personal links are signed for in a plan's key. */
const PLAN_KEY_LINK_PROBE = "plan-key";

/** Marks written in one transaction while a plan goes on (a commit each page cost more than the marks). */
const MARKS_WRITTEN_TOGETHER = 5_000;

/** Each contact's links for the pair's link fields, when a platform has them and links can be signed. */
async function fieldLinksFor(
  deps: Pick<SyncDeps, "store" | "now" | "links">,
  resolved: ResolvedPair,
): Promise<
  | {
      links: (contactId: string) => { one_click_url: string; preferences_url: string };
      /** The link generations the links are signed with (read once, when the plan starts). */
      generations: ReadonlyMap<string, number>;
    }
  | undefined
> {
  const signer = deps.links;
  if (signer === undefined || !resolved.pair.platforms.some((p) => p.link_fields !== undefined))
    return undefined;
  const generations = await linkGenerations(deps.store);
  const now = deps.now();
  return {
    links: (contactId) => fieldLinks(signer, contactId, generations.get(contactId) ?? 0, now),
    generations,
  };
}

/**
 * The marks of contacts whose link generation is still the one the plan signed their links with.
 * Generations are read when the plan starts and a contact's revision with each page: a revocation
 * between the two would leave a mark at the new revision made with the old links, so marks are
 * checked against the generations as they are now, just before they are written (a revocation
 * after this check moves the revision on past the mark's).
 */
async function withCurrentLinks(
  store: StoreSession,
  signedWith: ReadonlyMap<string, number> | undefined,
  marks: NewPlanMark[],
): Promise<NewPlanMark[]> {
  if (signedWith === undefined || marks.length === 0) return marks;
  const now = await linkGenerations(store);
  return marks.filter((m) => (now.get(m.contact_id) ?? 0) === (signedWith.get(m.contact_id) ?? 0));
}

/** Stores the plan, its operations and the moved baselines in one transaction. */
export async function savePlan(
  store: StoreSession,
  runId: string,
  pairId: string,
  plan: Plan,
  baselines: Map<string, JsonValue>,
  /** A plan for some contacts only (a webhook's): it supersedes nothing. */
  partial: boolean,
): Promise<string> {
  return store.transaction(async (tx) => {
    const counts: Record<string, number> = {
      operations: plan.operations.length,
      skipped: plan.counts.skipped_records,
    };
    for (const byKind of Object.values(plan.counts.operations))
      for (const [kind, c] of Object.entries(byKind)) counts[kind] = (counts[kind] ?? 0) + c.operations;
    const stored = await tx.plans.save({
      run_id: runId,
      pair_id: pairId,
      plan: asJson(summarisePlan(plan)),
      counts,
    });
    await storeOperations(tx, stored.id, plan.operations);
    await tx.baselines.putMany(
      [...baselines].map(([contactId, values]) => ({
        contact_id: contactId,
        pair_id: pairId,
        values,
        run_id: runId,
      })),
    );
    if (partial) return stored.id;
    // What earlier plans of this pair left pending and this plan no longer needs is superseded: the
    // state it was planned from has moved on (the queue shows only work that is still wanted). So is
    // an opt-out a system refused that this plan no longer makes (the system shows it now, or the
    // record is gone): a refused opt-out still failed is one still wanted, and counts as unapplied.
    await tx.db
      .updateTable("operations")
      .set({ status: "skipped", updated_at: tx.clock().toISOString() })
      // (The status list lets the index on plan and status find them: no pass over old plans' work.)
      .where("status", "in", ["pending", "failed"])
      .where((eb) => eb.or([eb("status", "=", "pending"), eb("kind", "=", "record_opt_out")]))
      .where("plan_id", "in", (eb) =>
        eb.selectFrom("plans").select("id").where("pair_id", "=", pairId).where("id", "!=", stored.id),
      )
      .execute();
    return stored.id;
  });
}

/** Stores the baselines the given contacts' records agree on now, where they moved; returns how many. */
export async function commitBaselines(
  store: StoreSession,
  resolved: ResolvedPair,
  contactIds: readonly string[],
  runId: string,
  now: Date,
): Promise<number> {
  if (contactIds.length === 0) return 0;
  const contacts = await loadPlanContactsById(store, resolved, contactIds);
  const moved = contacts.flatMap((c) => {
    const agreed = movedBaselines(resolved.pair, resolved.fields, c, {
      now: now.toISOString(),
      executed: true,
    });
    return agreed
      ? [{ contact_id: c.contact.id, pair_id: resolved.pair.id, values: asJson(agreed), run_id: runId }]
      : [];
  });
  await store.transaction((tx) => tx.baselines.putMany(moved));
  return moved.length;
}

/**
 * Stores a plan's operations. An id already stored (the same change planned again) is re-armed for
 * this plan unless the system refused it for good: refused ones stay refused and are reported, not
 * retried every run. An opt-out is never given up: a refused one is taken into the plan and tried
 * again an hour after the refusal.
 */
export async function storeOperations(
  tx: StoreSession,
  planId: string,
  operations: readonly Plan["operations"][number][],
): Promise<void> {
  await tx.operations.insertMany(
    operations.map((o) => ({
      id: o.op_id,
      plan_id: planId,
      kind: o.operation.kind,
      target_connection: o.connection_id,
      contact_id: o.contact_ids.length === 1 ? (o.contact_ids[0] ?? null) : null,
      payload: asJson({
        operation: o.operation,
        contact_ids: o.contact_ids,
        reason: o.reason,
        priority: o.priority,
      }),
    })),
  );
  const ids = operations.map((o) => o.op_id);
  const now = tx.clock().toISOString();
  const refusedBefore = new Date(tx.clock().getTime() - OPT_OUT_RETRY_AFTER_REFUSAL_MS).toISOString();
  for (let i = 0; i < ids.length; i += 500)
    await tx.db
      .updateTable("operations")
      .set((eb) => {
        // An opt-out a system refused, planned again because the system still does not show it:
        // tried again an hour after the refusal (a lasting refusal costs one call an hour); until
        // then it stays refused, but with this plan, so a later plan does not take it as given up.
        const waits = eb.and([eb("status", "=", "failed"), eb("updated_at", ">=", refusedBefore)]);
        return {
          plan_id: planId,
          status: eb.case().when(waits).then("failed").else("pending").end(),
          updated_at: eb.case().when(waits).then(eb.ref("updated_at")).else(now).end(),
        };
      })
      .where("id", "in", ids.slice(i, i + 500))
      .where((eb) =>
        eb.or([
          eb("status", "in", ["succeeded", "skipped", "pending"]),
          eb.and([eb("status", "=", "failed"), eb("kind", "=", "record_opt_out")]),
        ]),
      )
      .where("plan_id", "!=", planId)
      .execute();
}

/**
 * How long after a system refused an opt-out (a permanent error: the record was missing, the
 * request was refused) a plan that still finds it unapplied tries it again. Other operations a
 * system refused stay refused until their content changes; an opt-out is never given up.
 */
export const OPT_OUT_RETRY_AFTER_REFUSAL_MS = 3_600_000;

/**
 * Before a plan is applied: implied consent it finds lapsed by rule is confirmed against the CRM
 * (a gift since the last read moves no constituent date, so it is read again), planned again, and
 * what still lapsed is recorded in the ledger, so the ledger holds every opt-out the plan acts on.
 */
export async function recordLapses<P extends { plan: Plan }>(
  deps: Pick<SyncDeps, "store" | "config" | "connections" | "now">,
  pair: Pair,
  planned: P,
  /** Plans again, with lapses or (when the CRM could not be read) without them. */
  replan: (lapses: boolean) => Promise<P>,
): Promise<P & { lapses_deferred?: LapseDeferral }> {
  if (planned.plan.lapses.length === 0) return planned;
  const contacts = new Set(planned.plan.lapses.map((e) => e.contact_id)).size;
  const failed = await rereadCrmRecords(deps, pair, [
    ...new Set(planned.plan.lapses.map((e) => e.contact_id)),
  ]);
  if (failed)
    // Nothing lapses on a record that could not be confirmed: the next run that reads the CRM decides.
    return {
      ...(await replan(false)),
      lapses_deferred: {
        contacts,
        reason: `the CRM could not be read to confirm them (${failed.code}: ${failed.message})`,
      },
    };
  const again = await replan(true);
  const lapses = again.plan.lapses;
  if (lapses.length > 0)
    await deps.store.transaction(async (tx) => {
      for (const result of await appendConsentEvents(tx, lapses))
        if (result.kind === "rejected")
          throw new Error(
            `an opt-out by rule was rejected by the ledger (${result.code}): ${result.message}`,
          );
    });
  return again;
}

/** Re-reads the CRM records of some contacts now (their links name them), recording what changed; the error when the read failed. */
async function rereadCrmRecords(
  deps: Pick<SyncDeps, "store" | "config" | "connections" | "now">,
  pair: Pair,
  contactIds: readonly string[],
): Promise<PullReport["error"] | undefined> {
  const crm = deps.connections.get(pair.crm);
  if (!crm) throw new Error(`connection ${pair.crm} of pair ${pair.id} is not open`);
  if (contactIds.length === 0) return undefined;
  const ids: string[] = [];
  for (let i = 0; i < contactIds.length; i += 500) {
    const rows = await deps.store.db
      .selectFrom("links")
      .select("external_id")
      .where(unindexed("connection_id"), "=", pair.crm)
      .where("contact_id", "in", contactIds.slice(i, i + 500))
      .execute();
    ids.push(...rows.map((r) => r.external_id));
  }
  if (ids.length === 0) return undefined;
  const report = await recordWebhookChanges(
    { store: deps.store, connection: crm, config: deps.config, pair, now: deps.now },
    ids.map((external_id) => ({
      event_id: `confirm:${external_id}`,
      type: "concord.confirm",
      external_id,
      occurred_at: deps.now().toISOString(),
      change: "changed" as const,
    })),
  );
  return report.error ?? undefined;
}

/**
 * Reads back the CRM records Concord just wrote: a consent record moves no modification date in
 * Raiser's Edge NXT, so the next incremental read would not see it and the same opt-out would be
 * planned again every run.
 */
export async function rereadCrmWrites(
  deps: Pick<SyncDeps, "store" | "config" | "connections" | "now">,
  pair: Pair,
  operations: Plan["operations"],
): Promise<void> {
  const written = [
    ...new Set(
      operations.flatMap((o) =>
        o.connection_id === pair.crm && "external_id" in o.operation && o.operation.external_id !== undefined
          ? [o.operation.external_id]
          : [],
      ),
    ),
  ];
  const crm = deps.connections.get(pair.crm);
  if (!crm || written.length === 0) return;
  await recordWebhookChanges(
    { store: deps.store, connection: crm, config: deps.config, pair, now: deps.now },
    written.map((external_id) => ({
      event_id: `written:${external_id}`,
      type: "concord.write",
      external_id,
      occurred_at: deps.now().toISOString(),
      change: "changed" as const,
    })),
  );
}
