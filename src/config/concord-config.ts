/**
 * The shape of the config file: connections, pairs with their mappings, topics, notifications and
 * server, with defaults. References between sections are checked in check-cross-references.ts;
 * load-config-file.ts puts both together as ConcordConfigSchema.
 */
import { z } from "zod";
import { TopicKeySchema } from "../core/consent/consent-event";
import type { CalendarPeriod } from "../core/consent/implied-consent";
import { byteSizeSchema } from "./byte-size";
import { strictObject } from "./config-error-map";
import { durationSchema } from "./duration";
import { CredentialValueSchema, SecretRefSchema, type CredentialValue } from "./secret-ref";
import { manifestFor, SYSTEM_IDS } from "../connectors/registry";
import { configErrorMap } from "./config-error-map";
import { hint } from "./did-you-mean";

const SLUG_RE = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
export const SlugSchema = z
  .string({
    error: (i) =>
      i.input === undefined ? "required: expected an id such as cc-main, found nothing" : undefined,
  })
  .max(64)
  .regex(SLUG_RE, "expected an id of lowercase letters, digits and single hyphens, such as cc-main");

const UrlSchema = z.url({
  protocol: /^https?$/,
  error: "expected an http(s) URL such as https://api.example.org",
});
const NonEmpty = z.string().trim().min(1);

export const DirectionSchema = z.enum(["crm_to_platform", "platform_to_crm", "both"]);
export type Direction = z.infer<typeof DirectionSchema>;

// ── connections ───────────────────────────────────────────────────────────────────────────────

/** The systems Concord has a connector for, from the registry (one manifest each). */
export const SystemIdSchema = z.enum(SYSTEM_IDS as [string, ...string[]]);

/** A connection's credentials by the names its system's manifest declares: plain, or referenced. */
export type Credentials = Record<string, CredentialValue>;

