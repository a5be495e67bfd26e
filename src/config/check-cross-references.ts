/**
 * Checks what a schema of one section cannot: that ids are unique, references between sections
 * point at something of the right kind, and poll intervals fit each connection's call budget.
 */
import type { z } from "zod";
import type { ConcordConfig, Connection, ListRef } from "./concord-config";
import { hint } from "./did-you-mean";
import { formatDuration } from "./duration";
import {
  POLLING_QUOTA_SHARE,
  SYSTEMS,
  minPollIntervalMs,
  pollingCallsPerDay,
  type SystemRole,
} from "./systems";

export type CrossReferenceCode =
  | "duplicate_id"
  | "unknown_reference"
  | "wrong_role"
  | "duplicate_platform"
  | "conflicting_setting"
  | "missing_setting"
  | "unsupported_setting"
  | "poll_interval_too_short";

export type CrossReferenceIssue = { path: (string | number)[]; code: CrossReferenceCode; message: string };

const quoteList = (items: readonly string[]): string =>
  items.length === 0 ? "none declared" : items.join(", ");
const fmt = (n: number): string => n.toLocaleString("en-US");
const roleWords = (role: SystemRole): string => (role === "crm" ? "a CRM" : "an email platform");
const listKey = (l: ListRef): string =>
  l.id !== undefined ? `id:${l.id}` : `name:${l.name ?? ""}`.toLowerCase();

