/**
 * Checks what a schema of one section cannot: that ids are unique, references between sections
 * point at something of the right kind, and poll intervals fit each connection's call budget.
 */
import type { z } from "zod";
import type { ConcordConfig, Connection, ListRef, Pair } from "./concord-config";
import { isConsentField } from "../core/merge/merge-fields";
import { hint } from "./did-you-mean";
import { formatDuration } from "./duration";
import { findField, type ConnectorManifest, type ConnectorRole } from "../connectors/manifest";
import { manifestOf } from "../connectors/registry";

type SystemRole = ConnectorRole;

/** Polling may spend at most this share of the daily quota; the rest is for writes and reconciliation. */
export const POLLING_QUOTA_SHARE = 0.5;

/**
 * The shortest poll interval a connection's daily quota allows, rounded up to whole seconds:
 * a poll every `interval` costs `calls_per_poll * 86 400 s / interval` calls a day.
 */
export function minPollIntervalMs(
  manifest: ConnectorManifest,
  dailyQuota: number,
  callsPerPoll = manifest.polling.calls_per_poll,
): number {
  const budget = dailyQuota * POLLING_QUOTA_SHARE;
  const seconds = Math.ceil((86_400 * callsPerPoll) / budget);
  return Math.max(1, seconds) * 1000;
}

/** Calls a day polling at `intervalMs` costs. */
export const pollingCallsPerDay = (
  manifest: ConnectorManifest,
  intervalMs: number,
  callsPerPoll = manifest.polling.calls_per_poll,
): number => Math.ceil((86_400_000 / intervalMs) * callsPerPoll);

