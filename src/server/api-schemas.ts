/**
 * The REST API's request and response shapes (zod, strict): the server validates with them, the
 * OpenAPI document at /openapi.json is generated from them, and the admin UI imports their types.
 * Every route lives under /api; every error is `ErrorBody` with a stable snake_case code.
 */
import { z } from "zod";

/** Where a request was wrong: `where` is params, query or body; `path` the field (dotted); `message` what was expected. */
export const RequestIssueSchema = z.strictObject({
  where: z.enum(["params", "query", "body"]),
  path: z.string(),
  message: z.string(),
});
export const ErrorBodySchema = z.strictObject({
  code: z.string(),
  message: z.string(),
  /** With `invalid_request`: every problem found. */
  issues: z.array(RequestIssueSchema).optional(),
});

/**
 * A whole number in a query string: decimal digits only. `z.coerce.number()` would take `0x10`
 * for 16, `1e2` for 100 and a blank for 0.
 */
const queryWholeNumber = (min: number, max: number, fallback: number) =>
  z.preprocess(
    (v) => (typeof v === "string" && /^[0-9]{1,9}$/.test(v) ? Number(v) : v),
    z
      .number({ error: `expected a whole number from ${min} to ${max} in decimal digits` })
      .int()
      .min(min)
      .max(max)
      .default(fallback),
  );

/** A path segment id (`/api/runs/:id`). */
export const IdParamsSchema = z.strictObject({ id: z.string().min(1).max(200) });

// ── session ──────────────────────────────────────────────────────────────────────────────────
export const LoginRequestSchema = z.strictObject({ password: z.string().min(1).max(1024) });
/** The CSRF token goes back in the `x-csrf-token` header of every state-changing request. */
export const SessionSchema = z.strictObject({ signed_in: z.boolean(), csrf_token: z.string().nullable() });

// ── overview ─────────────────────────────────────────────────────────────────────────────────
export const BudgetSchema = z.strictObject({
  used_today: z.number().int(),
  /** Null where the vendor sets no daily quota. */
  remaining: z.number().int().nullable(),
  daily_quota: z.number().int().nullable(),
  resets_at: z.string().nullable(),
  paused_until: z.string().nullable(),
  /** Calls in flight now, and the most the vendor allows at once. */
  in_flight: z.number().int(),
  max_concurrency: z.number().int(),
});

export const ConnectionOverviewSchema = z.strictObject({
  id: z.string(),
  system: z.string(),
  label: z.string().nullable(),
  role: z.enum(["crm", "email_platform"]),
  health: z.strictObject({
    status: z.enum(["ok", "degraded", "broken", "unknown"]),
    reason: z.string().nullable(),
    since: z.string().nullable(),
  }),
  budget: BudgetSchema,
  /** Operations planned for this connection and not yet applied (waiting on budget, health…). */
  queued_operations: z.number().int(),
  /** Whether Connect (OAuth 2) can authorise it from the UI. */
  can_connect: z.boolean(),
});

export const RunSummarySchema = z.strictObject({
  id: z.string(),
  kind: z.enum(["sync", "dry_run", "reconcile"]),
  pair_id: z.string().nullable(),
  status: z.enum(["running", "succeeded", "failed", "cancelled"]),
  started_at: z.string(),
  finished_at: z.string().nullable(),
  /** The run's stored summary (counts by stage); shape as written by the engine. */
  summary: z.unknown(),
});

export const PairOverviewSchema = z.strictObject({
  id: z.string(),
  crm: z.string(),
  platforms: z.array(z.strictObject({ connection: z.string(), topic: z.string().nullable() })),
  running: z.boolean(),
  last_run: RunSummarySchema.nullable(),
  /**
   * When a poll last found the pair's plan standing (nothing changed since the last run, nothing to
   * do) and so made no run; null when none has since that run.
   */
  last_checked_at: z.string().nullable(),
  /**
   * The contacts the pair's last whole plan covered (each linked to one of its connections at
   * least); null before its first.
   */
  contacts: z.number().int().nullable(),
  next_run_at: z.string().nullable(),
  poll_interval_ms: z.number().int(),
});