/** Every cross-reference problem of a config whose sections are each well-formed. */
export function findCrossReferenceIssues(config: ConcordConfig): CrossReferenceIssue[] {
  const issues: CrossReferenceIssue[] = [];
  const add = (path: (string | number)[], code: CrossReferenceCode, message: string) =>
    issues.push({ path, code, message });

  // Connections: unique ids, credentials the system takes, webhooks it has, a poll interval it can afford.
  const connections = new Map<string, { connection: Connection; index: number }>();
  config.connections.forEach((connection, i) => {
    const first = connections.get(connection.id);
    if (first !== undefined) {
      add(
        ["connections", i, "id"],
        "duplicate_id",
        `duplicate connection id "${connection.id}": connections[${first.index}] already uses it; expected each id once`,
      );
      return;
    }
    connections.set(connection.id, { connection, index: i });
    const profile = SYSTEMS[connection.system];
    for (const key of Object.keys(connection.credentials)) {
      if (connection.credentials[key as keyof typeof connection.credentials] === undefined) continue;
      if (!(profile.credentials as readonly string[]).includes(key))
        add(
          ["connections", i, "credentials", key],
          "unsupported_setting",
          `${profile.label} connections take ${profile.credentials.join(", ")}; found ${key}, which ${connection.system} does not use`,
        );
    }
    if (connection.webhooks.enabled && !profile.webhooks)
      add(
        ["connections", i, "webhooks", "enabled"],
        "unsupported_setting",
        `${profile.label} does not push contact or unsubscribe changes by webhook, so Concord polls it every poll_interval; expected false, found true`,
      );
    if (connection.webhooks.enabled && profile.webhooks && connection.webhooks.secret === undefined)
      add(
        ["connections", i, "webhooks", "secret"],
        "missing_setting",
        `required when webhooks.enabled is true (Concord checks it on every event it receives): expected { env: "VARIABLE" } or { stored: "name" }, found nothing`,
      );
    if (connection.poll_interval !== undefined) {
      const problem = pollBudgetProblem(connection, connection.poll_interval);
      if (problem !== undefined) add(["connections", i, "poll_interval"], "poll_interval_too_short", problem);
    }
  });
  const idsWithRole = (role: SystemRole) =>
    [...connections.values()]
      .filter((c) => SYSTEMS[c.connection.system].role === role)
      .map((c) => c.connection.id);
  const crmIds = idsWithRole("crm");
  const platformIds = idsWithRole("email_platform");

  /** Checks that `id` names a declared connection of `role`; returns it when it does. */
  const expectConnection = (
    path: (string | number)[],
    id: string,
    role: SystemRole,
  ): Connection | undefined => {
    const wanted = role === "crm" ? crmIds : platformIds;
    const found = connections.get(id);
    if (found === undefined) {
      add(
        path,
        "unknown_reference",
        `expected the id of ${roleWords(role)} connection declared under connections (${quoteList(wanted)}); found "${id}"${hint(id, wanted)}`,
      );
      return undefined;
    }
    const actual = SYSTEMS[found.connection.system];
    if (actual.role !== role) {
      const fix = role === "crm" ? "list it under platforms" : "name it as the pair's crm";
      add(
        path,
        "wrong_role",
        `expected ${roleWords(role)} connection (${quoteList(wanted)}); found "${id}", a ${actual.label} connection, which is ${roleWords(actual.role)}: ${fix}`,
      );
      return undefined;
    }
    return found.connection;
  };

  // Topics: unique keys; categories keyed by declared CRM connections.
  const topics = new Map<string, number>();
  config.topics.forEach((topic, t) => {
    const first = topics.get(topic.key);
    if (first !== undefined)
      add(
        ["topics", t, "key"],
        "duplicate_id",
        `duplicate topic key "${topic.key}": topics[${first}] already declares it; expected each key once`,
      );
    else topics.set(topic.key, t);
    for (const crmId of Object.keys(topic.crm_categories))
      expectConnection(["topics", t, "crm_categories", crmId], crmId, "crm");
  });
  const topicKeys = [...topics.keys()];

  // Pairs.
  const pairIds = new Map<string, number>();
  const platformOwner = new Map<string, { pair: number; slot: number }>();
  config.pairs.forEach((pair, p) => {
    const at = (...rest: (string | number)[]) => ["pairs", p, ...rest];
    const firstPair = pairIds.get(pair.id);
    if (firstPair !== undefined)
      add(
        at("id"),
        "duplicate_id",
        `duplicate pair id "${pair.id}": pairs[${firstPair}] already uses it; expected each id once`,
      );
    else pairIds.set(pair.id, p);

    const crm = expectConnection(at("crm"), pair.crm, "crm");
    const pairPlatforms: string[] = [];
    pair.platforms.forEach((platform, k) => {
      const conn = expectConnection(at("platforms", k, "connection"), platform.connection, "email_platform");
      if (conn !== undefined) {
        const owner = platformOwner.get(conn.id);
        if (owner?.pair === p)
          add(
            at("platforms", k, "connection"),
            "duplicate_platform",
            `"${conn.id}" is already listed at pairs[${p}].platforms[${owner.slot}]; expected each platform once per pair`,
          );
        else if (owner !== undefined)
          add(
            at("platforms", k, "connection"),
            "duplicate_platform",
            `"${conn.id}" is already a platform of pair "${config.pairs[owner.pair]?.id ?? ""}" (pairs[${owner.pair}].platforms[${owner.slot}]); expected each platform account in one pair only, because that pair's topic mapping decides what its unsubscribes mean`,
          );
        else platformOwner.set(conn.id, { pair: p, slot: k });
        pairPlatforms.push(conn.id);
      }

      if (platform.topic === undefined) {
        if (platform.crm_category !== undefined)
          add(
            at("platforms", k, "crm_category"),
            "missing_setting",
            `a crm_category needs a topic: without one this account is global and its unsubscribes are global opt-outs; expected a topic key (${quoteList(topicKeys)}) beside crm_category, found none`,
          );
        return;
      }
      const topicIndex = topics.get(platform.topic);
      if (topicIndex === undefined) {
        add(
          at("platforms", k, "topic"),
          "unknown_reference",
          `expected a topic key declared under topics (${quoteList(topicKeys)}); found "${platform.topic}"${hint(platform.topic, topicKeys)}`,
        );
        return;
      }
      if (crm === undefined) return;
      const declared = config.topics[topicIndex]?.crm_categories[crm.id];
      if (platform.crm_category !== undefined && declared !== undefined && platform.crm_category !== declared)
        add(
          at("platforms", k, "crm_category"),
          "conflicting_setting",
          `expected "${declared}" (topics[${topicIndex}].crm_categories.${crm.id}) or no crm_category here, found "${platform.crm_category}"`,
        );
      if (
        platform.crm_category === undefined &&
        declared === undefined &&
        SYSTEMS[crm.system].consent_categories
      )
        add(
          at("platforms", k, "topic"),
          "missing_setting",
          `topic "${platform.topic}" has no ${SYSTEMS[crm.system].label} consent category for "${crm.id}": expected crm_category here or topics[${topicIndex}].crm_categories.${crm.id}, found neither`,
        );
    });

    const audienceSeen = new Map<string, number>();
    pair.audiences.forEach((audience, a) => {
      if (!pairPlatforms.includes(audience.platform)) {
        const declaredHere = [...new Set(pair.platforms.map((pl) => pl.connection))];
        add(
          at("audiences", a, "platform"),
          "unknown_reference",
          `expected one of this pair's platforms (${quoteList(declaredHere)}); found "${audience.platform}"${hint(audience.platform, declaredHere)}`,
        );
        return;
      }
      const key = `${audience.platform}\u0000${listKey(audience.platform_list)}`;
      const first = audienceSeen.get(key);
      if (first !== undefined)
        add(
          at("audiences", a, "platform_list"),
          "duplicate_id",
          `this ${audience.platform} list is already mapped by pairs[${p}].audiences[${first}]; expected each platform list once per pair`,
        );
      else audienceSeen.set(key, a);
    });

    const canonical = new Map<string, number>();
    pair.fields.forEach((field, f) => {
      const first = canonical.get(field.canonical);
      if (first !== undefined)
        add(
          at("fields", f, "canonical"),
          "duplicate_id",
          `"${field.canonical}" is already mapped by pairs[${p}].fields[${first}]; expected each canonical field once per pair`,
        );
      else canonical.set(field.canonical, f);
      const source =
        field.direction === "crm_to_platform"
          ? "crm"
          : field.direction === "platform_to_crm"
            ? "platform"
            : undefined;
      if (source !== undefined && field.owner !== "latest" && field.owner !== source)
        add(
          at("fields", f, "owner"),
          "conflicting_setting",
          `with direction ${field.direction} only the ${source} side is ever written from the other, so it owns the field: expected owner ${source} or latest, found ${field.owner}`,
        );
    });

    const interval = pair.schedule.poll_interval;
    if (interval !== undefined) {
      const inherit = [pair.crm, ...pair.platforms.map((pl) => pl.connection)]
        .map((id) => connections.get(id)?.connection)
        .filter((c): c is Connection => c !== undefined && c.poll_interval === undefined);
      for (const connection of inherit) {
        const problem = pollBudgetProblem(connection, interval);
        if (problem !== undefined)
          add(
            at("schedule", "poll_interval"),
            "poll_interval_too_short",
            `for connection "${connection.id}": ${problem}`,
          );
      }
    }
  });
  return issues;
}