export const LimitsSchema = strictObject({
  requests_per_second: z.number().positive().max(1000).optional(),
  daily_quota: z.number().int().positive().optional(),
  /** How long one vendor call may take before it counts as failed (and is retried); default 60 s. */
  request_timeout: durationSchema({ min: 100, max: 600_000 }).optional(),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const WebhooksSchema = strictObject({
  enabled: z.boolean().default(false),
  /** Verifies that an event came from the system (a token in the receiver URL or a signing key). */
  secret: SecretRefSchema.optional(),
});
export type Webhooks = z.infer<typeof WebhooksSchema>;

const ConnectionShapeSchema = strictObject({
  id: SlugSchema,
  system: SystemIdSchema,
  label: NonEmpty.max(200).optional(),
  /** Talk to an emulator or a regional host instead of the vendor's default. */
  base_url: UrlSchema.optional(),
  token_url: UrlSchema.optional(),
  /** By the names the system's manifest declares; secrets only by reference. */
  credentials: z.record(z.string(), z.unknown()).prefault({}),
  /** Connector settings beyond credentials, by the system's manifest (its schema, its defaults). */
  options: z.record(z.string(), z.unknown()).prefault({}),
  limits: LimitsSchema.prefault({}),
  poll_interval: durationSchema({ min: 1_000, max: 86_400_000 }).optional(),
  webhooks: WebhooksSchema.prefault({}),
});

/**
 * A connection, its credentials and options checked against its system's manifest: each credential
 * a name the system takes, a secret never written plainly; the options by the connector's schema.
 */
export const ConnectionSchema = ConnectionShapeSchema.transform((c, ctx) => {
  const manifest = manifestFor(c.system);
  if (manifest === undefined) return { ...c, credentials: {} };
  const issue = (path: PropertyKey[], message: string, params: Record<string, unknown>): void => {
    ctx.addIssue({ code: "custom", path, message, input: undefined, params });
  };
  const takes = Object.keys(manifest.credentials);
  const credentials: Credentials = {};
  for (const [key, raw] of Object.entries(c.credentials)) {
    const spec = manifest.credentials[key];
    if (spec === undefined) {
      issue(
        ["credentials", key],
        `${manifest.label} connections take ${takes.join(", ")}; found ${key}, which ${c.system} does not use${hint(key, takes)}`,
        { concord_code: "unsupported_setting" },
      );
      continue;
    }
    const parsed = (spec.secret ? SecretRefSchema : CredentialValueSchema).safeParse(raw, {
      error: configErrorMap,
    });
    if (parsed.success) credentials[key] = parsed.data;
    else
      for (const i of parsed.error.issues)
        issue(["credentials", key, ...i.path], i.message, i.code === "custom" ? (i.params ?? {}) : {});
  }
  const options = manifest.options.safeParse(c.options, { error: configErrorMap });
  if (!options.success)
    for (const i of options.error.issues)
      issue(
        ["options", ...i.path],
        i.code === "unrecognized_keys"
          ? `${i.message}; ${manifest.label} options are ${Object.keys(optionShape(manifest.options)).join(", ") || "none"}`
          : i.message,
        { concord_code: "unsupported_setting" },
      );
  return { ...c, credentials, options: options.success ? options.data : c.options };
});
export type Connection = z.infer<typeof ConnectionSchema>;

// ── topics ────────────────────────────────────────────────────────────────────────────────────

/** What a topic is in one system: a construct of the type its manifest declares, by id or name. */
export const TopicConstructSchema = strictObject({
  type: z
    .string()
    .regex(
      /^[a-z][a-z0-9_]{0,39}$/,
      "expected a construct type such as account, consent_category or list (the system's manifest lists them)",
    ),
  id: z.union([NonEmpty.max(255), z.number().int().nonnegative().transform(String)]).optional(),
  name: NonEmpty.max(255).optional(),
});
export type TopicConstruct = z.infer<typeof TopicConstructSchema>;

export const TopicSchema = strictObject(
  {
    key: TopicKeySchema,
    label: NonEmpty.max(200),
    /**
     * Per connection id, what the topic is in that system: a Raiser's Edge consent category, a
     * whole Constant Contact account or one of its lists, a Mailchimp interest…
     */
    constructs: z.record(z.string(), TopicConstructSchema).default({}),
  },
  {
    moved: {
      crm_categories:
        "a topic's consent category is one of its constructs now: write constructs: { <crm connection>: { type: consent_category, name: <category> } }",
    },
  },
);
export type Topic = z.infer<typeof TopicSchema>;

// ── pairs ─────────────────────────────────────────────────────────────────────────────────────

const FIELD_NAME_RE = /^[A-Za-z0-9_.:\- ]{1,128}$/;
const FieldNameSchema = z
  .string()
  .regex(FIELD_NAME_RE, "expected a field name (letters, digits, space, _ . : -; up to 128 characters)");

export const PairPlatformSchema = strictObject(
  {
    connection: SlugSchema,
    /**
     * The platform's fields (its own names: a Mailchimp merge tag, a Constant Contact
     * `custom_field:<id>`) Concord keeps filled with each person's personal links, so campaigns the
     * platform sends carry Concord's one-click unsubscribe URL and preference centre.
     */
    personal_links: strictObject({
      one_click_field: FieldNameSchema.optional(),
      preferences_field: FieldNameSchema.optional(),
    })
      .refine((l) => l.one_click_field !== undefined || l.preferences_field !== undefined, {
        message: "expected one_click_field, preferences_field or both",
      })
      .optional(),
    /**
     * Skip addresses whose top-level domain is longer than this (a platform that refuses them, as
     * seed 002 says of Constant Contact imports: `.guru`, `.tools`); off unless set.
     */
    max_tld_length: z.number().int().min(2).max(63).optional(),
  },
  {
    moved: {
      topic:
        "an account that stands for a topic is one of the topic's constructs now: write topics[].constructs: { <this connection>: { type: account } }",
      crm_category:
        "the CRM's category for a topic is one of the topic's constructs now: write topics[].constructs: { <crm connection>: { type: consent_category, name: <category> } }",
    },
  },
);
export type PairPlatform = z.infer<typeof PairPlatformSchema>;

/** A list on one side, by its id, its name, or both (the id wins; the name is checked against it). */
export const ListRefSchema = strictObject({
  id: z.union([NonEmpty, z.number().int().nonnegative().transform(String)]).optional(),
  name: NonEmpty.max(255).optional(),
}).refine((l) => l.id !== undefined || l.name !== undefined, {
  message: "expected an id or a name for the list, found neither",
});
export type ListRef = z.infer<typeof ListRefSchema>;

export const AudienceSchema = strictObject({
  crm_list: ListRefSchema,
  /** The platform connection (one of the pair's platforms) whose list this is. */
  platform: SlugSchema,
  platform_list: ListRefSchema,
  direction: DirectionSchema.default("crm_to_platform"),
  /** What leaving the source list does on the other side: never a deletion of the contact. */
  delete_policy: z.enum(["keep", "remove_membership"]).default("keep"),
});
export type Audience = z.infer<typeof AudienceSchema>;

export const FieldMappingSchema = strictObject({
  canonical: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,63}$/, "expected a canonical field name in snake_case, such as first_name"),
  crm: FieldNameSchema,
  platform: FieldNameSchema,
  direction: DirectionSchema.default("both"),
  /** Who wins when both sides changed since the last sync; `latest`: the most recent change. */
  owner: z.enum(["crm", "platform", "latest"]).default("latest"),
});
export type FieldMapping = z.infer<typeof FieldMappingSchema>;

