/**
 * The database schema as kysely table types: one description shared by SQLite and PostgreSQL.
 *
 * Portable column types only: text ids, ISO-8601 UTC text timestamps, JSON as text (`*_json`),
 * integers for counters and flags. See docs/store.md for why.
 */

import type { Generated } from "kysely";

/** ISO-8601 UTC text, e.g. `2025-01-31T12:00:00.000Z`. Concord writes `Date#toISOString()` form. */
export type IsoTimestamp = string;

export interface ContactsTable {
  id: string;
  type: string;
  given_name: string | null;
  family_name: string | null;
  organization_name: string | null;
  primary_email: string | null;
  email_match_key: string | null;
  flags_json: string;
  created_at: IsoTimestamp;
  updated_at: IsoTimestamp;
  erased_at: IsoTimestamp | null;
  /** Moves on (by triggers) whenever a row the contact is planned from is written (ADR 30). */
  plan_rev: Generated<number>;
  // Also, by dialect, where the contact's last change lies in the store's commit order:
  // `changed_seq` (SQLite) or `changed_xid` (PostgreSQL), read only by store/change-order.ts (ADR 34).
}

export interface ContactEmailsTable {
  contact_id: string;
  match_key: string;
  email: string;
  created_at: IsoTimestamp;
}

export interface LinksTable {
  connection_id: string;
  external_id: string;
  contact_id: string;
  /** How the link was made: `observed` (a new contact from this record), `matched_by_email`, `concord` (Concord made the record). */
  origin: string;
  created_at: IsoTimestamp;
  updated_at: IsoTimestamp;
}

/** A record Concord's import is about to make on a connection, claimed as Concord's once linked. */
export interface ImportClaimsTable {
  connection_id: string;
  contact_id: string;
  created_at: IsoTimestamp;
}

export interface RecordSnapshotsTable {
  connection_id: string;
  external_id: string;
  content_hash: string;
  payload_json: string;
  observed_at: IsoTimestamp;
}

export interface BaselinesTable {
  contact_id: string;
  pair_id: string;
  values_json: string;
  run_id: string | null;
  updated_at: IsoTimestamp;
}

export interface CheckpointsTable {
  connection_id: string;
  stream: string;
  value_json: string;
  updated_at: IsoTimestamp;
}

export interface ConsentEventsTable {
  seq: number;
  id: string;
  contact_id: string;
  occurred_at: string;
  observed_at: string;
  /** Canonical JSON of the event without its evidence: what the chain covers directly. */
  event_json: string;
  /** Canonical JSON of the evidence; `{}` once erased. */
  evidence_json: string;
  evidence_digest: string;
  evidence_erased_at: IsoTimestamp | null;
  recorded_at: IsoTimestamp;
  prev_hash: string;
  hash: string;
  /** `<key id>:<hex>`: a MAC of `hash` under the ledger key (outside the database); null when written without one. */
  seal: string | null;
}

/** One row `/readyz` writes to, proving the store takes writes. */
export interface StoreProbeTable {
  id: string;
  checked_at: IsoTimestamp;
}

export interface ConsentLedgerHeadTable {
  id: string;
  seq: number;
  hash: string;
}

export interface SuppressionsTable {
  address_hash: string;
  reason: string;
  contact_id: string | null;
  created_at: IsoTimestamp;
}

export interface RunsTable {
  id: string;
  kind: string;
  pair_id: string | null;
  status: string;
  started_at: IsoTimestamp;
  finished_at: IsoTimestamp | null;
  summary_json: string | null;
}

export interface PlansTable {
  id: string;
  run_id: string;
  pair_id: string | null;
  plan_json: string;
  counts_json: string;
  created_at: IsoTimestamp;
}

export interface OperationsTable {
  id: string;
  plan_id: string;
  kind: string;
  target_connection: string;
  contact_id: string | null;
  payload_json: string;
  status: string;
  created_at: IsoTimestamp;
  updated_at: IsoTimestamp;
}

export interface OutcomesTable {
  operation_id: string;
  attempt: number;
  status: string;
  detail_json: string;
  retry_at: IsoTimestamp | null;
  recorded_at: IsoTimestamp;
}

export interface ReviewItemsTable {
  id: string;
  key: string;
  kind: string;
  status: string;
  contact_id: string | null;
  connection_id: string | null;
  external_id: string | null;
  detail_json: string;
  resolution_json: string | null;
  created_at: IsoTimestamp;
  resolved_at: IsoTimestamp | null;
}

export interface ConnectionsHealthTable {
  connection_id: string;
  status: string;
  reason: string | null;
  since: IsoTimestamp;
  checked_at: IsoTimestamp;
}

export interface CredentialsTable {
  connection_id: string;
  ciphertext: string;
  key_id: string | null;
  updated_at: IsoTimestamp;
}

/** A webhook delivery stored before it is acknowledged; `processed_at` is set once it was acted on. */
export interface WebhookInboxTable {
  id: string;
  connection_id: string;
  received_at: IsoTimestamp;
  changes_json: string;
  attempts: number;
  last_error: string | null;
  processed_at: IsoTimestamp | null;
  /** A failed delivery is not tried again before this. */
  next_attempt_at: IsoTimestamp | null;
  /** When it was given up (a dead letter): its records are left to the next poll. */
  dead_at: IsoTimestamp | null;
}