/** Why polling `connection` every `intervalMs` would spend too much of its daily quota, if it would. */
function pollBudgetProblem(connection: Connection, intervalMs: number): string | undefined {
  const profile = SYSTEMS[connection.system];
  const quota = connection.limits.daily_quota ?? profile.limits.daily_quota;
  const min = minPollIntervalMs(connection.system, quota);
  if (intervalMs >= min) return undefined;
  const quotaSource =
    connection.limits.daily_quota === undefined ? `${profile.label}'s daily quota` : "limits.daily_quota";
  return (
    `polling every ${formatDuration(intervalMs)} costs ${fmt(pollingCallsPerDay(connection.system, intervalMs))} calls a day ` +
    `(${profile.calls_per_poll} per poll), more than the ${fmt(Math.floor(quota * POLLING_QUOTA_SHARE))} polling may use ` +
    `(half of ${quotaSource}, ${fmt(quota)}); expected ${formatDuration(min)} or longer, ` +
    `or raise limits.daily_quota if the account has a larger quota`
  );
}

/** The adapter for zod's superRefine: each problem becomes an issue at its path, with its code. */
export function checkCrossReferences(config: ConcordConfig, ctx: z.core.$RefinementCtx<ConcordConfig>): void {
  for (const issue of findCrossReferenceIssues(config))
    ctx.addIssue({
      code: "custom",
      path: issue.path,
      message: issue.message,
      input: undefined,
      params: { concord_code: issue.code },
    });
}

/** How often a connection is polled: its own interval, else the shortest of its pairs', else its system's default. */
export function effectivePollIntervalMs(config: ConcordConfig, connectionId: string): number | undefined {
  const connection = config.connections.find((c) => c.id === connectionId);
  if (connection === undefined) return undefined;
  if (connection.poll_interval !== undefined) return connection.poll_interval;
  const fromPairs = config.pairs
    .filter((p) => p.crm === connectionId || p.platforms.some((pl) => pl.connection === connectionId))
    .map((p) => p.schedule.poll_interval)
    .filter((ms): ms is number => ms !== undefined);
  return fromPairs.length > 0 ? Math.min(...fromPairs) : SYSTEMS[connection.system].default_poll_interval_ms;
}