export const LagSchema = z.strictObject({
  /** Opt-outs applied in the window, from the person's act to the other system's confirmation. */
  count: z.number().int(),
  /**
   * Of those, acts made before the pair's first run (found by Concord's first read): their lag
   * counts from that run, since Concord could not have seen them earlier.
   */
  before_watch: z.number().int(),
  p50_ms: z.number().nullable(),
  p99_ms: z.number().nullable(),
  max_ms: z.number().nullable(),
  window_hours: z.number(),
});

export const LegalClockSchema = z.strictObject({
  name: z.string(),
  /** The clock in calendar time, for charts (10 business days shown as 14 calendar days). */
  limit_ms: z.number(),
  days: z.number().int(),
  unit: z.enum(["calendar_days", "business_days"]),
  /** Opt-outs applied in the window after their deadline (business days, `compliance.holidays`). */
  applied_late: z.number().int(),
  /** Opt-outs planned and not yet applied, and those of them close to or past the deadline. */
  pending: z.number().int(),
  due_soon: z.number().int(),
  breached: z.number().int(),
});

export const OverviewSchema = z.strictObject({
  connections: z.array(ConnectionOverviewSchema),
  pairs: z.array(PairOverviewSchema),
  propagation_lag: LagSchema,
  /** Mailbox providers: 2 days; CAN-SPAM and CASL: 10 business days (counted as 14 calendar days). */
  legal_clocks: z.array(LegalClockSchema),
  inbox_pending: z.number().int(),
  review_open: z.number().int(),
});

// ── runs and plans ───────────────────────────────────────────────────────────────────────────
export const RunsQuerySchema = z.strictObject({
  limit: queryWholeNumber(1, 200, 50),
  pair: z.string().min(1).max(200).optional(),
});
export const RunListSchema = z.strictObject({ runs: z.array(RunSummarySchema) });

/** A run with its stored plan (the engine's PlanSummary: operations, counts, gains, skipped, waiting). */
export const RunDetailSchema = z.strictObject({
  run: RunSummarySchema,
  plan: z
    .strictObject({
      id: z.string(),
      created_at: z.string(),
      summary: z.unknown(),
      /** Operations of this plan still waiting to be applied; 0: nothing of it is left (applied, or superseded by a later plan). */
      pending_operations: z.number().int(),
    })
    .nullable(),
  /** The plan's operations by status (pending, succeeded, failed, skipped). */
  outcomes: z.record(z.string(), z.number().int()),
  /** Names and addresses of the contacts the plan skips or waits for (at most 1,000), by contact id. */
  contacts: z.record(
    z.string(),
    z.strictObject({ name: z.string().nullable(), email: z.string().nullable() }),
  ),
});

export const SyncRequestSchema = z.strictObject({ dry_run: z.boolean().default(false) });
/** An erasure request: the person's address, who records it, the person's own request, preview or not. */
export const ErasureRequestSchema = z.strictObject({
  email: z.string().trim().min(3).max(320),
  requested_by: z.string().trim().min(1, "expected who records the request").max(200),
  reference: z.string().trim().min(1).max(500).optional(),
  dry_run: z.boolean().default(false),
  /** Erase every contact that holds the address; without it, several holders are refused (409). */
  all_holders: z.boolean().default(false),
});
/** An operator override: the person's written request to receive email again (all email, or one topic). */
export const OverrideRequestSchema = z.strictObject({
  topic: z.string().trim().min(1).max(64).optional(),
  request_reference: z.string().trim().max(500),
  request_text: z.string().trim().max(1000).optional(),
  requested_at: z.iso.datetime({
    offset: true,
    error:
      "expected when the person asked, an ISO-8601 date-time (2026-12-01T09:30:00Z): an override lifts only opt-outs made before it",
  }),
  recorded_by: z.string().trim().min(1, "expected who records the request").max(200),
});
export const OverrideResponseSchema = z.strictObject({
  event_id: z.string(),
  recorded: z.enum(["appended", "duplicate"]),
  lifted: z.array(z.string()),
  now: z.strictObject({ sendable: z.boolean(), rule: z.string() }),
});
/** A person's links (`concord links --json`): the one-click URL and the headers a sender puts on each email. */
export const PersonalLinksSchema = z.strictObject({
  contact_id: z.string(),
  one_click_url: z.string(),
  preferences_url: z.string(),
  list_unsubscribe: z.string(),
  list_unsubscribe_post: z.literal("List-Unsubscribe=One-Click"),
  expires_at: z.string(),
});
/** The engine's ErasureReport, as `concord erase --json` prints it. */
export const ErasureResponseSchema = z.strictObject({ report: z.unknown() });
/** The engine's SyncReport, as `concord sync --json` prints it. */
export const SyncResponseSchema = z.strictObject({ report: z.unknown() });
/**
 * The engine's ApplyStoredPlanReport: run_id, plan_id, status, operations executed, `stale` (the
 * plan's operations planning no longer yields, not executed), new_since_plan, execution.
 */