export type CrossReferenceCode =
  | "duplicate_id"
  | "unknown_reference"
  | "wrong_role"
  | "duplicate_platform"
  | "conflicting_setting"
  | "missing_setting"
  | "unsupported_setting"
  | "poll_interval_too_short"
  | "unknown_field";

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
  /** What one quiet poll of `connection` costs, with the lists the config has it read. */
  const pollCost = (connection: Connection): PollCost => {
    const polling = manifestOf(connection.system).polling;
    if (polling.calls_per_poll_reading === undefined) return { calls: polling.calls_per_poll };
    const topicLists = config.topics
      .map((t) => t.constructs[connection.id])
      .filter((c) => c?.type === "list")
      .map((c) => listKey({ id: c?.id, name: c?.name }));
    const mapped = config.pairs
      .filter((p) => p.crm === connection.id)
      .flatMap((p) => p.audiences.map((a) => listKey(a.crm_list)));
    const lists = new Set([...mapped, ...topicLists]).size;
    return {
      calls: polling.calls_per_poll_reading({ lists, topic_lists: topicLists.length }),
      lists,
    };
  };

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
    const profile = manifestOf(connection.system);
    if (connection.webhooks.enabled && !profile.capabilities.webhooks)
      add(
        ["connections", i, "webhooks", "enabled"],
        "unsupported_setting",
        `${profile.label} does not push contact or unsubscribe changes by webhook, so Concord polls it every poll_interval; expected false, found true`,
      );
    if (
      connection.webhooks.enabled &&
      profile.capabilities.webhooks &&
      connection.webhooks.secret === undefined
    )
      add(
        ["connections", i, "webhooks", "secret"],
        "missing_setting",
        `required when webhooks.enabled is true (Concord checks it on every event it receives): expected { env: "VARIABLE" } or { stored: "name" }, found nothing`,
      );
    if (connection.poll_interval !== undefined) {
      const problem = pollBudgetProblem(connection, connection.poll_interval, pollCost(connection));
      if (problem !== undefined) add(["connections", i, "poll_interval"], "poll_interval_too_short", problem);
    }
  });
  const idsWithRole = (role: SystemRole) =>
    [...connections.values()]
      .filter((c) => manifestOf(c.connection.system).role === role)
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
    const actual = manifestOf(found.connection.system);
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

  // Topics: unique keys; constructs of declared connections, of a type each system has, named as
  // that type is named there, each construct standing for one topic only.
  const topics = new Map<string, number>();
  const constructOwner = new Map<string, number>();
  /** The topic whose construct on `connectionId` the profile field `name` is (`ConstructSpec.profile_field`). */
  const topicHolding = (
    manifest: ConnectorManifest,
    connectionId: string,
    name: string,
  ): string | undefined =>
    config.topics.find((topic) => {
      const construct = topic.constructs[connectionId];
      const form = construct === undefined ? undefined : manifest.topics[construct.type]?.profile_field;
      const constructName = construct?.name ?? construct?.id;
      return (
        form !== undefined &&
        constructName !== undefined &&
        // Systems may match a field's name whatever its case or the spaces around it.
        form.replace("{name}", constructName).trim().toLowerCase() === name.trim().toLowerCase()
      );
    })?.key;

  config.topics.forEach((topic, t) => {
    const first = topics.get(topic.key);
    if (first !== undefined)
      add(
        ["topics", t, "key"],
        "duplicate_id",
        `duplicate topic key "${topic.key}": topics[${first}] already declares it; expected each key once`,
      );
    else topics.set(topic.key, t);
    for (const [connectionId, construct] of Object.entries(topic.constructs)) {
      const path = ["topics", t, "constructs", connectionId];
      const found = connections.get(connectionId)?.connection;
      if (found === undefined) {
        const ids = [...connections.keys()];
        add(
          path,
          "unknown_reference",
          `expected the id of a connection declared under connections (${quoteList(ids)}); found "${connectionId}"${hint(connectionId, ids)}`,
        );
        continue;
      }
      const manifest = manifestOf(found.system);
      const spec = manifest.topics[construct.type];
      const types = Object.keys(manifest.topics);
      if (spec === undefined) {
        add(
          [...path, "type"],
          "unsupported_setting",
          `a topic in ${manifest.label} is ${types.map((x) => `${x} (${manifest.topics[x]?.label ?? x})`).join(" or ") || "not supported"}; found "${construct.type}"${hint(construct.type, types)}`,
        );
        continue;
      }
      const named = construct.id !== undefined || construct.name !== undefined;
      if (spec.identified_by === "none" && named)
        add(
          path,
          "unsupported_setting",
          `a ${construct.type} construct is the connection itself: expected no id or name, found ${construct.id !== undefined ? "an id" : "a name"}`,
        );
      if (spec.identified_by === "name" && construct.name === undefined)
        add(
          [...path, "name"],
          "missing_setting",
          `required: a ${spec.label} is named by its name in ${manifest.label}; expected name, found ${construct.id !== undefined ? "only an id" : "nothing"}`,
        );
      if (spec.identified_by === "id_or_name" && !named)
        add(path, "missing_setting", `required: expected the ${spec.label}'s id or name, found neither`);
      const key = `${connectionId}\u0000${construct.type}\u0000${(construct.id ?? construct.name ?? "").toLowerCase()}`;
      const owner = constructOwner.get(key);
      if (owner !== undefined)
        add(
          path,
          "conflicting_setting",
          `this ${spec.label} of "${connectionId}" already stands for topic "${config.topics[owner]?.key ?? ""}" (topics[${owner}]); expected each construct to stand for one topic`,
        );
      else constructOwner.set(key, t);
    }
  });

  // Pairs.
  const pairIds = new Map<string, number>();
  const platformOwner = new Map<string, { pair: number; slot: number }>();
  /** Every pair's runs read its CRM: the pairs reading each CRM, with how often each runs. */
  const crmReads = new Map<string, { p: number; id: string; interval: number }[]>();
  /** CRMs whose polling one pair alone already spends too much of (said once, for that pair). */
  const crmTold = new Set<string>();
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
        // Link fields: fields the platform writes, and a public address for the links they hold.
        const links = platform.personal_links;
        if (links !== undefined) {
          for (const key of ["one_click_field", "preferences_field"] as const) {
            const name = links[key];
            if (name === undefined) continue;
            const problem = fieldProblem(manifestOf(conn.system), name, "personal_link", false, true);
            if (problem !== undefined)
              add(at("platforms", k, "personal_links", key), "unknown_field", problem);
          }
          if (config.server.public_url === undefined)
            add(
              at("platforms", k, "personal_links"),
              "missing_setting",
              "personal links point at server.public_url, which the config does not set: set it to the address people reach this server at (https://…)",
            );
        }
      }
    });

    // What the pair asks of its systems, against what their manifests say they can do.
    const unable = (id: string | undefined, why: (label: string) => string, path: (string | number)[]) => {
      const conn = id === undefined ? undefined : connections.get(id)?.connection;
      if (conn !== undefined) add(path, "unsupported_setting", why(manifestOf(conn.system).label));
    };
    for (const id of [crm?.id, ...pairPlatforms])
      if (
        id !== undefined &&
        !manifestOf(connections.get(id)!.connection.system).capabilities.channels.includes("email")
      )
        unable(
          id,
          (label) =>
            `${label} ("${id}") keeps no email consent; a pair syncs email: expected a system whose channels include email`,
          at(),
        );
    if (
      pair.policies.create_in_crm &&
      crm !== undefined &&
      !manifestOf(crm.system).capabilities.can_create_contacts
    )
      unable(
        crm.id,
        (label) =>
          `${label} ("${crm.id}") does not let Concord create records; expected create_in_crm: false`,
        at("policies", "create_in_crm"),
      );
    pairPlatforms.forEach((id, k) => {
      if (!manifestOf(connections.get(id)!.connection.system).capabilities.can_create_contacts)
        unable(
          id,
          (label) =>
            `${label} ("${id}") does not let Concord create contacts, so no CRM record could reach it; expected a platform that takes new contacts`,
          at("platforms", k, "connection"),
        );
    });

    // A topic one of the pair's platforms keeps must have a home in the CRM where the CRM keeps
    // topics (Raiser's Edge consent categories): else its opt-outs could not reach the CRM.
    const crmManifest = crm === undefined ? undefined : manifestOf(crm.system);
    if (crm !== undefined && crmManifest !== undefined && Object.keys(crmManifest.topics).length > 0)
      config.topics.forEach((topic, t) => {
        const onPlatform = pairPlatforms.find((id) => topic.constructs[id] !== undefined);
        if (onPlatform === undefined || topic.constructs[crm.id] !== undefined) return;
        const [type = "", spec] = Object.entries(crmManifest.topics)[0] ?? [];
        add(
          ["topics", t, "constructs"],
          "missing_setting",
          `topic "${topic.key}" is kept on "${onPlatform}" (pair "${pair.id}") but has no ${spec?.label ?? "construct"} in ${crmManifest.label} "${crm.id}": expected constructs.${crm.id}: { type: ${type}, name: … }`,
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

    pair.list_sync.forEach((rule, r) => {
      if (pairPlatforms.includes(rule.platform)) return;
      const declaredHere = [...new Set(pair.platforms.map((pl) => pl.connection))];
      add(
        at("list_sync", r, "platform"),
        "unknown_reference",
        `expected one of this pair's platforms (${quoteList(declaredHere)}); found "${rule.platform}"${hint(rule.platform, declaredHere)}`,
      );
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
      if (isConsentField(field.canonical))
        add(
          at("fields", f, "canonical"),
          "unsupported_setting",
          `"${field.canonical}" names consent, which never follows a field mapping: it is decided from the consent ledger and mapped with topics; expected a profile field such as first_name`,
        );
      // Each side's name must be a field its connector has, readable where it is read and writable
      // where it is written (direction), and a name slot only under its canonical name.
      const sides: { side: "crm" | "platform"; ids: string[]; reads: boolean; writes: boolean }[] = [
        {
          side: "crm",
          ids: crm === undefined ? [] : [crm.id],
          reads: field.direction !== "platform_to_crm",
          writes: field.direction !== "crm_to_platform",
        },
        {
          side: "platform",
          ids: pairPlatforms,
          reads: field.direction !== "crm_to_platform",
          writes: field.direction !== "platform_to_crm",
        },
      ];
      for (const { side, ids, reads, writes } of sides)
        for (const id of ids) {
          const conn = connections.get(id)?.connection;
          if (conn === undefined) continue;
          const problem = fieldProblem(manifestOf(conn.system), field[side], field.canonical, reads, writes);
          if (problem !== undefined)
            add(at("fields", f, side), "unknown_field", `${problem} (connection "${id}")`);
          const topic = topicHolding(manifestOf(conn.system), id, field[side]);
          if (topic !== undefined)
            add(
              at("fields", f, side),
              "conflicting_setting",
              `"${field[side]}" holds the opt-out of topic "${topic}" on connection "${id}": consent follows the consent ledger, never a field mapping; expected a profile field, or remove this mapping`,
            );
        }
    });

    const interval = pair.schedule.poll_interval;
    const runsEvery = pairPollIntervalMs(config, pair);
    if (connections.has(pair.crm) && runsEvery !== undefined)
      crmReads.set(pair.crm, [...(crmReads.get(pair.crm) ?? []), { p, id: pair.id, interval: runsEvery }]);
    if (interval !== undefined) {
      const inherit = [pair.crm, ...pair.platforms.map((pl) => pl.connection)]
        .map((id) => connections.get(id)?.connection)
        .filter((c): c is Connection => c !== undefined && c.poll_interval === undefined);
      for (const connection of inherit) {
        const problem = pollBudgetProblem(connection, interval, pollCost(connection));
        if (problem !== undefined) {
          if (connection.id === pair.crm) crmTold.add(pair.crm);
          add(
            at("schedule", "poll_interval"),
            "poll_interval_too_short",
            `for connection "${connection.id}": ${problem}`,
          );
        }
      }
    } else {
      // No schedule of its own: the pair runs at its platforms' shortest interval (each its own,
      // else its system's default), and every run reads its CRM, whose cost may grow with the
      // lists the config has it read.
      const crm = connections.get(pair.crm)?.connection;
      if (crm !== undefined && runsEvery !== undefined) {
        const problem = pollBudgetProblem(crm, runsEvery, pollCost(crm));
        if (problem !== undefined) {
          crmTold.add(crm.id);
          add(
            at("schedule", "poll_interval"),
            "poll_interval_too_short",
            `for connection "${crm.id}", read at every run of this pair, which runs at its platforms' shortest poll_interval unless schedule.poll_interval says: ${problem}`,
          );
        }
      }
    }
  });

  // A CRM several pairs share is read at every run of each: their polls add up against its quota.
  for (const [crmId, reads] of crmReads) {
    const crm = connections.get(crmId)?.connection;
    if (crm === undefined || reads.length < 2 || crmTold.has(crmId)) continue;
    const profile = manifestOf(crm.system);
    const quota = crm.limits.daily_quota ?? profile.limits.daily_quota?.calls;
    if (quota === undefined) continue;
    const cost = pollCost(crm);
    const perDay = reads.reduce((sum, r) => sum + pollingCallsPerDay(profile, r.interval, cost.calls), 0);
    const share = Math.floor(quota * POLLING_QUOTA_SHARE);
    if (perDay <= share) continue;
    const last = reads[reads.length - 1]!;
    const quotaSource =
      crm.limits.daily_quota === undefined ? `${profile.label}'s daily quota` : "limits.daily_quota";
    add(
      ["pairs", last.p, "schedule", "poll_interval"],
      "poll_interval_too_short",
      `for connection "${crmId}", read at every run of each of the ${reads.length} pairs that share it (${reads
        .map((r) => `${r.id} every ${formatDuration(r.interval)}`)
        .join(
          ", ",
        )}): together their polls cost ${fmt(perDay)} calls a day (${cost.calls} per poll), more than the ${fmt(share)} polling may use (half of ${quotaSource}, ${fmt(quota)}); expected longer schedule.poll_interval values, fewer pairs on one CRM, or a larger limits.daily_quota if the account has one`,
    );
  }

  config.compliance.erasure.keep_records_in.forEach((id, i) => {
    if (!connections.has(id))
      add(
        ["compliance", "erasure", "keep_records_in", i],
        "unknown_reference",
        `no connection has the id "${id}"; expected one of: ${quoteList([...connections.keys()])}${hint(id, [...connections.keys()])}`,
      );
  });

  // Implied-consent rules: unique names, topics the config declares.
  const ruleNames = new Map<string, number>();
  config.compliance.implied_consent.forEach((rule, r) => {
    const first = ruleNames.get(rule.name);
    if (first !== undefined)
      add(
        ["compliance", "implied_consent", r, "name"],
        "duplicate_id",
        `duplicate rule name "${rule.name}": compliance.implied_consent[${first}] already uses it; expected each name once`,
      );
    else ruleNames.set(rule.name, r);
    rule.topics.forEach((topic, t) => {
      if (!topics.has(topic))
        add(
          ["compliance", "implied_consent", r, "topics", t],
          "unknown_reference",
          `no topic has the key "${topic}"; expected one of: ${quoteList([...topics.keys()])}${hint(topic, [...topics.keys()])}`,
        );
    });
  });

  // The sign-up form: a platform some pair syncs (so the person reaches the CRM), topics declared.
  const signup = config.signup;
  if (signup !== undefined) {
    const platform = expectConnection(["signup", "connection"], signup.connection, "email_platform");
    if (
      platform !== undefined &&
      !config.pairs.some((p) => p.platforms.some((pp) => pp.connection === platform.id))
    )
      add(
        ["signup", "connection"],
        "unknown_reference",
        `connection "${platform.id}" is in no pair's platforms: a sign-up there would reach no other system; expected a platform of a pair`,
      );
    (signup.topics ?? []).forEach((topic, t) => {
      if (!topics.has(topic))
        add(
          ["signup", "topics", t],
          "unknown_reference",
          `no topic has the key "${topic}"; expected one of: ${quoteList([...topics.keys()])}${hint(topic, [...topics.keys()])}`,
        );
    });
    if (config.server.public_url === undefined)
      add(
        ["signup"],
        "missing_setting",
        "the confirmation email links to server.public_url, which the config does not set: set it to the address people reach this server at (https://…)",
      );
  }
  return issues;
}

