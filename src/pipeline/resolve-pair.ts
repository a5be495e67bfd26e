/**
 * Turns a configured pair into the planner's terms: list references (by id or name) looked up in
 * each system, topics and CRM categories filled in, field mappings and policies copied. A list that
 * cannot be found is a configuration error that names the list, the connection and what exists.
 */
import { z } from "zod";
import type { ImpliedConsentRule } from "../core/consent/implied-consent";
import type { ConcordConfig, ListRef, Pair } from "../config/concord-config";
import { didYouMean } from "../config/did-you-mean";
import type { ConnectorError, ExternalList } from "../connectors/connector";
import { GLOBAL_SCOPE, topicScope } from "../core/consent/consent-event";
import { ACCOUNT_OBSERVED, constructScope, GLOBAL_OBSERVED } from "../core/consent/system-consent";
import { manifestOf } from "../connectors/registry";
import type {
  ListChange,
  PlanAudience,
  PlanConsentTarget,
  PlanFieldMapping,
  PlanPair,
  PlanPolicies,
} from "../planner/plan-input";
import { accountTopic } from "./resolve-observed-scope";
import type { JsonValue, StoreSession } from "../store/ports";
import type { OpenedConnection } from "../connections/open-connection";

/** The checkpoint stream where each connection's lists, as last read, are kept. */
export const LISTS_STREAM = "lists";
const ExternalListsSchema = z.array(
  z.object({
    external_id: z.string(),
    name: z.string(),
    member_count: z.number().optional(),
    newsletter_sync: z.boolean().optional(),
  }),
);

export type ResolvedPair = {
  pair: PlanPair;
  /** Lists the pair's list rules create, rename or delete this run (planned before memberships). */
  list_changes: ListChange[];
  /**
   * The CRM lists the list rules follow now, to keep (`saveListSyncState`) once this run's list
   * changes are applied: the next run tells renames and deletions from it.
   */
  list_sync_state: { id: string; name: string; platform: string }[];
  /** CRM lists a rule selects that are left out for now, with why (an empty list gets no platform list). */
  list_sync_skipped: { crm_list: string; platform: string; reason: string }[];
  /**
   * Set when a list change waits for a platform's lists to be read (`list_sync_skipped` says
   * which): `list_sync_state` is then not kept, so the next run still sees the change to make.
   */
  list_changes_wait?: true;
  fields: PlanFieldMapping[];
  policies: PlanPolicies;
  /** The config's rules under which implied consent lapses (CASL). */
  implied_consent: ImpliedConsentRule[];
  /** The CRM list ids the pair's audiences name: every CRM read carries their memberships. */
  crm_list_ids: string[];
  /** Per platform connection, the list ids its audiences name. */
  platform_list_ids: Record<string, string[]>;
};

export type ResolvePairError =
  | { code: "list_not_found"; message: string }
  | { code: "lists_unreadable"; message: string; connection_id: string; error: ConnectorError };

export type ResolvePairResult = { ok: true; value: ResolvedPair } | { ok: false; error: ResolvePairError };

const sameName = (a: string, b: string): boolean => a.trim().toLowerCase() === b.trim().toLowerCase();

/** The checkpoint stream (on the CRM connection) of the CRM lists a pair's list rules followed last. */
export const listSyncStream = (pairId: string): string => `list_sync:${pairId}`;
const ListSyncStateSchema = z.array(
  z.object({ id: z.string(), name: z.string(), platform: z.string().optional() }),
);

/** Keeps the CRM lists a pair's list rules follow, once this run's list changes are applied. */
export async function saveListSyncState(
  store: StoreSession,
  crm: string,
  pairId: string,
  lists: readonly { id: string; name: string; platform: string }[],
): Promise<void> {
  await store.checkpoints.set(
    crm,
    listSyncStream(pairId),
    lists.map((l) => ({ id: l.id, name: l.name, platform: l.platform })),
  );
}