export const ApplyResponseSchema = z.strictObject({ report: z.unknown() });

// ── people ───────────────────────────────────────────────────────────────────────────────────
export const PeopleQuerySchema = z.strictObject({
  q: z.string().trim().min(1).max(200),
  limit: queryWholeNumber(1, 100, 25),
});
export const PersonHitSchema = z.strictObject({
  contact_id: z.string(),
  name: z.string().nullable(),
  email: z.string().nullable(),
  type: z.enum(["person", "organization"]),
});
export const PeopleSchema = z.strictObject({ people: z.array(PersonHitSchema) });
/**
 * One contact: `explainContact`'s view of it (timeline, states with rules, links with what each
 * system shows, review items, recent operations), its links, and its list memberships as last read.
 */
export const PersonSchema = z.strictObject({
  contact: z.strictObject({
    id: z.string(),
    type: z.enum(["person", "organization"]),
    name: z.string().nullable(),
    primary_email: z.string().nullable(),
    erased: z.boolean(),
  }),
  /** The engine's `Explanation`; null when the contact has no address (see `note`). */
  explanation: z.unknown(),
  note: z.string().nullable(),
  links: z.array(
    z.strictObject({
      connection_id: z.string(),
      external_id: z.string(),
      origin: z.string(),
      linked_at: z.string(),
    }),
  ),
  list_memberships: z.array(
    z.strictObject({
      connection_id: z.string(),
      external_id: z.string(),
      list_id: z.string(),
      list_name: z.string().nullable(),
      do_not_contact: z.boolean(),
    }),
  ),
});

// ── reconciliation ───────────────────────────────────────────────────────────────────────────
export const ReconcileRequestSchema = z.strictObject({
  fix: z.boolean().default(false),
  pair: z.string().min(1).max(200).optional(),
});

