import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { ConnectorCapabilities } from "../connectors/manifest";
import { manifestOf } from "../connectors/registry";
import { effectivePollIntervalMs } from "./check-cross-references";
import {
  formatConfigErrors,
  formatPath,
  loadConfigFile,
  parseConfigText,
  parseConfigValue,
  type ConfigError,
} from "./load-config-file";

const EXAMPLE = fileURLToPath(new URL("../../examples/concord.example.yaml", import.meta.url));

type Base = Record<string, any>;

/** A sign-up section into the base's email platform, with `changes` over it. */
const signup = (changes: Base): Base => ({
  organisation: "Friends",
  connection: "cc-main",
  smtp: { host: "smtp.example.org", from: "hello@example.org" },
  ...changes,
});

/** A small valid config; each error case below changes one thing in a copy of it. */
const base = (): Base => ({
  connections: [
    {
      id: "re-nxt",
      system: "blackbaud-renxt",
      credentials: { client_id: "abc", client_secret: { env: "RENXT_SECRET" } },
    },
    {
      id: "cc-main",
      system: "constant-contact",
      credentials: { refresh_token: { stored: "cc-main.refresh-token" } },
    },
    { id: "cc-appeals", system: "constant-contact", poll_interval: "2m" },
  ],
  topics: [
    {
      key: "appeals",
      label: "Appeals",
      constructs: {
        "re-nxt": { type: "consent_category", name: "Appeals" },
        "cc-appeals": { type: "account" },
      },
    },
  ],
  pairs: [
    {
      id: "main",
      crm: "re-nxt",
      platforms: [{ connection: "cc-main" }, { connection: "cc-appeals" }],
      audiences: [{ crm_list: { id: "42" }, platform: "cc-main", platform_list: { name: "Newsletter" } }],
      fields: [{ canonical: "first_name", crm: "first", platform: "first_name" }],
    },
  ],
});

const errorsOf = (mutate: (c: Base) => void): ConfigError[] => {
  const config = base();
  mutate(config);
  const result = parseConfigValue(config, "concord.yaml");
  if (result.ok) throw new Error("expected the config to be rejected");
  return result.errors;
};

describe("a valid config", () => {
  it("parses, with defaults filled in", () => {
    const result = parseConfigValue(base(), "concord.yaml");
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const { config } = result;
    expect(config.version).toBe(1);
    expect(config.connections[0]?.credentials).toEqual({
      client_id: { kind: "plain", value: "abc" },
      client_secret: { kind: "env", name: "RENXT_SECRET" },
    });
    expect(config.connections[1]?.credentials.refresh_token).toEqual({
      kind: "stored",
      name: "cc-main.refresh-token",
    });
    expect(config.connections[2]?.poll_interval).toBe(120_000);
    expect(config.connections[0]?.webhooks).toEqual({ enabled: false });
    const pair = config.pairs[0]!;
    expect(pair.policies).toEqual({
      unlinked_opt_outs: "apply_and_report",
      create_in_crm: false,
      require_consent_basis: false,
      propagate_crm_opt_outs: true,
      ended_crm_records: "unsubscribe",
    });
    expect(pair.schedule).toEqual({ full_reconciliation: 86_400_000 });
    expect(pair.audiences[0]).toMatchObject({ direction: "crm_to_platform", delete_policy: "keep" });
    expect(pair.fields[0]).toMatchObject({ direction: "both", owner: "latest" });
    expect(config.notifications).toEqual({
      webhook_urls: [],
      log: true,
      thresholds: { outage: 1_800_000, stuck_opt_out: 3_600_000, clock_warning: 86_400_000 },
    });
    expect(config.compliance).toEqual({
      holidays: [],
      implied_consent: [],
      erasure: { keep_records_in: [] },
      retention: { webhook_deliveries: 7 * 86_400_000 },
    });
    expect(config.server).toEqual({
      port: 8080,
      host: "127.0.0.1",
      admin_password: { kind: "env", name: "CONCORD_ADMIN_PASSWORD" },
      body_limit: 1_048_576,
      link_ttl: 400 * 86_400_000,
      trust_proxy: false,
    });
  });

  it("accepts emulator URLs for base_url and token_url", () => {
    const config = base();
    Object.assign(config.connections[1], {
      base_url: "http://127.0.0.1:4010/v3",
      token_url: "http://localhost:4010/oauth2/default/v1/token",
    });
    const result = parseConfigValue(config, "concord.yaml");
    expect(result.ok && result.config.connections[1]?.base_url).toBe("http://127.0.0.1:4010/v3");
  });

  it("reads a connection's request timeout, and refuses one out of bounds with the path and the range", () => {
    const config = base();
    config.connections[1].limits = { request_timeout: "20s" };
    const result = parseConfigValue(config, "concord.yaml");
    expect(result.ok && result.config.connections[1]?.limits.request_timeout).toBe(20_000);
    config.connections[1].limits = { request_timeout: "1h" };
    const refused = parseConfigValue(config, "concord.yaml");
    expect(refused.ok).toBe(false);
    const error = refused.ok ? undefined : refused.errors[0];
    expect(error?.path).toBe("connections[1].limits.request_timeout");
    expect(error?.message).toMatch(/10m|600/);
  });

  it("resolves each connection's poll interval: its own, else its pairs', else its system's default", () => {
    const config = base();
    config.pairs[0]!.schedule = { poll_interval: "90s" };
    const result = parseConfigValue(config, "concord.yaml");
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(effectivePollIntervalMs(result.config, "cc-appeals")).toBe(120_000);
    expect(effectivePollIntervalMs(result.config, "cc-main")).toBe(90_000);
    const noSchedule = parseConfigValue(base(), "concord.yaml");
    if (!noSchedule.ok) throw new Error("base is valid");
    expect(effectivePollIntervalMs(noSchedule.config, "re-nxt")).toBe(300_000);
    expect(effectivePollIntervalMs(noSchedule.config, "nope")).toBeUndefined();
  });

  it("accepts the example file", async () => {
    const result = await loadConfigFile(EXAMPLE);
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    const { config } = result;
    expect(config.signup).toMatchObject({
      connection: "cc-main",
      lists: [{ name: "Newsletter" }],
      confirm_within: 3 * 86_400_000,
      per_address_hourly: 20,
      smtp: { host: "smtp.example.org", port: 587, password: { kind: "env", name: "SIGNUP_SMTP_PASSWORD" } },
    });
    expect(config.connections.map((c) => [c.id, c.system])).toEqual([
      ["re-nxt", "blackbaud-renxt"],
      ["cc-main", "constant-contact"],
      ["cc-appeals", "constant-contact"],
    ]);
    const pair = config.pairs[0]!;
    expect(pair.platforms).toEqual([{ connection: "cc-main" }, { connection: "cc-appeals" }]);
    expect(config.topics[0]?.constructs).toEqual({
      "re-nxt": { type: "consent_category", name: "Appeals" },
      "cc-appeals": { type: "account" },
    });
    // Every secret in the example is an environment reference.
    const secrets = config.connections.flatMap((c) => Object.values(c.credentials));
    expect(secrets.every((s) => s?.kind === "env")).toBe(true);
  });

  it("reads JSON files too", async () => {
    const dir = await mkdtemp(join(tmpdir(), "concord-config-"));
    const file = join(dir, "concord.json");
    await writeFile(file, JSON.stringify(base(), null, 2));
    expect((await loadConfigFile(file)).ok).toBe(true);
  });
});