export const PoliciesSchema = strictObject({
  /** Opt-outs found on platform contacts not linked to a CRM record: matched by address, reported, and applied or not. */
  unlinked_opt_outs: z.enum(["apply_and_report", "report_only"]).default("apply_and_report"),
  create_in_crm: z.boolean().default(false),
  require_consent_basis: z.boolean().default(false),
  propagate_crm_opt_outs: z.boolean().default(true),
  /**
   * A person marked deceased or inactive, or deleted, in the CRM is always unsubscribed in every
   * platform (the organisation's opt-out); `remove` also deletes (Constant Contact) or archives
   * (Mailchimp) their platform record. Neither leaves them sendable.
   */
  ended_crm_records: z.enum(["unsubscribe", "remove"]).default("unsubscribe"),
});
export type Policies = z.infer<typeof PoliciesSchema>;

export const ScheduleSchema = strictObject({
  /** Poll interval for the pair's connections that set none of their own. */
  poll_interval: durationSchema({ min: 1_000, max: 86_400_000 }).optional(),
  /** How often a full reconciliation re-reads everything to catch what events missed. */
  full_reconciliation: durationSchema({ min: 3_600_000, max: 30 * 86_400_000 }).default(86_400_000),
});
export type Schedule = z.infer<typeof ScheduleSchema>;

/**
 * CRM lists a platform follows by rule, not one by one (seeds 002 and 004): each CRM list the rule
 * selects gets a platform list of the same name (less the prefix), created once it has members,
 * renamed and (by policy) deleted with it; people are never deleted.
 */
export const ListSyncSchema = strictObject({
  platform: SlugSchema,
  crm_lists: strictObject({
    /** CRM lists whose name starts with this (the platform list drops it): "CC: Newsletter" → "Newsletter". */
    prefix: NonEmpty.max(100).optional(),
    /** Or these CRM lists by name. */
    names: z.array(NonEmpty.max(255)).min(1).max(500).optional(),
    /**
     * Or the CRM lists the CRM itself marks to synchronise with a newsletter platform (GrowthZone's
     * "Synchronize contacts with authorized third party newsletter"): set or cleared there.
     */
    newsletter_sync: z.literal(true).optional(),
  }).refine((s) => s.prefix !== undefined || s.names !== undefined || s.newsletter_sync !== undefined, {
    message: "expected a prefix, names or newsletter_sync: true to select the CRM lists, found none",
  }),
  direction: DirectionSchema.default("crm_to_platform"),
  /** What leaving a list does on the other side, as for audiences; never a deletion of the contact. */
  delete_policy: z.enum(["keep", "remove_membership"]).default("keep"),
  /** A CRM list renamed: rename its platform list too, or keep the old name. */
  on_rename: z.enum(["rename", "keep"]).default("rename"),
  /** A CRM list deleted: keep its platform list (the default), or delete that list — never its people. */
  on_delete: z.enum(["keep", "delete_platform_list"]).default("keep"),
});
export type ListSync = z.infer<typeof ListSyncSchema>;

export const PairSchema = strictObject({
  id: SlugSchema,
  crm: SlugSchema,
  platforms: z.array(PairPlatformSchema).min(1),
  audiences: z.array(AudienceSchema).default([]),
  list_sync: z.array(ListSyncSchema).default([]),
  fields: z.array(FieldMappingSchema).default([]),
  policies: PoliciesSchema.prefault({}),
  schedule: ScheduleSchema.prefault({}),
});
export type Pair = z.infer<typeof PairSchema>;

// ── notifications and server ──────────────────────────────────────────────────────────────────

const EmailAddressSchema = z.email({ error: "expected an email address such as ops@example.org" });

export const SmtpSchema = strictObject({
  host: NonEmpty,
  port: z.number().int().min(1).max(65_535).default(587),
  /** TLS from the first byte (port 465); otherwise STARTTLS is required. */
  secure: z.boolean().optional(),
  username: NonEmpty.optional(),
  password: SecretRefSchema.optional(),
  from: EmailAddressSchema,
  to: z.array(EmailAddressSchema).min(1),
});
export type Smtp = z.infer<typeof SmtpSchema>;

