/**
 * What the config layer must know about each supported system to validate a file: its role, the
 * credentials it takes, its published call limits, whether it pushes changes, and what one poll costs.
 * Connectors own the behaviour; this table only lets a config be checked without loading them.
 */
import { z } from "zod";

export const SYSTEM_IDS = ["constant-contact", "blackbaud-renxt"] as const;
export const SystemIdSchema = z.enum(SYSTEM_IDS);
export type SystemId = z.infer<typeof SystemIdSchema>;

export type SystemRole = "crm" | "email_platform";
export type CredentialKey = "client_id" | "client_secret" | "refresh_token" | "subscription_key";

export type SystemProfile = {
  label: string;
  role: SystemRole;
  credentials: readonly CredentialKey[];
  limits: { requests_per_second: number; daily_quota: number };
  /** For a CRM: whether consent is kept per category, so every topic needs the CRM's category name. */
  consent_categories: boolean;
  /** Whether the system pushes contact and consent changes (so `webhooks.enabled` means something). */
  webhooks: boolean;
  /** Calls one poll cycle costs when nothing changed: the floor of what polling spends. */
  calls_per_poll: number;
  /** How often to poll when neither the connection nor its pair says. */
  default_poll_interval_ms: number;
  default_base_url: string;
  default_token_url: string;
};

export const SYSTEMS: Readonly<Record<SystemId, SystemProfile>> = {
  // reference/apis.md §1: 4 requests/s and 10,000/day, reset at 00:00 UTC; no contact webhooks for
  // ordinary apps, so it is polled (contacts updated since, unsubscribed since).
  "constant-contact": {
    label: "Constant Contact",
    role: "email_platform",
    credentials: ["client_id", "client_secret", "refresh_token"],
    limits: { requests_per_second: 4, daily_quota: 10_000 },
    consent_categories: false,
    webhooks: false,
    calls_per_poll: 2,
    default_poll_interval_ms: 60_000,
    default_base_url: "https://api.cc.email/v3",
    default_token_url: "https://authz.constantcontact.com/oauth2/default/v1/token",
  },
  // reference/apis.md §3: 5 calls/s and 25,000/day on the customer tier (partner tier: 100,000 per
  // connection, set limits.daily_quota); CloudEvents webhooks with a few minutes of latency, so it
  // is polled as well (constituents, email addresses, consents modified since).
  "blackbaud-renxt": {
    label: "Raiser's Edge NXT",
    role: "crm",
    credentials: ["client_id", "client_secret", "refresh_token", "subscription_key"],
    limits: { requests_per_second: 5, daily_quota: 25_000 },
    consent_categories: true,
    webhooks: true,
    calls_per_poll: 3,
    default_poll_interval_ms: 300_000,
    default_base_url: "https://api.sky.blackbaud.com",
    default_token_url: "https://oauth2.sky.blackbaud.com/token",
  },
};

/** Polling may spend at most this share of the daily quota; the rest is for writes and reconciliation. */
export const POLLING_QUOTA_SHARE = 0.5;

/**
 * The shortest poll interval a connection's daily quota allows, rounded up to whole seconds:
 * a poll every `interval` costs `calls_per_poll * 86 400 s / interval` calls a day.
 */
export function minPollIntervalMs(system: SystemId, dailyQuota: number): number {
  const budget = dailyQuota * POLLING_QUOTA_SHARE;
  const seconds = Math.ceil((86_400 * SYSTEMS[system].calls_per_poll) / budget);
  return Math.max(1, seconds) * 1000;
}

/** Calls a day polling at `intervalMs` costs. */
export const pollingCallsPerDay = (system: SystemId, intervalMs: number): number =>
  Math.ceil((86_400_000 / intervalMs) * SYSTEMS[system].calls_per_poll);