describe("errors name the path, what was expected and what was found", () => {
  it.each<[string, (c: Base) => void, string, string, string]>([
    // [case, mutation, path, code, message fragment]
    [
      "unknown system",
      (c) => (c.connections[0]!.system = "constantcontact"),
      "connections[0].system",
      "invalid_value",
      'expected one of "constant-contact", "mailchimp", "blackbaud-renxt", "kindful", "growthzone"; found "constantcontact" (did you mean "constant-contact"?)',
    ],
    [
      "unknown key with a hint",
      (c) => (c.connections[2].poll_intervall = "2m"),
      "connections[2].poll_intervall",
      "unknown_key",
      'unknown key "poll_intervall" (did you mean "poll_interval"?)',
    ],
    [
      "unknown top-level key",
      (c) => (c.conections = []),
      "conections",
      "unknown_key",
      'unknown key "conections" (did you mean "connections"?)',
    ],
    [
      "bad id",
      (c) => (c.connections[0]!.id = "RE NXT"),
      "connections[0].id",
      "invalid_value",
      'expected an id of lowercase letters, digits and single hyphens, such as cc-main, found "RE NXT"',
    ],
    [
      "missing id",
      (c) => delete c.connections[0].id,
      "connections[0].id",
      "invalid_value",
      "required: expected an id such as cc-main, found nothing",
    ],
    [
      "no connections",
      (c) => (c.connections = []),
      "connections",
      "invalid_value",
      "expected at least 1 item, found a list of 0 items",
    ],
    [
      "bad URL",
      (c) => (c.connections[0].base_url = "localhost:4010"),
      "connections[0].base_url",
      "invalid_value",
      'expected an http(s) URL such as https://api.example.org, found "localhost:4010"',
    ],
    [
      "duration without unit",
      (c) => (c.connections[2].poll_interval = 60),
      "connections[2].poll_interval",
      "invalid_value",
      "found the number 60 without a unit",
    ],
    [
      "duplicate connection id",
      (c) => (c.connections[2]!.id = "cc-main"),
      "connections[2].id",
      "duplicate_id",
      'duplicate connection id "cc-main": connections[1] already uses it',
    ],
    [
      "CC polled too often",
      (c) => (c.connections[2]!.poll_interval = "10s"),
      "connections[2].poll_interval",
      "poll_interval_too_short",
      "polling every 10s costs 17,280 calls a day (2 per poll), more than the 5,000 polling may use (half of Constant Contact's daily quota, 10,000); expected 35s or longer",
    ],
    [
      "CC with a smaller quota override",
      (c) => (c.connections[2].limits = { daily_quota: 2000 }),
      "connections[2].poll_interval",
      "poll_interval_too_short",
      "(half of limits.daily_quota, 2,000); expected 2m53s or longer",
    ],
    [
      // A GrowthZone poll reads the delta and each list it syncs: twelve lists make 13 calls a
      // poll, where a poll that read no list would be 1.
      "GrowthZone polled every 2m while reading twelve lists",
      (c) => {
        c.connections.push({
          id: "gz",
          system: "growthzone",
          credentials: { api_key: { env: "GZ_KEY" }, subdomain: "chamber" },
          poll_interval: "2m",
        });
        c.pairs.push({
          id: "gz-pair",
          crm: "gz",
          platforms: [{ connection: "cc-main" }],
          audiences: Array.from({ length: 12 }, (_, i) => ({
            crm_list: { id: String(100 + i) },
            platform: "cc-main",
            platform_list: { name: `List ${i}` },
          })),
        });
      },
      "connections[3].poll_interval",
      "poll_interval_too_short",
      "polling every 2m costs 9,360 calls a day (13 per poll, reading 12 lists), more than the 5,000 polling may use (half of GrowthZone's daily quota, 10,000); expected 3m45s or longer",
    ],
    [
      // No schedule: the pair runs at Constant Contact's default minute, and every run reads the
      // GrowthZone CRM and its four lists.
      "GrowthZone read at its platform's default minute with four lists",
      (c) => {
        c.connections.push({
          id: "gz",
          system: "growthzone",
          credentials: { api_key: { env: "GZ_KEY" }, subdomain: "chamber" },
        });
        c.pairs.push({
          id: "gz-pair",
          crm: "gz",
          platforms: [{ connection: "cc-main" }],
          audiences: Array.from({ length: 4 }, (_, i) => ({
            crm_list: { id: String(100 + i) },
            platform: "cc-main",
            platform_list: { name: `List ${i}` },
          })),
        });
      },
      "pairs[1].schedule.poll_interval",
      "poll_interval_too_short",
      `for connection "gz", read at every run of this pair, which runs at its platforms' shortest poll_interval unless schedule.poll_interval says: polling every 1m costs 7,200 calls a day (5 per poll, reading 4 lists), more than the 5,000 polling may use (half of GrowthZone's daily quota, 10,000); expected 1m27s or longer`,
    ],
    [
      // Each pair alone polls it well within its quota; every run of both reads it.
      "a GrowthZone CRM two pairs share, each run every 30s",
      (c) => {
        c.connections.push(
          {
            id: "gz",
            system: "growthzone",
            credentials: { api_key: { env: "GZ_KEY" }, subdomain: "chamber" },
          },
          { id: "cc-events", system: "constant-contact", poll_interval: "2m" },
        );
        c.pairs.push(
          {
            id: "gz-appeals",
            crm: "gz",
            platforms: [{ connection: "cc-appeals" }],
            schedule: { poll_interval: "30s" },
          },
          {
            id: "gz-events",
            crm: "gz",
            platforms: [{ connection: "cc-events" }],
            schedule: { poll_interval: "30s" },
          },
        );
      },
      "pairs[2].schedule.poll_interval",
      "poll_interval_too_short",
      'for connection "gz", read at every run of each of the 2 pairs that share it (gz-appeals every 30s, gz-events every 30s): together their polls cost 5,760 calls a day (1 per poll), more than the 5,000 polling may use',
    ],
    [
      "pair schedule too short for an inheriting connection",
      (c) => (c.pairs[0].schedule = { poll_interval: "20s" }),
      "pairs[0].schedule.poll_interval",
      "poll_interval_too_short",
      'for connection "cc-main": polling every 20s',
    ],
    [
      "webhooks on Constant Contact",
      (c) => (c.connections[1].webhooks = { enabled: true }),
      "connections[1].webhooks.enabled",
      "unsupported_setting",
      "Constant Contact does not push contact or unsubscribe changes by webhook",
    ],
    [
      "webhooks without a secret",
      (c) => (c.connections[0].webhooks = { enabled: true }),
      "connections[0].webhooks.secret",
      "missing_setting",
      "required when webhooks.enabled is true",
    ],
    [
      "credential the system does not take",
      (c) => (c.connections[1]!.credentials.subscription_key = { env: "X" }),
      "connections[1].credentials.subscription_key",
      "unsupported_setting",
      "Constant Contact connections take client_id, client_secret, refresh_token; found subscription_key",
    ],
    [
      "a field the CRM does not have, with a hint",
      (c) => c.pairs[0].fields.push({ canonical: "nickname", crm: "preferred_nam", platform: "job_title" }),
      "pairs[0].fields[1].crm",
      "unknown_field",
      `Raiser's Edge NXT has no field "preferred_nam" (did you mean "preferred_name"?)`,
    ],
    [
      "a platform field not in the catalogue (a custom field named instead of its id)",
      (c) =>
        c.pairs[0].fields.push({
          canonical: "preferred_name",
          crm: "preferred_name",
          platform: "custom_field:Preferred name",
          direction: "crm_to_platform",
        }),
      "pairs[0].fields[1].platform",
      "unknown_field",
      'Constant Contact has no field "custom_field:Preferred name"; expected one of first_name, last_name, job_title, company_name, birthday_month, birthday_day, anniversary, custom_field:<the custom field\'s id, a UUID>',
    ],
    [
      "a name slot mapped under another canonical name",
      (c) => c.pairs[0].fields.push({ canonical: "given", crm: "first", platform: "job_title" }),
      "pairs[0].fields[1].crm",
      "unknown_field",
      '"first" is the record\'s first name: map it as canonical first_name, not given',
    ],
    [
      "canonical first_name on another field",
      (c) => (c.pairs[0].fields[0].crm = "preferred_name"),
      "pairs[0].fields[0].crm",
      "unknown_field",
      'canonical first_name is the record\'s own name slot: expected "first" on Raiser\'s Edge NXT, found "preferred_name"',
    ],
    [
      "a read-only field written",
      (c) =>
        c.pairs[0].fields.push({
          canonical: "gender",
          crm: "gender",
          platform: "job_title",
          direction: "platform_to_crm",
        }),
      "pairs[0].fields[1].crm",
      "unknown_field",
      `Raiser's Edge NXT cannot write "gender": expected a direction that only reads it`,
    ],
    [
      "consent mapped as a profile field",
      (c) => c.pairs[0].fields.push({ canonical: "email_opt_out", crm: "title", platform: "job_title" }),
      "pairs[0].fields[1].canonical",
      "unsupported_setting",
      '"email_opt_out" names consent, which never follows a field mapping',
    ],
    [
      "a connector option the system does not have",
      (c) => (c.connections[0].options = { consent_chanel: "Email" }),
      "connections[0].options",
      "unsupported_setting",
      "Raiser's Edge NXT options are page_size, overlap_seconds, consent_channel",
    ],
    [
      "a connector option of the wrong type",
      (c) => (c.connections[1].options = { page_size: 900 }),
      "connections[1].options.page_size",
      "unsupported_setting",
      "expected a number ≤ 500, found number 900",
    ],
    [
      "an overlap of no time, which misses a change made later in the checkpoint's second",
      (c) => (c.connections[1].options = { overlap_seconds: 0 }),
      "connections[1].options.overlap_seconds",
      "unsupported_setting",
      "expected at least 1 second: change times are whole seconds",
    ],
    [
      "unknown CRM",
      (c) => (c.pairs[0]!.crm = "re-nx"),
      "pairs[0].crm",
      "unknown_reference",
      'expected the id of a CRM connection declared under connections (re-nxt); found "re-nx" (did you mean "re-nxt"?)',
    ],
    [
      "platform as CRM",
      (c) => (c.pairs[0]!.crm = "cc-main"),
      "pairs[0].crm",
      "wrong_role",
      'expected a CRM connection (re-nxt); found "cc-main", a Constant Contact connection, which is an email platform: list it under platforms',
    ],
    [
      "CRM used as a platform",
      (c) => (c.pairs[0]!.platforms[0] = { connection: "re-nxt" }),
      "pairs[0].platforms[0].connection",
      "wrong_role",
      'expected an email platform connection (cc-main, cc-appeals); found "re-nxt", a Raiser\'s Edge NXT connection, which is a CRM',
    ],
    [
      "unknown platform",
      (c) => (c.pairs[0]!.platforms[1]!.connection = "cc-apeals"),
      "pairs[0].platforms[1].connection",
      "unknown_reference",
      'found "cc-apeals" (did you mean "cc-appeals"?)',
    ],
    [
      "platform listed twice",
      (c) => c.pairs[0]!.platforms.push({ connection: "cc-main" } as any),
      "pairs[0].platforms[2].connection",
      "duplicate_platform",
      '"cc-main" is already listed at pairs[0].platforms[0]; expected each platform once per pair',
    ],
    [
      "platform in two pairs",
      (c) => c.pairs.push({ id: "second", crm: "re-nxt", platforms: [{ connection: "cc-main" }] } as any),
      "pairs[1].platforms[0].connection",
      "duplicate_platform",
      'already a platform of pair "main" (pairs[0].platforms[0])',
    ],
    [
      "duplicate pair id",
      (c) => c.pairs.push({ id: "main", crm: "re-nxt", platforms: [{ connection: "cc-main" }] } as any),
      "pairs[1].id",
      "duplicate_id",
      'duplicate pair id "main"',
    ],
    [
      "a platform's topic written the old way",
      (c) => (c.pairs[0]!.platforms[1]!.topic = "appeals"),
      "pairs[0].platforms[1].topic",
      "unknown_key",
      '"topic" is no longer a key here: an account that stands for a topic is one of the topic\'s constructs now: write topics[].constructs: { <this connection>: { type: account } }',
    ],
    [
      "a topic's CRM category written the old way",
      (c) => (c.topics[0]!.crm_categories = { "re-nxt": "Appeals" }),
      "topics[0].crm_categories",
      "unknown_key",
      '"crm_categories" is no longer a key here: a topic\'s consent category is one of its constructs now',
    ],
    [
      "a topic kept on a platform with no construct in the CRM",
      (c) => delete c.topics[0]!.constructs["re-nxt"],
      "topics[0].constructs",
      "missing_setting",
      'topic "appeals" is kept on "cc-appeals" (pair "main") but has no consent category in Raiser\'s Edge NXT "re-nxt": expected constructs.re-nxt: { type: consent_category, name: … }',
    ],
    [
      "a construct on an undeclared connection",
      (c) => (c.topics[0]!.constructs["cc-apeals"] = { type: "account" }),
      "topics[0].constructs.cc-apeals",
      "unknown_reference",
      'expected the id of a connection declared under connections (re-nxt, cc-main, cc-appeals); found "cc-apeals" (did you mean "cc-appeals"?)',
    ],
    [
      "a construct type the system does not have",
      (c) => (c.topics[0]!.constructs["re-nxt"] = { type: "list", name: "Appeals" }),
      "topics[0].constructs.re-nxt.type",
      "unsupported_setting",
      `a topic in Raiser's Edge NXT is consent_category (consent category) or custom_field (Yes/No custom field); found "list"`,
    ],
    [
      "a consent category given by id only",
      (c) => (c.topics[0]!.constructs["re-nxt"] = { type: "consent_category", id: "7" }),
      "topics[0].constructs.re-nxt.name",
      "missing_setting",
      "required: a consent category is named by its name in Raiser's Edge NXT; expected name, found only an id",
    ],
    [
      "a whole account given a name",
      (c) => (c.topics[0]!.constructs["cc-appeals"] = { type: "account", name: "Appeals" }),
      "topics[0].constructs.cc-appeals",
      "unsupported_setting",
      "a account construct is the connection itself: expected no id or name, found a name",
    ],
    [
      "one construct standing for two topics",
      (c) =>
        c.topics.push({
          key: "fundraising",
          label: "Fundraising",
          constructs: { "cc-appeals": { type: "account" } },
        }),
      "topics[1].constructs.cc-appeals",
      "conflicting_setting",
      'this the whole account of "cc-appeals" already stands for topic "appeals" (topics[0]); expected each construct to stand for one topic',
    ],
    [
      "duplicate topic key",
      (c) => c.topics.push({ key: "appeals", label: "Again" }),
      "topics[1].key",
      "duplicate_id",
      'duplicate topic key "appeals"',
    ],
    [
      "bad topic key",
      (c) => (c.topics[0]!.key = "Appeals!"),
      "topics[0].key",
      "invalid_value",
      'expected a topic key of lowercase letters, digits, _ or -, found "Appeals!"',
    ],
    [
      "audience on a platform outside the pair",
      (c) => (c.pairs[0]!.audiences[0]!.platform = "cc-other"),
      "pairs[0].audiences[0].platform",
      "unknown_reference",
      'expected one of this pair\'s platforms (cc-main, cc-appeals); found "cc-other"',
    ],
    [
      "audience list with neither id nor name",
      (c) => (c.pairs[0]!.audiences[0]!.crm_list = {} as any),
      "pairs[0].audiences[0].crm_list",
      "invalid_value",
      "expected an id or a name for the list, found neither",
    ],
    [
      "audience mapped twice",
      (c) => c.pairs[0]!.audiences.push({ ...c.pairs[0]!.audiences[0]!, crm_list: { id: "43" } }),
      "pairs[0].audiences[1].platform_list",
      "duplicate_id",
      "already mapped by pairs[0].audiences[0]",
    ],
    [
      "bad direction",
      (c) => (c.pairs[0]!.audiences[0].direction = "one_way"),
      "pairs[0].audiences[0].direction",
      "invalid_value",
      'expected one of "crm_to_platform", "platform_to_crm", "both"; found "one_way"',
    ],
    [
      "deleting is not a policy",
      (c) => (c.pairs[0]!.audiences[0].delete_policy = "delete_contact"),
      "pairs[0].audiences[0].delete_policy",
      "invalid_value",
      'expected one of "keep", "remove_membership"',
    ],
    [
      "owner against direction",
      (c) => Object.assign(c.pairs[0]!.fields[0], { direction: "crm_to_platform", owner: "platform" }),
      "pairs[0].fields[0].owner",
      "conflicting_setting",
      "expected owner crm or latest, found platform",
    ],
    [
      "duplicate canonical field",
      (c) => c.pairs[0]!.fields.push({ canonical: "first_name", crm: "nick", platform: "x" }),
      "pairs[0].fields[1].canonical",
      "duplicate_id",
      '"first_name" is already mapped by pairs[0].fields[0]',
    ],
    [
      "bad policy",
      (c) => (c.pairs[0].policies = { unlinked_opt_outs: "ignore" }),
      "pairs[0].policies.unlinked_opt_outs",
      "invalid_value",
      'expected one of "apply_and_report", "report_only"; found "ignore"',
    ],
    [
      "reconciliation too often",
      (c) => (c.pairs[0].schedule = { full_reconciliation: "30m" }),
      "pairs[0].schedule.full_reconciliation",
      "invalid_value",
      'expected a duration of at least 1h, found "30m"',
    ],
    [
      "list rule for another pair's platform",
      (c) => (c.pairs[0].list_sync = [{ platform: "cc-other", crm_lists: { prefix: "CC: " } }]),
      "pairs[0].list_sync[0].platform",
      "unknown_reference",
      "expected one of this pair's platforms",
    ],
    [
      "list rule selecting nothing",
      (c) => (c.pairs[0].list_sync = [{ platform: "cc-main", crm_lists: {} }]),
      "pairs[0].list_sync[0].crm_lists",
      "invalid_value",
      "expected a prefix, names or newsletter_sync: true to select the CRM lists, found none",
    ],
    [
      "holiday not a date",
      (c) => (c.compliance = { holidays: ["25/12/2026"] }),
      "compliance.holidays[0]",
      "invalid_value",
      "expected a date as YYYY-MM-DD, such as 2026-12-25",
    ],
    [
      "implied-consent period not a period",
      (c) =>
        (c.compliance = { implied_consent: [{ name: "casl", countries: ["CA"], donation: "2 fortnights" }] }),
      "compliance.implied_consent[0].donation",
      "invalid_value",
      'expected a period such as 2 years, 6 months or 180 days, found "2 fortnights"',
    ],
    [
      "implied-consent rule naming an unknown topic",
      (c) =>
        (c.compliance = { implied_consent: [{ name: "casl", countries: ["CA"], topics: ["newsleter"] }] }),
      "compliance.implied_consent[0].topics[0]",
      "unknown_reference",
      'no topic has the key "newsleter"',
    ],
    [
      "webhook deliveries kept less than an hour",
      (c) => (c.compliance = { retention: { webhook_deliveries: "10m" } }),
      "compliance.retention.webhook_deliveries",
      "invalid_value",
      'expected a duration of at least 1h, found "10m"',
    ],
    [
      "webhook deliveries kept more than 400 days",
      (c) => (c.compliance = { retention: { webhook_deliveries: "401d" } }),
      "compliance.retention.webhook_deliveries",
      "invalid_value",
      'expected a duration of at most 400d, found "401d"',
    ],
    [
      "erasure keeping the records of a connection that does not exist",
      (c) => (c.compliance = { erasure: { keep_records_in: ["re-nxtt"] } }),
      "compliance.erasure.keep_records_in[0]",
      "unknown_reference",
      'no connection has the id "re-nxtt"',
    ],
    [
      "two implied-consent rules with one name",
      (c) =>
        (c.compliance = {
          implied_consent: [
            { name: "casl", countries: ["CA"] },
            { name: "casl", countries: ["Canada"] },
          ],
        }),
      "compliance.implied_consent[1].name",
      "duplicate_id",
      'duplicate rule name "casl"',
    ],
    [
      "personal links into a field the platform does not have",
      (c) => (
        (c.server = { public_url: "https://c.example.org" }),
        (c.pairs[0]!.platforms[0]!.personal_links = { one_click_field: "unsubscribe link" })
      ),
      "pairs[0].platforms[0].personal_links.one_click_field",
      "unknown_field",
      'has no field "unsubscribe link"',
    ],
    [
      "personal links without a public address",
      (c) =>
        (c.pairs[0]!.platforms[0]!.personal_links = {
          one_click_field: "custom_field:4f6c6a52-8d2e-4c7a-9c1b-2a3e5d7f9b10",
        }),
      "pairs[0].platforms[0].personal_links",
      "missing_setting",
      "personal links point at server.public_url",
    ],
    [
      "personal links naming no field",
      (c) => (c.pairs[0]!.platforms[0]!.personal_links = {}),
      "pairs[0].platforms[0].personal_links",
      "invalid_value",
      "expected one_click_field, preferences_field or both",
    ],
    [
      "sign-up into the CRM",
      (c) => (
        (c.server = { public_url: "https://c.example.org" }),
        (c.signup = signup({ connection: "re-nxt" }))
      ),
      "signup.connection",
      "wrong_role",
      'found "re-nxt", a Raiser\'s Edge NXT connection, which is a CRM',
    ],
    [
      "sign-up offering an unknown topic",
      (c) => (
        (c.server = { public_url: "https://c.example.org" }),
        (c.signup = signup({ topics: ["apeals"] }))
      ),
      "signup.topics[0]",
      "unknown_reference",
      'no topic has the key "apeals"',
    ],
    [
      "sign-up without a public address for its link",
      (c) => (c.signup = signup({})),
      "signup",
      "missing_setting",
      "the confirmation email links to server.public_url",
    ],
    [
      "sign-up email without a sender",
      (c) => (
        (c.server = { public_url: "https://c.example.org" }),
        (c.signup = signup({ smtp: { host: "smtp" } }))
      ),
      "signup.smtp.from",
      "invalid_value",
      "expected an email address",
    ],
    [
      "personal links expiring before the 60 days CASL asks",
      (c) => (c.server = { link_ttl: "30d" }),
      "server.link_ttl",
      "invalid_value",
      'expected a duration of at least 60d, found "30d"',
    ],
    [
      "clock warning too short",
      (c) => (c.notifications = { thresholds: { clock_warning: "10s" } }),
      "notifications.thresholds.clock_warning",
      "invalid_value",
      'expected a duration of at least 1m, found "10s"',
    ],
    [
      "no platforms",
      (c) => (c.pairs[0]!.platforms = []),
      "pairs[0].platforms",
      "invalid_value",
      "expected at least 1 item",
    ],
    [
      "log channel off",
      (c) => (c.notifications = { log: false }),
      "notifications.log",
      "invalid_value",
      "the log channel is always on",
    ],
    [
      "bad notification email",
      (c) => (c.notifications = { email: { host: "smtp", from: "ops", to: ["a@example.org"] } }),
      "notifications.email.from",
      "invalid_value",
      'expected an email address such as ops@example.org, found "ops"',
    ],
    [
      "misspelt reference in webhook_urls",
      (c) => (c.notifications = { webhook_urls: [{ evn: "SLACK_URL" }] }),
      "notifications.webhook_urls[0]",
      "invalid_value",
      'expected { env: "VARIABLE" } or { stored: "name" }, found a mapping with key "evn" (did you mean "env"?)',
    ],
    [
      "port as a string",
      (c) => (c.server = { port: "80" }),
      "server.port",
      "invalid_value",
      'expected a number, found "80"',
    ],
    [
      "body limit",
      (c) => (c.server = { body_limit: "1tb" }),
      "server.body_limit",
      "invalid_value",
      'expected a size between 1024 bytes and 64mb such as 512kb or 1mb, found "1tb"',
    ],
    [
      "a field mapping of the custom field a topic's opt-out is kept in",
      (c) => {
        c.connections[0] = {
          id: "re-nxt",
          system: "kindful",
          credentials: { api_token: { env: "KINDFUL" } },
        };
        c.topics[0].constructs["re-nxt"] = { type: "custom_field", name: "Appeals" };
        c.pairs[0].fields.push({
          canonical: "appeals_choice",
          crm: "custom_field:Appeals",
          platform: "job_title",
        });
      },
      "pairs[0].fields[1].crm",
      "conflicting_setting",
      '"custom_field:Appeals" holds the opt-out of topic "appeals" on connection "re-nxt": consent follows the consent ledger, never a field mapping',
    ],
    [
      "a field mapping of a topic's opt-out field written in another case, with a space",
      (c) => {
        c.connections[0] = {
          id: "re-nxt",
          system: "kindful",
          credentials: { api_token: { env: "KINDFUL" } },
        };
        c.topics[0].constructs["re-nxt"] = { type: "custom_field", name: "No Appeals Email" };
        c.pairs[0].fields.push({
          canonical: "appeals_choice",
          crm: "custom_field:no appeals email ",
          platform: "job_title",
        });
      },
      "pairs[0].fields[1].crm",
      "conflicting_setting",
      '"custom_field:no appeals email " holds the opt-out of topic "appeals" on connection "re-nxt"',
    ],
    ["wrong version", (c) => (c.version = 2), "version", "invalid_value", "expected 1, found number 2"],
    [
      "top level is a list",
      (c) => Object.assign(c, { connections: "re-nxt" }),
      "connections",
      "invalid_value",
      'expected a list, found "re-nxt"',
    ],
  ])("%s", (_name, mutate, path, code, message) => {
    const errors = errorsOf(mutate);
    const match =
      errors.find((e) => e.path === path && e.message.includes(message)) ??
      errors.find((e) => e.path === path);
    expect(match, `errors were:\n${formatConfigErrors(errors)}`).toBeDefined();
    expect(match).toMatchObject({ file: "concord.yaml", code });
    expect(match?.message).toContain(message);
  });
});