/** Looks each audience's lists up (one `lists()` call per connection) and builds the planner's pair. */
export async function resolvePair(
  config: ConcordConfig,
  pair: Pair,
  connections: ReadonlyMap<string, OpenedConnection>,
  store?: StoreSession,
): Promise<ResolvePairResult> {
  const opened = (id: string): OpenedConnection => {
    const c = connections.get(id);
    if (!c) throw new Error(`connection ${id} of pair ${pair.id} is not open`);
    return c;
  };
  const listsOf = new Map<string, ExternalList[]>();
  /** Connections whose lists could not be read now: their lists as last read stand in, with why. */
  const unreadNow = new Map<string, string>();
  const needs = new Set<string>();
  for (const a of pair.audiences) {
    needs.add(pair.crm);
    needs.add(a.platform);
  }
  for (const rule of pair.list_sync) {
    needs.add(pair.crm);
    needs.add(rule.platform);
  }
  // Topics named by a list name are looked up in that connection's lists too.
  const pairConnections = [pair.crm, ...pair.platforms.map((p) => p.connection)];
  for (const topic of config.topics)
    for (const id of pairConnections) {
      const construct = topic.constructs[id];
      if (construct === undefined) continue;
      if (manifestOf(opened(id).connection.system).topics[construct.type]?.lookup === "lists") needs.add(id);
    }
  for (const id of needs) {
    const c = opened(id);
    const r = await c.healthy(await c.session().lists());
    if (r.ok) {
      listsOf.set(id, r.value);
      await store?.checkpoints.set(id, LISTS_STREAM, JSON.parse(JSON.stringify(r.value)) as JsonValue);
      continue;
    }
    // A connection that cannot answer now (broken, over quota) must not stop the rest of the pair:
    // its lists as last read stand in, and its own work waits in the executor.
    const cached = ExternalListsSchema.safeParse((await store?.checkpoints.get(id, LISTS_STREAM))?.value);
    if (cached.success) {
      unreadNow.set(id, `${r.error.code}: ${r.error.message}`);
      listsOf.set(
        id,
        cached.data.map((l) => ({
          external_id: l.external_id,
          name: l.name,
          ...(l.member_count !== undefined ? { member_count: l.member_count } : {}),
          ...(l.newsletter_sync !== undefined ? { newsletter_sync: l.newsletter_sync } : {}),
        })),
      );
      continue;
    }
    return {
      ok: false,
      error: {
        code: "lists_unreadable",
        connection_id: id,
        error: r.error,
        message: `Could not read the lists of ${id} (${r.error.code}: ${r.error.message}).`,
      },
    };
  }

  function find(
    connection: string,
    ref: ListRef,
    where: string,
    kind?: { prefix: string; label: string },
  ): string | ResolvePairError {
    const all = listsOf.get(connection) ?? [];
    // Lists of several kinds of construct: only this kind's (a tag is never the group of its name).
    const lists = kind === undefined ? all : all.filter((l) => l.external_id.startsWith(kind.prefix));
    const otherKind =
      kind === undefined
        ? undefined
        : all.find(
            (l) =>
              !l.external_id.startsWith(kind.prefix) &&
              (ref.id !== undefined ? l.external_id === ref.id : sameName(l.name, ref.name ?? "")),
          );
    const notThisKind =
      kind !== undefined && otherKind !== undefined
        ? ` (“${otherKind.name}” ${otherKind.external_id} is not a ${kind.label}: name its construct's type as what it is)`
        : "";
    if (ref.id !== undefined) {
      const byId = lists.find((l) => l.external_id === ref.id);
      if (byId && (ref.name === undefined || sameName(byId.name, ref.name))) return byId.external_id;
      const problem = byId
        ? `is named “${byId.name}” in ${connection}, not “${ref.name ?? ""}”`
        : `does not exist in ${connection}`;
      return {
        code: "list_not_found",
        message: `${where}: list id ${ref.id} ${problem}${notThisKind}. Fix the id or the name in the config.`,
      };
    }
    const name = ref.name ?? "";
    const matches = lists.filter((l) => sameName(l.name, name));
    if (matches.length === 1 && matches[0]) return matches[0].external_id;
    if (matches.length > 1)
      return {
        code: "list_not_found",
        message: `${where}: ${matches.length} lists in ${connection} are named “${name}” (${matches.map((l) => l.external_id).join(", ")}); give the list's id.`,
      };
    const suggestion = didYouMean(
      name,
      lists.map((l) => l.name),
    );
    return {
      code: "list_not_found",
      message: `${where}: no ${kind?.label ?? "list"} named “${name}” in ${connection}${notThisKind}${suggestion ? ` (did you mean “${suggestion}”?)` : ""}. ${kind === undefined ? "Lists" : `Of that kind`} there: ${
        lists
          .slice(0, 20)
          .map((l) => `“${l.name}”`)
          .join(", ") || "none"
      }.`,
    };
  }

  // Each topic's construct on each connection of the pair, resolved to the id the system uses.
  const targetsOf = new Map<string, PlanConsentTarget[]>();
  for (const id of pairConnections) {
    const manifest = manifestOf(opened(id).connection.system);
    const targets: PlanConsentTarget[] = [];
    for (const [t, topic] of config.topics.entries()) {
      const construct = topic.constructs[id];
      if (construct === undefined || construct.type === "account") continue;
      const spec = manifest.topics[construct.type];
      if (spec === undefined) continue; // refused by the config check
      let constructId = construct.id ?? construct.name ?? "";
      if (spec.lookup === "lists") {
        const found = find(
          id,
          construct,
          `topics[${t}].constructs.${id}`,
          spec.list_id_prefix === undefined ? undefined : { prefix: spec.list_id_prefix, label: spec.label },
        );
        if (typeof found !== "string") return { ok: false, error: found };
        constructId = found;
      }
      targets.push({
        scope: topicScope(topic.key),
        construct: constructScope(construct.type, constructId, construct.name),
        shown_by: spec.shown_by,
        ...(spec.members_only === true ? { members_only: true as const } : {}),
        label: `${spec.label} “${construct.name ?? constructId}”`,
      });
    }
    targetsOf.set(id, targets);
  }
  const listTopic = (connection: string, listId: string): string | undefined => {
    const target = targetsOf
      .get(connection)
      ?.find(
        (t) =>
          t.shown_by === "membership" &&
          t.construct.kind === "construct" &&
          t.construct.construct.id === listId,
      );
    return target?.scope.kind === "topic" ? target.scope.topic : undefined;
  };

  const audiences = new Map<string, PlanAudience[]>();
  const crmLists = new Set<string>();
  const platformLists: Record<string, string[]> = {};
  for (const [i, a] of pair.audiences.entries()) {
    const where = `pairs.${pair.id}.audiences[${i}]`;
    const crmList = find(pair.crm, a.crm_list, `${where}.crm_list`);
    if (typeof crmList !== "string") return { ok: false, error: crmList };
    const platformList = find(a.platform, a.platform_list, `${where}.platform_list`);
    if (typeof platformList !== "string") return { ok: false, error: platformList };
    crmLists.add(crmList);
    (platformLists[a.platform] ??= []).push(platformList);
    const list = audiences.get(a.platform) ?? [];
    const topic = listTopic(a.platform, platformList);
    list.push({
      crm_list_id: crmList,
      platform_list_id: platformList,
      direction: a.direction,
      delete_policy: a.delete_policy,
      ...(topic !== undefined ? { topic } : {}),
    });
    audiences.set(a.platform, list);
  }

  // The pair's list rules: every CRM list a rule selects is an audience to the platform list of
  // its name, created once it has members, renamed and (by policy) deleted with it.
  const previous = ListSyncStateSchema.safeParse(
    (await store?.checkpoints.get(pair.crm, listSyncStream(pair.id)))?.value,
  );
  const kept = previous.success ? previous.data : [];
  const listChanges: ListChange[] = [];
  const listSyncSkipped: ResolvedPair["list_sync_skipped"] = [];
  let listChangesWait = false;
  const followed: { id: string; name: string; platform: string }[] = [];
  const crmAll = listsOf.get(pair.crm) ?? [];
  for (const rule of pair.list_sync) {
    // The CRM lists this rule followed at the last run, by id (older states name no platform).
    const before = new Map(
      kept.filter((l) => l.platform === undefined || l.platform === rule.platform).map((l) => [l.id, l.name]),
    );
    const platformAll = listsOf.get(rule.platform) ?? [];
    const byName = (name: string) => platformAll.find((l) => sameName(l.name, name));
    const selectsName = (name: string): boolean =>
      (rule.crm_lists.prefix !== undefined && name.startsWith(rule.crm_lists.prefix)) ||
      (rule.crm_lists.names ?? []).some((n) => sameName(n, name));
    // Or the CRM's own setting that a list synchronises with the platform (GrowthZone's).
    const selects = (list: ExternalList): boolean =>
      selectsName(list.name) || (rule.crm_lists.newsletter_sync === true && list.newsletter_sync === true);
    /**
     * Whether the platform's lists could not be read now: those as last read may lack a list made
     * (or still have one renamed or deleted) since, so the rule changes no list there until a run
     * reads them; the CRM list waits, said in `list_sync_skipped`, and the lists the rules follow
     * are not kept, so the next run sees the change again. Memberships of the lists found go on (a
     * list keeps its id).
     */
    const waitsForLists = (crmListName: string): boolean => {
      const why = unreadNow.get(rule.platform);
      if (why === undefined) return false;
      listChangesWait = true;
      listSyncSkipped.push({
        crm_list: crmListName,
        platform: rule.platform,
        reason: `the lists of ${rule.platform} could not be read now (${why}); its lists change once they can be`,
      });
      return true;
    };
    const platformName = (name: string): string =>
      rule.crm_lists.prefix !== undefined && name.startsWith(rule.crm_lists.prefix)
        ? name.slice(rule.crm_lists.prefix.length).trim() || name
        : name;
    for (const crmList of crmAll) {
      // A list the rule followed stays followed under a new name.
      const wasName = before.get(crmList.external_id);
      if (
        !selects(crmList) &&
        (wasName === undefined || !selectsName(wasName) || crmList.newsletter_sync === false)
      )
        continue;
      followed.push({ id: crmList.external_id, name: crmList.name, platform: rule.platform });
      const wanted = platformName(crmList.name);
      let target = byName(wanted);
      const was = before.get(crmList.external_id);
      // Renamed in the CRM since the last run: the platform list still carries the old name.
      if (!target && was !== undefined && was !== crmList.name) {
        const old = byName(platformName(was));
        if (old && rule.on_rename === "rename" && !waitsForLists(crmList.name)) {
          listChanges.push({
            connection_id: rule.platform,
            reason: {
              code: "list_renamed",
              message: `The CRM list “${was}” is now “${crmList.name}”; ${rule.platform} renames “${old.name}” to “${wanted}”.`,
            },
            operation: { kind: "rename_list", list_id: old.external_id, name: wanted },
          });
        }
        target = old;
      }
      if (!target) {
        if (waitsForLists(crmList.name)) continue;
        if ((crmList.member_count ?? 0) === 0) {
          listSyncSkipped.push({
            crm_list: crmList.name,
            platform: rule.platform,
            reason: "empty: its platform list is made once it has members",
          });
          continue;
        }
        listChanges.push({
          connection_id: rule.platform,
          reason: {
            code: "list_created",
            message: `The CRM list “${crmList.name}” (${crmList.member_count ?? 0} members) has no list in ${rule.platform}: “${wanted}” is made; its members follow at the next run.`,
          },
          operation: { kind: "create_list", name: wanted },
        });
        continue;
      }
      crmLists.add(crmList.external_id);
      (platformLists[rule.platform] ??= []).push(target.external_id);
      const list = audiences.get(rule.platform) ?? [];
      if (
        !list.some((a) => a.crm_list_id === crmList.external_id && a.platform_list_id === target.external_id)
      ) {
        const topic = listTopic(rule.platform, target.external_id);
        list.push({
          crm_list_id: crmList.external_id,
          platform_list_id: target.external_id,
          direction: rule.direction,
          delete_policy: rule.delete_policy,
          ...(topic !== undefined ? { topic } : {}),
        });
      }
      audiences.set(rule.platform, list);
    }
    // Deleted in the CRM since the last run: its platform list stays unless the rule deletes it.
    for (const [id, name] of before) {
      if (crmAll.some((l) => l.external_id === id)) continue;
      const old = byName(platformName(name));
      if (!old) continue;
      if (rule.on_delete === "delete_platform_list" && waitsForLists(name)) continue;
      if (rule.on_delete === "delete_platform_list")
        listChanges.push({
          connection_id: rule.platform,
          reason: {
            code: "list_deleted",
            message: `The CRM list “${name}” was deleted; ${rule.platform} deletes its list “${old.name}” (its people stay).`,
          },
          operation: { kind: "delete_list", list_id: old.external_id },
        });
      else
        listSyncSkipped.push({
          crm_list: name,
          platform: rule.platform,
          reason: `deleted in the CRM; “${old.name}” is kept (on_delete: keep) and no longer synced`,
        });
    }
  }

  const crmManifest = manifestOf(opened(pair.crm).connection.system);
  const planPair: PlanPair = {
    id: pair.id,
    crm: {
      connection_id: pair.crm,
      system: crmManifest.id,
      targets: [
        { scope: GLOBAL_SCOPE, construct: GLOBAL_OBSERVED, shown_by: "facts", label: "all email" },
        ...(targetsOf.get(pair.crm) ?? []),
      ],
      resubscribe: crmManifest.capabilities.resubscribe,
      ...(crmManifest.capabilities.deliverability_field !== undefined
        ? { deliverability_field: crmManifest.capabilities.deliverability_field }
        : {}),
    },
    platforms: pair.platforms.map((p) => {
      const manifest = manifestOf(opened(p.connection).connection.system);
      const topic = accountTopic(config.topics, p.connection);
      const accountScope = topic !== undefined ? topicScope(topic) : GLOBAL_SCOPE;
      return {
        connection_id: p.connection,
        system: manifest.id,
        account_scope: accountScope,
        targets: [
          {
            scope: accountScope,
            construct: ACCOUNT_OBSERVED,
            shown_by: "facts" as const,
            label: "the whole account",
          },
          ...(targetsOf.get(p.connection) ?? []),
        ],
        resubscribe: manifest.capabilities.resubscribe,
        ...(manifest.capabilities.account_resubscribe === true ? { account_resubscribe: true } : {}),
        audiences: audiences.get(p.connection) ?? [],
        ...(p.max_tld_length !== undefined ? { max_tld_length: p.max_tld_length } : {}),
        ...(p.personal_links !== undefined
          ? {
              link_fields: {
                ...(p.personal_links.one_click_field !== undefined
                  ? { one_click: p.personal_links.one_click_field }
                  : {}),
                ...(p.personal_links.preferences_field !== undefined
                  ? { preferences: p.personal_links.preferences_field }
                  : {}),
              },
            }
          : {}),
      };
    }),
  };
  return {
    ok: true,
    value: {
      pair: planPair,
      list_changes: listChanges,
      list_sync_state: followed,
      list_sync_skipped: listSyncSkipped,
      ...(listChangesWait ? { list_changes_wait: true as const } : {}),
      fields: pair.fields.map((f) => ({ ...f })),
      policies: { ...pair.policies },
      implied_consent: config.compliance.implied_consent.map((r) => ({
        name: r.name,
        countries: r.countries,
        topics: r.topics,
        periods: { donation: r.donation, inquiry: r.inquiry },
      })),
      crm_list_ids: [...crmLists].sort(),
      platform_list_ids: platformLists,
    },
  };
}