/** What one quiet poll costs, and how many lists it reads when that is what its cost depends on. */
type PollCost = { calls: number; lists?: number };

/** Why polling `connection` every `intervalMs` would spend too much of its daily quota, if it would. */
function pollBudgetProblem(connection: Connection, intervalMs: number, cost: PollCost): string | undefined {
  const profile = manifestOf(connection.system);
  const quota = connection.limits.daily_quota ?? profile.limits.daily_quota?.calls;
  // A vendor without a daily quota (Mailchimp) is limited per second and in flight only.
  if (quota === undefined) return undefined;
  const min = minPollIntervalMs(profile, quota, cost.calls);
  if (intervalMs >= min) return undefined;
  const quotaSource =
    connection.limits.daily_quota === undefined ? `${profile.label}'s daily quota` : "limits.daily_quota";
  const perPoll =
    cost.lists === undefined
      ? `${cost.calls} per poll`
      : `${cost.calls} per poll, reading ${cost.lists} list${cost.lists === 1 ? "" : "s"}`;
  return (
    `polling every ${formatDuration(intervalMs)} costs ${fmt(pollingCallsPerDay(profile, intervalMs, cost.calls))} calls a day ` +
    `(${perPoll}), more than the ${fmt(Math.floor(quota * POLLING_QUOTA_SHARE))} polling may use ` +
    `(half of ${quotaSource}, ${fmt(quota)}); expected ${formatDuration(min)} or longer, ` +
    `or raise limits.daily_quota if the account has a larger quota`
  );
}