/** A connection's API budget: calls used since `period_start` (its quota period), and a vendor's stated block. */
export interface ApiBudgetsTable {
  connection_id: string;
  period_start: IsoTimestamp;
  used: number;
  blocked_until: IsoTimestamp | null;
  /** Until when the vendor asked for no calls at all (a per-second limit hit); every process holds back. */
  paused_until: IsoTimestamp | null;
  /**
   * The times (epoch ms, JSON array, ascending) of the latest calls any process made or reserved,
   * at most as many as the per-second limit: the shared per-second window.
   */
  recent_calls: string | null;
  updated_at: IsoTimestamp;
}

/** A Connect waiting for the vendor's answer, by the SHA-256 of its state (the state is only in the URL). */
export interface ConnectFlowsTable {
  state_hash: string;
  connection_id: string;
  /** SHA-256 of the secret in the starting browser's cookie. */
  browser_hash: string;
  redirect_uri: string;
  /** The PKCE verifier, where the vendor takes PKCE: useless without the code only the vendor gives. */
  verifier: string | null;
  expires_at: IsoTimestamp;
}

/** An operator's sign-in session, by the SHA-256 of its id (the id itself is only in the cookie). */
export interface SessionsTable {
  id_hash: string;
  csrf_token: string;
  created_at: IsoTimestamp;
  last_seen: IsoTimestamp;
}

/** A client group's failed sign-ins (an IPv4 address, or an IPv6 /64). */
export interface SignInFailuresTable {
  client_group: string;
  failures: number;
  last_at: IsoTimestamp;
}

/** Failed sign-ins from everyone in a window of ten seconds. */
export interface SignInFailureWindowsTable {
  window_start: IsoTimestamp;
  failures: number;
}

/** An alert raised once per cause (`key`) and open until the cause is fixed. */
export interface AlertsTable {
  key: string;
  connection_id: string | null;
  code: string;
  message: string;
  opened_at: IsoTimestamp;
  resolved_at: IsoTimestamp | null;
}

/** An address a platform refused for good (its own rules), per contact and connection. */
export interface PlatformRejectionsTable {
  contact_id: string;
  connection_id: string;
  email_match_key: string;
  code: string;
  message: string;
  rejected_at: IsoTimestamp;
}

/**
 * What a whole-pair plan made of a contact (ADR 29, 30, 31): the key of the pair's settings it was
 * planned under, the contact's `plan_rev` when its rows were read, what it added to the plan (its
 * operations, bulk places, waits, unlinked opt-outs and skipped records, JSON), and when time alone
 * could change that (null: never).
 */
export interface PlanMarksTable {
  pair_id: string;
  contact_id: string;
  plan_key: string;
  plan_rev: number;
  outcome_json: string;
  valid_until: IsoTimestamp | null;
}

/** Instance-wide settings: the suppression list's salt. */
export interface SettingsTable {
  key: string;
  value: string;
  updated_at: IsoTimestamp;
}

/** One erasure request and what each system did; keyed hashes and ids only, no personal data. */
export interface ErasuresTable {
  id: string;
  address_hashes_json: string;
  contact_ids_json: string;
  requested_by: string;
  reference: string | null;
  /** `completed` once every system erased or kept the person; `incomplete` while one failed. */
  status: string;
  systems_json: string;
  requested_at: IsoTimestamp;
  completed_at: IsoTimestamp | null;
}

/** A contact's personal-link generation: links issued under an older one are revoked. */
export interface LinkGenerationsTable {
  contact_id: string;
  generation: number;
  revoked_at: IsoTimestamp;
}

/** A sign-up waiting for, or done with, its confirmation (`status`: pending, confirmed, expired). */
export interface SignupsTable {
  id: string;
  /** SHA-256 of the confirmation token; the token itself is only in the email. */
  token_hash: string;
  email: string;
  match_key: string;
  first_name: string | null;
  last_name: string | null;
  topics_json: string;
  lang: string;
  /** What the form said when the person sent it: kept with their opt-in as evidence. */
  wording: string;
  request_ip: string | null;
  /** The request's client group (`clientGroup`: the IPv4 address, or the IPv6 /64) for its limit. */
  request_client: string | null;
  request_user_agent: string | null;
  requested_at: IsoTimestamp;
  expires_at: IsoTimestamp;
  status: string;
  confirmed_at: IsoTimestamp | null;
  contact_id: string | null;
  /** When the person was added to the sign-up platform (or found there); null while that waits. */
  placed_at: IsoTimestamp | null;
  place_error: string | null;
  place_attempted_at: IsoTimestamp | null;
}

export interface Database {
  contacts: ContactsTable;
  contact_emails: ContactEmailsTable;
  links: LinksTable;
  import_claims: ImportClaimsTable;
  record_snapshots: RecordSnapshotsTable;
  baselines: BaselinesTable;
  checkpoints: CheckpointsTable;
  consent_events: ConsentEventsTable;
  consent_ledger_head: ConsentLedgerHeadTable;
  suppressions: SuppressionsTable;
  runs: RunsTable;
  plans: PlansTable;
  operations: OperationsTable;
  outcomes: OutcomesTable;
  review_items: ReviewItemsTable;
  connections_health: ConnectionsHealthTable;
  credentials: CredentialsTable;
  webhook_inbox: WebhookInboxTable;
  api_budgets: ApiBudgetsTable;
  alerts: AlertsTable;
  platform_rejections: PlatformRejectionsTable;
  plan_marks: PlanMarksTable;
  settings: SettingsTable;
  erasures: ErasuresTable;
  link_generations: LinkGenerationsTable;
  signups: SignupsTable;
  store_probe: StoreProbeTable;
  sessions: SessionsTable;
  sign_in_failures: SignInFailuresTable;
  sign_in_failure_windows: SignInFailureWindowsTable;
  connect_flows: ConnectFlowsTable;
}