/** The operations that make, rename or delete a system's lists (no contact's: stored without one). */
const LIST_CHANGE_KINDS = ["create_list", "rename_list", "delete_list"] as const;

/**
 * What the store shows of the list changes made or tried on the pair's systems, by any pair's
 * rules and any process, and of the CRM lists its own rules followed last: equal for two reads
 * only when no list change was stored, settled, re-armed or attempted between them, so a pair
 * resolved after the first read still names the lists there are. Each list change counts by its
 * status and its attempts (each call to the system records one), not by time: clocks of several
 * processes differ, and two writes may share a millisecond. Undefined while a list change is
 * pending (under way, or waiting for a retry): its call may reach the system at any moment, and
 * whether it did can be told only by reading the lists again.
 */
export async function listChangesSeen(
  store: Pick<StoreSession, "db" | "checkpoints">,
  pair: Pick<Pair, "id" | "crm"> & { platforms: readonly Pick<Pair["platforms"][number], "connection">[] },
): Promise<string | undefined> {
  const connections = [pair.crm, ...pair.platforms.map((p) => p.connection)];
  // Few rows (a system's lists change seldom), found by an index range: operations by contact and
  // kind (these have no contact), their outcomes by operation.
  const changes = await store.db
    .selectFrom("operations as o")
    .leftJoin("outcomes as x", "x.operation_id", "o.id")
    .select((eb) => ["o.id", "o.status", eb.fn.count<number | string>("x.attempt").as("attempts")])
    .where("o.contact_id", "is", null)
    .where("o.kind", "in", LIST_CHANGE_KINDS)
    .where("o.target_connection", "in", connections)
    .groupBy(["o.id", "o.status"])
    .orderBy("o.id")
    .execute();
  if (changes.some((c) => c.status === "pending")) return undefined;
  const followed = await store.checkpoints.get(pair.crm, listSyncStream(pair.id));
  return JSON.stringify([changes.map((c) => [c.id, c.status, Number(c.attempts)]), followed?.value ?? null]);
}