export const ScopeSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("global") }),
  z.strictObject({ kind: z.literal("topic"), topic: z.string() }),
]);
/** One opt-out difference (docs/sync.md: opt_out_missing, opt_in_missing, waiting_for_person…). */
export const DifferenceSchema = z.strictObject({
  kind: z.enum([
    "opt_out_missing",
    "opt_in_missing",
    "waiting_for_person",
    "platform_only_opt_out",
    "unlinked_opt_out_not_applied",
  ]),
  contact_id: z.string(),
  email: z.string().nullable(),
  connection_id: z.string(),
  scope: ScopeSchema,
  system_shows: z.string(),
  rules_say: z.string(),
  cause: z.string(),
  fixable: z.boolean(),
});
/** A pair's reconciliation as its run stored it. */
export const ReconciliationReportSchema = z.strictObject({
  pair_id: z.string(),
  run_id: z.string(),
  status: z.enum(["succeeded", "failed"]),
  finished_at: z.string().nullable(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  contacts_compared: z.number().int(),
  /** Opted-out people per connection, as each system shows them. */
  opt_outs_by_connection: z.record(z.string(), z.number().int()),
  differences: z.array(DifferenceSchema),
  /** With a fix: what the fix applied (the engine's ExecutionReport). */
  fixed: z.unknown(),
  /** With a fix: the differences left after it; null without one. */
  remaining: z.array(DifferenceSchema).nullable(),
});
/** The latest reconciliation of each pair (or the ones just run); `run_at` the newest; none yet: empty and null. */
export const ReconciliationSchema = z.strictObject({
  reports: z.array(ReconciliationReportSchema),
  run_at: z.string().nullable(),
});

// ── review queue ─────────────────────────────────────────────────────────────────────────────
export const ReviewItemSchema = z.strictObject({
  id: z.string(),
  kind: z.enum(["ambiguous_identity", "conflict"]),
  status: z.enum(["open", "resolved", "dismissed"]),
  contact_id: z.string().nullable(),
  connection_id: z.string().nullable(),
  external_id: z.string().nullable(),
  detail: z.unknown(),
  resolution: z.unknown(),
  created_at: z.string(),
  resolved_at: z.string().nullable(),
});
export const ReviewQuerySchema = z.strictObject({
  status: z.enum(["open", "resolved", "dismissed"]).default("open"),
  limit: queryWholeNumber(1, 500, 100),
});
export const ReviewListSchema = z.strictObject({ items: z.array(ReviewItemSchema) });
/**
 * Resolve an ambiguous identity: link the record to one of the candidate contacts, or keep it as a
 * contact of its own; or dismiss the item.
 */
export const ReviewResolveSchema = z.discriminatedUnion("action", [
  z.strictObject({ action: z.literal("link"), contact_id: z.string().min(1).max(200) }),
  z.strictObject({ action: z.literal("separate") }),
  z.strictObject({ action: z.literal("dismiss"), note: z.string().max(1000).optional() }),
]);
/** The resolved item; `reread` says whether the record was read again so its consent now counts. */
export const ReviewResolvedSchema = z.strictObject({
  item: ReviewItemSchema,
  reread: z.strictObject({ ok: z.boolean(), message: z.string().nullable() }).nullable(),
});

// ── charts ───────────────────────────────────────────────────────────────────────────────────
/** A compliance report's period: the last `days` days up to now (default 30). */
export const ComplianceQuerySchema = z.strictObject({
  days: queryWholeNumber(1, 366, 30),
});
const LagDaysSchema = z.number().nullable();
export const ComplianceReportSchema = z.strictObject({
  from: z.string(),
  to: z.string(),
  generated_at: z.string(),
  clocks: z.array(
    z.strictObject({
      key: z.enum(["mailbox_providers", "can_spam", "casl"]),
      name: z.string(),
      days: z.number(),
      unit: z.enum(["calendar_days", "business_days"]),
      applied: z.number().int(),
      lag_days: z.strictObject({
        p50: LagDaysSchema,
        p90: LagDaysSchema,
        p99: LagDaysSchema,
        max: LagDaysSchema,
      }),
      applied_late: z.number().int(),
      pending: z.number().int(),
      pending_breached: z.number().int(),
    }),
  ),
});
export type ComplianceReportView = z.infer<typeof ComplianceReportSchema>;
export const DailyQuerySchema = z.strictObject({
  days: queryWholeNumber(1, 90, 14),
});
export const DailySeriesSchema = z.strictObject({
  days: z.array(
    z.strictObject({
      /** UTC day, YYYY-MM-DD; oldest first, today last. */
      date: z.string(),
      /** Operations applied that day (a succeeded outcome), by operation kind. */
      operations: z.record(z.string(), z.number().int()),
      opt_outs_applied: z.number().int(),
      lag_p50_ms: z.number().nullable(),
      lag_p99_ms: z.number().nullable(),
      /** Vendor API calls by connection, counted by this process since it started (budget use). */
      api_calls: z.record(z.string(), z.number().int()),
    }),
  ),
});

export type ErrorBody = z.infer<typeof ErrorBodySchema>;
export type Session = z.infer<typeof SessionSchema>;
export type Overview = z.infer<typeof OverviewSchema>;
export type ConnectionOverview = z.infer<typeof ConnectionOverviewSchema>;
export type PairOverview = z.infer<typeof PairOverviewSchema>;
export type RunSummary = z.infer<typeof RunSummarySchema>;
export type RunDetail = z.infer<typeof RunDetailSchema>;
export type PersonHit = z.infer<typeof PersonHitSchema>;
export type ReviewItem = z.infer<typeof ReviewItemSchema>;
export type ReviewResolve = z.infer<typeof ReviewResolveSchema>;
export type Person = z.infer<typeof PersonSchema>;
export type Difference = z.infer<typeof DifferenceSchema>;
export type ReconciliationReport = z.infer<typeof ReconciliationReportSchema>;
export type Reconciliation = z.infer<typeof ReconciliationSchema>;
export type DailySeries = z.infer<typeof DailySeriesSchema>;