describe("secrets must be references", () => {
  it.each<[string, (c: Base) => void, string, string]>([
    [
      "client secret",
      (c) => (c.connections[0]!.credentials.client_secret = "s3cr3t-value"),
      "connections[0].credentials.client_secret",
      'write client_secret: { env: "RE_NXT_CLIENT_SECRET" }, or store it encrypted in the database (`concord secrets set re-nxt.client_secret`, needs CONCORD_SECRET_KEY) and write client_secret: { stored: "re-nxt.client_secret" }',
    ],
    [
      "refresh token",
      (c) => (c.connections[1]!.credentials.refresh_token = "s3cr3t-value"),
      "connections[1].credentials.refresh_token",
      'refresh_token: { env: "CC_MAIN_REFRESH_TOKEN" }',
    ],
    [
      "subscription key",
      (c) => (c.connections[0]!.credentials.subscription_key = "s3cr3t-value"),
      "connections[0].credentials.subscription_key",
      'subscription_key: { env: "RE_NXT_SUBSCRIPTION_KEY" }',
    ],
    [
      "webhook secret",
      (c) => (c.connections[0].webhooks = { enabled: true, secret: "s3cr3t-value" }),
      "connections[0].webhooks.secret",
      'secret: { env: "RE_NXT_WEBHOOK_SECRET" }',
    ],
    [
      "admin password",
      (c) => (c.server = { admin_password: "s3cr3t-value" }),
      "server.admin_password",
      'admin_password: { env: "CONCORD_ADMIN_PASSWORD" }',
    ],
    [
      "SMTP password",
      (c) =>
        (c.notifications = {
          email: { host: "smtp", from: "a@example.org", to: ["b@example.org"], password: "s3cr3t-value" },
        }),
      "notifications.email.password",
      'password: { env: "CONCORD_SMTP_PASSWORD" }',
    ],
  ])("a plain %s is rejected with the fix, without echoing it", (_name, mutate, path, fix) => {
    const errors = errorsOf(mutate);
    const match = errors.find((e) => e.path === path);
    expect(match?.code).toBe("plaintext_secret");
    expect(match?.message).toContain(
      "a secret must not be written in the config file (found a plain string)",
    );
    expect(match?.message).toContain(fix);
    expect(formatConfigErrors(errors)).not.toContain("s3cr3t-value");
  });

  it.each<[string, unknown, string]>([
    ["a number", 12345, "a secret must not be written in the config file (found a plain number)"],
    ["a list", ["a"], 'expected { env: "VARIABLE" } or { stored: "name" }, found a list'],
    ["both kinds", { env: "A", stored: "b" }, "expected exactly one of env or stored, found both"],
    ["a misspelt kind", { evn: "A" }, 'found a mapping with key "evn" (did you mean "env"?)'],
    [
      "a bad variable name",
      { env: "1BAD" },
      'expected an environment variable name (letters, digits, _; not starting with a digit) under env, found "1BAD"',
    ],
    [
      "a bad stored name",
      { stored: "Has Space" },
      'expected a stored secret name (lowercase letters, digits, . _ -) under stored, found "Has Space"',
    ],
  ])("a reference that is %s is rejected", (_name, value, message) => {
    const errors = errorsOf((c) => (c.connections[0]!.credentials.client_secret = value));
    expect(errors.find((e) => e.path === "connections[0].credentials.client_secret")?.message).toContain(
      message,
    );
  });

  it("a notification webhook URL may be plain or a reference", () => {
    const config = base();
    config.notifications = { webhook_urls: ["https://hooks.example.org/a", { env: "SLACK_URL" }] };
    const result = parseConfigValue(config, "concord.yaml");
    if (!result.ok) throw new Error(formatConfigErrors(result.errors));
    expect(result.config.notifications.webhook_urls).toEqual([
      { kind: "plain", value: "https://hooks.example.org/a" },
      { kind: "env", name: "SLACK_URL" },
    ]);
  });
});