/** A webhook URL can carry its own token (Slack, Teams): then reference it like a secret. */
const NotificationUrlSchema = z.unknown().transform((input, ctx): CredentialValue => {
  // A string is a URL; anything else must be a secret reference, with that schema's messages.
  const parsed = typeof input === "string" ? UrlSchema.safeParse(input) : SecretRefSchema.safeParse(input);
  if (parsed.success)
    return typeof parsed.data === "string" ? { kind: "plain", value: parsed.data } : parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: issue.message, input });
  return z.NEVER;
});

/** When a problem is worth an alert (each is sent once per cause, and once more when it is fixed). */
export const AlertThresholdsSchema = strictObject({
  /** A system failing (5xx, timeouts, unreachable) this long. */
  outage: durationSchema({ min: 60_000, max: 7 * 86_400_000 }).default(1_800_000),
  /** An opt-out not yet applied in a system this long after it was planned. */
  stuck_opt_out: durationSchema({ min: 60_000, max: 7 * 86_400_000 }).default(3_600_000),
  /** An opt-out still pending this close to a legal clock's deadline. */
  clock_warning: durationSchema({ min: 60_000, max: 7 * 86_400_000 }).default(86_400_000),
});

export const NotificationsSchema = strictObject({
  webhook_urls: z.array(NotificationUrlSchema).default([]),
  email: SmtpSchema.optional(),
  log: z.literal(true, { error: "the log channel is always on: expected true or no log key" }).default(true),
  thresholds: AlertThresholdsSchema.prefault({}),
});

/** What the legal clocks count by: business days skip weekends and these holidays. */
const PERIOD_FORM = "a period such as 2 years, 6 months or 180 days";
/** A calendar period (`2 years`, `6 months`, `1 year 6 months`, `180 days`). */
const PeriodSchema = z.string().transform((text, ctx): CalendarPeriod => {
  const period = { years: 0, months: 0, days: 0 };
  const parts =
    text
      .trim()
      .toLowerCase()
      .match(/\d+\s*[a-z]+/g) ?? [];
  const rest = text
    .trim()
    .toLowerCase()
    .replace(/\d+\s*[a-z]+/g, "")
    .trim();
  for (const part of parts) {
    const m = /^(\d+)\s*(years?|y|months?|mo|days?|d)$/.exec(part);
    if (m === null) {
      parts.length = 0;
      break;
    }
    const n = Number(m[1]);
    const unit = m[2] ?? "";
    if (unit.startsWith("y")) period.years += n;
    else if (unit.startsWith("mo")) period.months += n;
    else period.days += n;
  }
  const total = period.years * 366 + period.months * 31 + period.days;
  if (parts.length === 0 || rest !== "" || total === 0 || total > 100 * 366) {
    ctx.addIssue({ code: "custom", message: `expected ${PERIOD_FORM}, found ${JSON.stringify(text)}` });
    return z.NEVER;
  }
  return period;
});

/**
 * A jurisdiction's rule for implied consent that lapses (CASL): whom it covers (by the country of
 * their CRM address), which topics (none: all email), and how long each ground lasts.
 */
export const ImpliedConsentRuleSchema = strictObject({
  name: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9_-]{0,39}$/,
      "expected a short name of lowercase letters, digits, _ or -, such as casl",
    ),
  countries: z
    .array(z.string().trim().min(1).max(100))
    .min(
      1,
      'expected the CRM address countries the rule covers, such as ["CA", "Canada"], or ["*"] for everyone',
    )
    .max(50),
  topics: z.array(TopicKeySchema).max(100).default([]),
  /** Implied consent from a donation or gift (CASL: 2 years). */
  donation: PeriodSchema.default({ years: 2, months: 0, days: 0 }),
  /** Implied consent from an inquiry or an account-made sign-up (CASL: 6 months). */
  inquiry: PeriodSchema.default({ years: 0, months: 6, days: 0 }),
});
export type ImpliedConsentRuleConfig = z.infer<typeof ImpliedConsentRuleSchema>;

export const ComplianceSchema = strictObject({
  holidays: z
    .array(z.iso.date({ error: "expected a date as YYYY-MM-DD, such as 2026-12-25" }))
    .max(1000)
    .default([]),
  /** Rules under which implied consent lapses (CASL); none by default. */
  implied_consent: z.array(ImpliedConsentRuleSchema).max(20).default([]),
  erasure: strictObject({
    /**
     * Connections whose records an erasure keeps (a duty to keep gift records, say): Concord erases
     * its own copy and refuses those records from then on, but does not delete them there.
     */
    keep_records_in: z.array(NonEmpty).max(100).default([]),
  }).prefault({}),
  /** How long Concord keeps what it no longer needs to act on. */
  retention: strictObject({
    /**
     * Webhook deliveries once processed or given up: what they announced (record ids, the event's
     * type and time, an announced opt-out's address) is deleted after this. Pending ones are kept
     * however old.
     */
    webhook_deliveries: durationSchema({ min: 3_600_000, max: 400 * 86_400_000 }).default(7 * 86_400_000),
  }).prefault({}),
});
export type Notifications = z.infer<typeof NotificationsSchema>;