/** What is wrong with naming `name` on a connector for `canonical`, if anything. */
function fieldProblem(
  manifest: ConnectorManifest,
  name: string,
  canonical: string,
  reads: boolean,
  writes: boolean,
): string | undefined {
  const field = findField(manifest.fields, name);
  if (field === undefined) {
    const known = manifest.fields.fields.map((f) => f.name);
    const forms = manifest.fields.patterns.map((p) => p.form);
    return `${manifest.label} has no field "${name}"${hint(name, known)}; expected one of ${[...known, ...forms].join(", ")}`;
  }
  const slot = manifest.fields.fields.find((f) => f.name === name)?.slot;
  if (slot !== undefined && slot !== canonical)
    return `"${name}" is the record's ${slot.replace("_", " ")}: map it as canonical ${slot}, not ${canonical}`;
  if ((canonical === "first_name" || canonical === "last_name") && slot !== canonical) {
    const slotField = manifest.fields.fields.find((f) => f.slot === canonical);
    return `canonical ${canonical} is the record's own name slot: expected "${slotField?.name ?? canonical}" on ${manifest.label}, found "${name}"`;
  }
  if (reads && !field.read) return `${manifest.label} cannot read "${name}", so it cannot be a source`;
  if (writes && !field.write)
    return `${manifest.label} cannot write "${name}": expected a direction that only reads it`;
  return undefined;
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

/**
 * How often a pair runs (and reads its CRM): its own `schedule.poll_interval`, else the shortest of
 * its platforms' (each its own, else its system's default: Constant Contact 60 s). The engine
 * schedules by it; the config check holds it to the quotas.
 */
export function pairPollIntervalMs(config: ConcordConfig, pair: Pair): number | undefined {
  if (pair.schedule.poll_interval !== undefined) return pair.schedule.poll_interval;
  const intervals = pair.platforms
    .map((pl) => effectivePollIntervalMs(config, pl.connection))
    .filter((ms): ms is number => ms !== undefined);
  return intervals.length > 0 ? Math.min(...intervals) : undefined;
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
  return fromPairs.length > 0
    ? Math.min(...fromPairs)
    : manifestOf(connection.system).polling.default_interval_ms;
}