describe("positions in the file", () => {
  it("gives line and column for YAML syntax errors", () => {
    const result = parseConfigText("connections:\n  - id: a\n    system: [constant-contact\n", "bad.yaml");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors[0]).toMatchObject({
      file: "bad.yaml",
      path: "",
      code: "syntax_error",
      line: expect.any(Number),
      column: expect.any(Number),
    });
    expect(result.errors[0]?.message).toMatch(/^YAML syntax: /);
  });

  it("says a file of two YAML documents holds one, and where the second starts", () => {
    const result = parseConfigText("connections: []\n---\npairs: []\n", "two.yaml");
    expect(result.ok ? undefined : result.errors[0]).toMatchObject({
      code: "syntax_error",
      line: expect.any(Number),
      message: expect.stringMatching(/^a config file holds one YAML document: remove the `---` line/),
    });
  });

  it("reports duplicate keys as syntax errors with their line", () => {
    const result = parseConfigText("connections: []\nconnections: []\n", "dup.yaml");
    expect(result.ok ? undefined : result.errors[0]).toMatchObject({
      code: "syntax_error",
      line: 2,
      column: 1,
    });
  });

  it("gives line and column for validation errors, at the key that is wrong", () => {
    const text = [
      "connections:", // 1
      "  - id: re-nxt", // 2
      "    system: blackbaud-renxt", // 3
      "  - id: cc-main", // 4
      "    system: constant-contact", // 5
      "    pol_interval: 60s", // 6
      "pairs:", // 7
      "  - id: main", // 8
      "    crm: re-nx", // 9
      "    platforms:", // 10
      "      - connection: cc-main", // 11
    ].join("\n");
    const result = parseConfigText(text, "concord.yaml");
    if (result.ok) throw new Error("expected errors");
    // An unknown key does not stop the cross-reference checks: both problems are reported at once.
    expect(result.errors).toEqual([
      expect.objectContaining({
        path: "connections[1].pol_interval",
        code: "unknown_key",
        line: 6,
        column: 5,
      }),
      expect.objectContaining({
        path: "pairs[0].crm",
        code: "unknown_reference",
        line: 9,
        column: 5,
      }),
    ]);
    const fixed = parseConfigText(text.replace("pol_interval", "poll_interval"), "concord.yaml");
    if (fixed.ok) throw new Error("expected errors");
    expect(fixed.errors).toEqual([
      expect.objectContaining({
        path: "pairs[0].crm",
        code: "unknown_reference",
        line: 9,
        column: 5,
      }),
    ]);
    expect(formatConfigErrors(fixed.errors)).toBe(
      "concord.yaml: 1 error in the config file\n" +
        '  concord.yaml:9:5: pairs[0].crm: expected the id of a CRM connection declared under connections (re-nxt); found "re-nx" (did you mean "re-nxt"?)',
    );
  });

  it("reports an empty file and an unreadable one", async () => {
    expect(parseConfigText("# nothing\n", "empty.yaml")).toMatchObject({
      ok: false,
      errors: [{ code: "empty_file", path: "" }],
    });
    expect(await loadConfigFile("/nonexistent/concord.yaml")).toMatchObject({
      ok: false,
      errors: [
        {
          code: "file_unreadable",
          file: "/nonexistent/concord.yaml",
          message: "cannot read the config file: no such file",
        },
      ],
    });
  });
});