export const ServerSchema = strictObject({
  port: z.number().int().min(1).max(65_535).default(8080),
  host: NonEmpty.default("127.0.0.1"),
  /** The address people and systems reach this server at: preference pages, one-click unsubscribe, webhook receivers. */
  public_url: UrlSchema.optional(),
  admin_password: SecretRefSchema.default({ kind: "env", name: "CONCORD_ADMIN_PASSWORD" }),
  body_limit: byteSizeSchema({ min: 1024, max: 64 * 1024 ** 2 }).default(1024 ** 2),
  /**
   * How long a personal link (one-click unsubscribe) stays valid after it is issued. CASL wants an
   * unsubscribe mechanism to work for at least 60 days after the message is sent.
   */
  link_ttl: durationSchema({ min: 60 * 86_400_000, max: 3650 * 86_400_000 }).default(400 * 86_400_000),
  /**
   * Behind a reverse proxy: which proxies' `X-Forwarded-For` to believe for the client's address
   * (sign-in limits, the sign-up form's limits, evidence): `true` (any: only when nothing else can
   * reach the server), a number of proxy hops, or the proxies' addresses and CIDR ranges.
   */
  trust_proxy: z
    .union([z.boolean(), z.number().int().min(1).max(10), z.array(NonEmpty.max(64)).min(1).max(50)])
    .default(false),
  /** A bearer token `/metrics` requires (`Authorization: Bearer …`); absent: /metrics is public. */
  metrics_token: SecretRefSchema.optional(),
});
export type Server = z.infer<typeof ServerSchema>;

/**
 * The sign-up form (`/l/signup`) and its confirmation email (double opt-in): the lawful way
 * (re)joining the organisation's email. A confirmed sign-up is the person's own express opt-in; a
 * new person is added to `connection` (an email platform), in `lists`.
 */
export const SignupSchema = strictObject({
  /** The organisation's name, as the form and the email say it. */
  organisation: NonEmpty.max(200),
  /** The email platform a new person is added to (one of the connections). */
  connection: SlugSchema,
  /** Lists of that platform a confirmed person joins, by id or name. */
  lists: z.array(ListRefSchema).max(20).default([]),
  /** Topics the form offers to choose from, by key; none set: every topic. */
  topics: z.array(TopicKeySchema).max(50).optional(),
  /** How long the confirmation link works. */
  confirm_within: durationSchema({ min: 3_600_000, max: 30 * 86_400_000 }).default(3 * 86_400_000),
  /** The SMTP server the confirmation email leaves through, and its sender. */
  smtp: SmtpSchema.omit({ to: true }),
  /** Sites that may show the form in a frame (their origins, https://…); none: only this server. */
  embed_origins: z
    .array(z.url({ protocol: /^https?$/, error: "expected a site's origin such as https://www.example.org" }))
    .max(20)
    .default([]),
  /** Sign-up requests accepted from one client address in an hour (beyond: refused, no email sent). */
  per_address_hourly: z.number().int().min(1).max(10_000).default(20),
});
export type Signup = z.infer<typeof SignupSchema>;

// ── the file ──────────────────────────────────────────────────────────────────────────────────

/** Every section's shape; ConcordConfigSchema (load-config-file.ts) adds the cross-reference checks. */
export const ConcordConfigShapeSchema = strictObject({
  version: z.literal(1).default(1),
  connections: z.array(ConnectionSchema).min(1),
  topics: z.array(TopicSchema).default([]),
  pairs: z.array(PairSchema).default([]),
  notifications: NotificationsSchema.prefault({}),
  compliance: ComplianceSchema.prefault({}),
  server: ServerSchema.prefault({}),
  signup: SignupSchema.optional(),
});
export type ConcordConfig = z.infer<typeof ConcordConfigShapeSchema>;

/** The keys of an object schema (a manifest's options), for messages. */
function optionShape(schema: z.ZodType): Record<string, unknown> {
  return (schema as unknown as { shape?: Record<string, unknown> }).shape ?? {};
}