describe("formatPath", () => {
  it.each<[PropertyKey[], string]>([
    [["pairs", 0, "platforms", 1, "topic"], "pairs[0].platforms[1].topic"],
    [["topics", 0, "crm_categories", "re-nxt"], "topics[0].crm_categories.re-nxt"],
    [["topics", 0, "crm_categories", "has space"], 'topics[0].crm_categories["has space"]'],
    [[], ""],
  ])("%j → %s", (path, text) => {
    expect(formatPath(path)).toBe(text);
  });
});

describe("what a pair asks of its systems, against their manifests", () => {
  /** Runs `fn` with one manifest's capabilities changed, as a system that cannot do something. */
  const withCapabilities = <T>(
    system: "blackbaud-renxt" | "constant-contact",
    change: Partial<ConnectorCapabilities>,
    fn: () => T,
  ): T => {
    const manifest = manifestOf(system);
    const before = manifest.capabilities;
    manifest.capabilities = { ...before, ...change };
    try {
      return fn();
    } finally {
      manifest.capabilities = before;
    }
  };
  const summary = (errors: ConfigError[]) => errors.map((e) => `${e.path} ${e.code}: ${e.message}`);

  it("refuses create_in_crm on a CRM that does not let Concord create records", () => {
    const errors = withCapabilities("blackbaud-renxt", { can_create_contacts: false }, () =>
      errorsOf((c) => (c.pairs[0].policies = { create_in_crm: true })),
    );
    expect(summary(errors)).toEqual([
      `pairs[0].policies.create_in_crm unsupported_setting: Raiser's Edge NXT ("re-nxt") does not let Concord create records; expected create_in_crm: false`,
    ]);
    // Without the policy the same CRM is fine.
    const fine = withCapabilities("blackbaud-renxt", { can_create_contacts: false }, () =>
      parseConfigValue(base(), "concord.yaml"),
    );
    expect(fine.ok).toBe(true);
  });

  it("refuses a platform that takes no new contacts, and a system that keeps no email consent", () => {
    const platform = withCapabilities("constant-contact", { can_create_contacts: false }, () =>
      errorsOf(() => {}),
    );
    expect(summary(platform)).toEqual([
      expect.stringMatching(
        /^pairs\[0\]\.platforms\[0\]\.connection unsupported_setting: Constant Contact \("cc-main"\) does not let Concord create contacts/,
      ),
      expect.stringMatching(
        /^pairs\[0\]\.platforms\[1\]\.connection unsupported_setting: Constant Contact \("cc-appeals"\)/,
      ),
    ]);
    const sms = withCapabilities("blackbaud-renxt", { channels: ["sms"] }, () => errorsOf(() => {}));
    expect(summary(sms)).toEqual([
      `pairs[0] unsupported_setting: Raiser's Edge NXT ("re-nxt") keeps no email consent; a pair syncs email: expected a system whose channels include email`,
    ]);
  });
});
