/**
 * The store's ports: the typed repositories and the `Store` handle the rest of Concord programs
 * against. One SQL implementation (src/store/sql) serves SQLite and PostgreSQL.
 */
import type { Kysely, RawBuilder } from "kysely";
import { z } from "zod";
import type { ConnectFlowsTable, ConsentEventsTable, Database, IsoTimestamp, SessionsTable } from "./schema";
import type { CallWindow } from "../core/call-window";

/** Any JSON value; JSON columns are parsed with this (or a stricter schema) when read. */
export const JsonValueSchema = z.json();
export type JsonValue = z.infer<typeof JsonValueSchema>;

export const StoreDialectSchema = z.enum(["sqlite", "postgres"]);
export type StoreDialect = z.infer<typeof StoreDialectSchema>;

// ---------------------------------------------------------------------------------------------
// Contacts and identity

export const ContactTypeSchema = z.enum(["person", "organization"]);
export type ContactType = z.infer<typeof ContactTypeSchema>;

/** Flags are open-ended snake_case words (`do_not_contact`, `deceased`…) owned by core eligibility. */
export const ContactFlagsSchema = z.array(z.string().regex(/^[a-z][a-z0-9_]*$/));

export type Contact = {
  id: string;
  type: ContactType;
  given_name: string | null;
  family_name: string | null;
  organization_name: string | null;
  primary_email: string | null;
  /** Normalised primary email, computed by core identity; the key new records are matched by. */
  email_match_key: string | null;
  flags: string[];
  created_at: IsoTimestamp;
  updated_at: IsoTimestamp;
  erased_at: IsoTimestamp | null;
};

export type NewContact = {
  id?: string;
  type: ContactType;
  given_name?: string | null;
  family_name?: string | null;
  organization_name?: string | null;
  primary_email?: string | null;
  email_match_key?: string | null;
  flags?: readonly string[];
};

export type ContactPatch = Partial<Omit<NewContact, "id">>;

export type ContactEmail = { contact_id: string; email: string; match_key: string; created_at: IsoTimestamp };

export interface ContactRepository {
  create(input: NewContact): Promise<Contact>;
  get(id: string): Promise<Contact | undefined>;
  update(id: string, patch: ContactPatch): Promise<Contact | undefined>;
  /** Contacts whose primary or secondary address has this match key (several means: review, don't guess). */
  findByMatchKey(match_key: string): Promise<Contact[]>;
  /** `findByMatchKey` for many keys at once: each key's contacts, in id order (a key none holds is absent). */
  findByMatchKeys(match_keys: readonly string[]): Promise<Map<string, Contact[]>>;
  addEmail(contact_id: string, email: string, match_key: string): Promise<void>;
  emails(contact_id: string): Promise<ContactEmail[]>;
  /** Blanks personal fields and secondary addresses, keeps the row (links and ledger refer to it). */
  erase(id: string): Promise<boolean>;
  /** Which of `ids` are contacts Concord erased (an id no contact has is not among them). */
  erasedAmong(ids: readonly string[]): Promise<Set<string>>;
}

export const LinkOriginSchema = z.enum(["observed", "matched_by_email", "concord"]);
/** `observed`: the record made a new contact; `matched_by_email`: linked by its address; `concord`: Concord made the record. */
export type LinkOrigin = z.infer<typeof LinkOriginSchema>;

export type Link = {
  connection_id: string;
  external_id: string;
  contact_id: string;
  origin: LinkOrigin;
  created_at: IsoTimestamp;
  updated_at: IsoTimestamp;
};

export type NewLink = { connection_id: string; external_id: string; contact_id: string; origin?: LinkOrigin };

export type LinkCreateResult =
  | { kind: "created"; link: Link }
  /** The external record is already linked (perhaps to another contact): an expected outcome, not a bug. */
  | { kind: "conflict"; code: "link_exists"; existing: Link };

export interface LinkRepository {
  create(link: NewLink): Promise<LinkCreateResult>;
  find(connection_id: string, external_id: string): Promise<Link | undefined>;
  forContact(contact_id: string): Promise<Link[]>;
  /** `find` for many records of one connection: the links found, by external id. */
  findMany(connection_id: string, external_ids: readonly string[]): Promise<Map<string, Link>>;
  /** `forContact` for many contacts: each contact's links (a contact with none is absent). */
  forContacts(contact_ids: readonly string[]): Promise<Map<string, Link[]>>;
  /** Points an existing link at another contact (a merge); false when there was no such link. */
  moveTo(connection_id: string, external_id: string, contact_id: string): Promise<boolean>;
  remove(connection_id: string, external_id: string): Promise<boolean>;
  /**
   * Marks a contact's links on a connection made by address match as made by Concord (its import
   * created them), and drops the claims `intendClaims` stored for them, with any older than
   * `CLAIM_LIFETIME_MS` on the connection (an import whose record never appeared).
   */
  claim(connection_id: string, contact_ids: readonly string[]): Promise<number>;
  /**
   * Stores, before an import is sent, that the records it makes for these contacts are Concord's:
   * whichever read later links one by its address (`create` with `matched_by_email`) links it as
   * `concord` and spends the claim. It survives a crash between the import and the read back. A
   * claim on an item the platform refused is kept until it expires: linking a later record of the
   * person's as Concord's only carries its opt-outs and counts no sign-up, the cautious side.
   */
  intendClaims(connection_id: string, contact_ids: readonly string[]): Promise<void>;
}

/** How long a claim waits for its record to be linked (the read back of an import, or the next polls). */
export const CLAIM_LIFETIME_MS = 7 * 24 * 3600_000;

// ---------------------------------------------------------------------------------------------
// Sync state

export type RecordSnapshot = {
  connection_id: string;
  external_id: string;
  content_hash: string;
  payload: JsonValue;
  /** When this content was first seen; an unchanged re-read does not move it. */
  observed_at: IsoTimestamp;
};

export type NewRecordSnapshot = Omit<RecordSnapshot, "observed_at"> & { observed_at?: IsoTimestamp };

export interface SnapshotRepository {
  /** Stores the record's latest content; `changed: false` when its hash equals the stored one. */
  put(snapshot: NewRecordSnapshot): Promise<{ changed: boolean }>;
  get(connection_id: string, external_id: string): Promise<RecordSnapshot | undefined>;
  /** `get` for many records of one connection: the snapshots found, by external id. */
  getMany(connection_id: string, external_ids: readonly string[]): Promise<Map<string, RecordSnapshot>>;
}

export type Baseline = {
  contact_id: string;
  pair_id: string;
  values: JsonValue;
  run_id: string | null;
  updated_at: IsoTimestamp;
};

export interface BaselineRepository {
  put(baseline: {
    contact_id: string;
    pair_id: string;
    values: JsonValue;
    run_id?: string | null;
  }): Promise<void>;
  /** `put` for many at once (a few statements rather than one a contact). */
  putMany(
    baselines: readonly { contact_id: string; pair_id: string; values: JsonValue; run_id?: string | null }[],
  ): Promise<void>;
  get(contact_id: string, pair_id: string): Promise<Baseline | undefined>;
}

export type Checkpoint = {
  connection_id: string;
  stream: string;
  value: JsonValue;
  updated_at: IsoTimestamp;
};

/** Advance checkpoints only inside the transaction that writes the data they cover (`store.transaction`). */
export interface CheckpointRepository {
  get(connection_id: string, stream: string): Promise<Checkpoint | undefined>;
  set(connection_id: string, stream: string, value: JsonValue): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Consent ledger rows (the chain semantics live in src/ledger)

/** A ledger row exactly as stored (the table's columns). */
export type ConsentEventRow = ConsentEventsTable;

export type LedgerHead = { seq: number; hash: string };

/** Seals ledger rows with a key the database does not hold (src/ledger/ledger-seal.ts makes one). */
export type LedgerSealer = {
  /** The key's public id, the prefix of every seal it makes. */
  readonly key_id: string;
  seal(hash: string): string;
};

export interface ConsentEventRepository {
  /** Locks the chain head until the transaction ends and returns it; throws outside a transaction. */
  lockHead(): Promise<LedgerHead>;
  readHead(): Promise<LedgerHead>;
  setHead(head: LedgerHead): Promise<void>;
  insert(rows: readonly ConsentEventRow[]): Promise<void>;
  findByIds(ids: readonly string[]): Promise<ConsentEventRow[]>;
  /** Rows with `seq > after_seq` in seq order, at most `limit`; the unit of every streaming read. */
  page(after_seq: number, limit: number, filter?: { contact_id?: string }): Promise<ConsentEventRow[]>;
  forContact(contact_id: string): Promise<ConsentEventRow[]>;
  /**
   * Replaces the evidence of a contact's events up to `through_seq` with `blank_evidence_json`;
   * returns the rows changed.
   */
  eraseEvidence(contact_id: string, blank_evidence_json: string, through_seq: number): Promise<number>;
  /** Rows with seq in (after_seq, until_seq] that have no seal, in order, at most `limit`. */
  unsealed(after_seq: number, until_seq: number, limit: number): Promise<ConsentEventRow[]>;
  setSeal(seq: number, seal: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Erasure

export type Suppression = {
  /** A keyed hash (HMAC) of the normalised address, computed by the caller; never the address. */
  address_hash: string;
  reason: string;
  contact_id: string | null;
  created_at: IsoTimestamp;
};

export interface SuppressionRepository {
  add(suppression: {
    address_hash: string;
    reason: string;
    contact_id?: string | null;
  }): Promise<{ added: boolean }>;
  has(address_hash: string): Promise<boolean>;
  /** The subset of `address_hashes` that is suppressed. */
  suppressed(address_hashes: readonly string[]): Promise<Set<string>>;
}

// ---------------------------------------------------------------------------------------------
// Runs, plans, operations, outcomes

export const RunKindSchema = z.enum(["sync", "dry_run", "reconcile"]);
export type RunKind = z.infer<typeof RunKindSchema>;
export const RunStatusSchema = z.enum(["running", "succeeded", "failed", "cancelled"]);
export type RunStatus = z.infer<typeof RunStatusSchema>;

export type Run = {
  id: string;
  kind: RunKind;
  pair_id: string | null;
  status: RunStatus;
  started_at: IsoTimestamp;
  finished_at: IsoTimestamp | null;
  summary: JsonValue | null;
};

export interface RunRepository {
  create(run: { id?: string; kind: RunKind; pair_id?: string | null }): Promise<Run>;
  finish(id: string, status: Exclude<RunStatus, "running">, summary?: JsonValue): Promise<Run | undefined>;
  get(id: string): Promise<Run | undefined>;
  /**
   * Marks runs still `running` that started before `startedBefore` as failed (`interrupted`): the
   * service calls it as it starts, when no run of its own is under way; a worker calls it for one
   * pair while it holds that pair's lock (no other process can be running it). Returns their ids.
   */
  interruptRunning(startedBefore: IsoTimestamp, options?: { pair_id?: string }): Promise<string[]>;
}

export const PlanCountsSchema = z.record(z.string(), z.number().int().nonnegative());
export type PlanCounts = z.infer<typeof PlanCountsSchema>;

export type StoredPlan = {
  id: string;
  run_id: string;
  pair_id: string | null;
  /** The planner's plan document; the planner parses it with its own schema. */
  plan: JsonValue;
  counts: PlanCounts;
  created_at: IsoTimestamp;
};

export interface PlanRepository {
  save(plan: {
    id?: string;
    run_id: string;
    pair_id?: string | null;
    plan: JsonValue;
    counts: PlanCounts;
  }): Promise<StoredPlan>;
  get(id: string): Promise<StoredPlan | undefined>;
  forRun(run_id: string): Promise<StoredPlan[]>;
}

export const OperationStatusSchema = z.enum(["pending", "succeeded", "failed", "skipped"]);
export type OperationStatus = z.infer<typeof OperationStatusSchema>;

export type Operation = {
  /** Deterministic (`op_…` from the planner) so a retried plan never duplicates an operation. */
  id: string;
  plan_id: string;
  kind: string;
  target_connection: string;
  contact_id: string | null;
  payload: JsonValue;
  status: OperationStatus;
  created_at: IsoTimestamp;
  updated_at: IsoTimestamp;
};

export type NewOperation = {
  id: string;
  plan_id: string;
  kind: string;
  target_connection: string;
  contact_id?: string | null;
  payload: JsonValue;
};

export interface OperationRepository {
  /** Inserts operations whose id is new; existing ids are left alone (idempotent replays). */
  insertMany(operations: readonly NewOperation[]): Promise<{ inserted: number }>;
  get(id: string): Promise<Operation | undefined>;
  forPlan(plan_id: string, status?: OperationStatus): Promise<Operation[]>;
  setStatus(id: string, status: OperationStatus): Promise<boolean>;
}

export const OutcomeStatusSchema = z.enum(["succeeded", "retry", "permanent_error", "skipped"]);
export type OutcomeStatus = z.infer<typeof OutcomeStatusSchema>;

export type Outcome = {
  operation_id: string;
  attempt: number;
  status: OutcomeStatus;
  detail: JsonValue;
  retry_at: IsoTimestamp | null;
  recorded_at: IsoTimestamp;
};

export interface OutcomeRepository {
  /** Records the next attempt's outcome (attempt numbers start at 1). */
  record(outcome: {
    operation_id: string;
    status: OutcomeStatus;
    detail: JsonValue;
    retry_at?: IsoTimestamp | null;
  }): Promise<Outcome>;
  forOperation(operation_id: string): Promise<Outcome[]>;
}

// ---------------------------------------------------------------------------------------------
// Review queue, connection health, credentials

export const ReviewKindSchema = z.enum(["ambiguous_identity", "conflict"]);
export type ReviewKind = z.infer<typeof ReviewKindSchema>;
export const ReviewStatusSchema = z.enum(["open", "resolved", "dismissed"]);
export type ReviewStatus = z.infer<typeof ReviewStatusSchema>;

export type ReviewItem = {
  id: string;
  /** Dedupe key chosen by the caller, so re-running a sync never opens the same item twice. */
  key: string;
  kind: ReviewKind;
  status: ReviewStatus;
  contact_id: string | null;
  connection_id: string | null;
  external_id: string | null;
  detail: JsonValue;
  resolution: JsonValue | null;
  created_at: IsoTimestamp;
  resolved_at: IsoTimestamp | null;
};

export type NewReviewItem = {
  key: string;
  kind: ReviewKind;
  contact_id?: string | null;
  connection_id?: string | null;
  external_id?: string | null;
  detail: JsonValue;
};

export interface ReviewRepository {
  open(item: NewReviewItem): Promise<{ kind: "opened" | "existing"; item: ReviewItem }>;
  list(status?: ReviewStatus, limit?: number): Promise<ReviewItem[]>;
  /** Closes an open item with its resolution; undefined when there is none, or it is closed already. */
  resolve(
    id: string,
    status: Exclude<ReviewStatus, "open">,
    resolution: JsonValue,
  ): Promise<ReviewItem | undefined>;
}

export const HealthStatusSchema = z.enum(["ok", "degraded", "broken"]);
export type HealthStatus = z.infer<typeof HealthStatusSchema>;

export type ConnectionHealth = {
  connection_id: string;
  status: HealthStatus;
  reason: string | null;
  /** When the connection entered this status; unchanged by repeated reports of the same status. */
  since: IsoTimestamp;
  checked_at: IsoTimestamp;
};

export interface HealthRepository {
  /**
   * Sets the connection's status, under a row lock: `previous` is the status just before this
   * report, so of two processes reporting a change at once exactly one sees it as a change.
   */
  report(
    connection_id: string,
    status: HealthStatus,
    reason?: string | null,
  ): Promise<ConnectionHealth & { previous: HealthStatus | null }>;
  get(connection_id: string): Promise<ConnectionHealth | undefined>;
  list(): Promise<ConnectionHealth[]>;
}

/** What a connection's call budget has used of its quota period, kept so a restart does not forget it. */
export type ApiBudgetState = {
  period_start: IsoTimestamp;
  used: number;
  /** Until when the vendor said its quota is spent, if it did. */
  blocked_until: IsoTimestamp | null;
  /** Until when the vendor asked for no calls at all (its per-second limit was hit), if it did. */
  paused_until: IsoTimestamp | null;
};

/** What one process adds to a connection's shared budget: the calls it counted since it last added. */
export type ApiBudgetChange = {
  /** The start of the quota period the process counts in (its own, if it knows of no kept one). */
  period_start: IsoTimestamp;
  /** A kept period older than this has ended: the count starts again from this process's calls. */
  period_ms: number;
  calls: number;
  blocked_until: IsoTimestamp | null;
  paused_until: IsoTimestamp | null;
};

export interface BudgetRepository {
  get(connection_id: string): Promise<ApiBudgetState | undefined>;
  /**
   * Adds a process's calls to the count every process of the installation shares, under a row lock
   * (so two workers never lose each other's calls), and returns the kept state: the whole count of
   * the period, and the latest quota block and pause any process was told of.
   */
  add(connection_id: string, change: ApiBudgetChange): Promise<ApiBudgetState>;
  /**
   * Reserves a call in the connection's rate window that every process shares, under the same row
   * lock: the time (epoch ms) the call may go, the earliest at or after `now_ms`, and after every
   * call already reserved, at which fewer than `window.calls` calls fall in the `window.ms` before
   * it. `now_ms` is the caller's clock (the machines' clocks are kept in step).
   */
  reserveCall(connection_id: string, request: { now_ms: number; window: CallWindow }): Promise<number>;
}

/** An operator's sign-in session as kept: by the hash of its id, which only the cookie holds. */
export type StoredSession = SessionsTable;

/** A Connect waiting for the vendor's answer, as kept (by hashes of its state and browser secret). */
export type StoredConnectFlow = ConnectFlowsTable;

export interface ConnectFlowRepository {
  /** Keeps a new flow, after removing expired ones and the oldest beyond `keep`. */
  put(flow: StoredConnectFlow, at: { now: IsoTimestamp; keep: number }): Promise<void>;
  /** Takes the flow once: removed as it is read, so only one process ever finishes it. */
  take(state_hash: string): Promise<StoredConnectFlow | undefined>;
}

export interface SessionRepository {
  put(session: StoredSession): Promise<void>;
  /**
   * The session with this id hash if it is live (used since `idle_since`, made since
   * `created_since`), its `last_seen` moved to `now`; an expired one is removed.
   */
  touch(
    id_hash: string,
    at: { now: IsoTimestamp; idle_since: IsoTimestamp; created_since: IsoTimestamp },
  ): Promise<StoredSession | undefined>;
  remove(id_hash: string): Promise<void>;
  /** Removes expired sessions, then the least recently used beyond `keep`. */
  prune(at: { idle_since: IsoTimestamp; created_since: IsoTimestamp }, keep: number): Promise<void>;
}

/** A client group's failed sign-ins: how many, and when the last was. */
export type SignInFailures = { failures: number; last_at: IsoTimestamp };

/**
 * Failed sign-ins, shared by every server process of an installation, so that several servers
 * slow a guesser down together and a restart forgets nobody.
 */
export interface SignInFailureRepository {
  /** The group's failures, or undefined when it has none after `forget_before`. */
  of(group: string, forget_before: IsoTimestamp): Promise<SignInFailures | undefined>;
  /**
   * Takes an attempt for the group: writes `next` only if the group's failures are still those
   * `seen` (undefined: none since `forget_before`). Of two attempts of one group at once, on one
   * process or two, one takes it and the other is told false (it reads again). True when taken.
   */
  take(
    group: string,
    seen: SignInFailures | undefined,
    next: SignInFailures,
    forget_before: IsoTimestamp,
  ): Promise<boolean>;
  /** Forgets the group's failures (it signed in). */
  clear(group: string): Promise<void>;
  /**
   * Counts one failure from anyone in the window starting `window_start`, and tidies: windows
   * before `windows_before` and groups with no failure since `forget_before` go, then the least
   * recently failed groups beyond `keep_groups`.
   */
  countFailure(at: {
    window_start: IsoTimestamp;
    windows_before: IsoTimestamp;
    forget_before: IsoTimestamp;
    keep_groups: number;
  }): Promise<void>;
  /** Failures from anyone counted in windows starting at or after `since`. */
  everyoneSince(since: IsoTimestamp): Promise<number>;
}

/** An alert as stored: one per cause, open until the cause is fixed. */
export type StoredAlert = {
  key: string;
  connection_id: string | null;
  code: string;
  message: string;
  opened_at: IsoTimestamp;
  resolved_at: IsoTimestamp | null;
};

export interface AlertRepository {
  /** Opens the alert for `key`; true when it was not open (new, or resolved before): then alert. */
  open(alert: { key: string; connection_id: string | null; code: string; message: string }): Promise<boolean>;
  /** Resolves the alert for `key`; true when it was open. */
  resolve(key: string): Promise<boolean>;
  get(key: string): Promise<StoredAlert | undefined>;
  listOpen(): Promise<StoredAlert[]>;
}

/** An address a platform refused for good: the contact is skipped there until its address changes. */
export type PlatformRejection = {
  contact_id: string;
  connection_id: string;
  email_match_key: string;
  code: string;
  message: string;
  rejected_at: IsoTimestamp;
};

export interface PlatformRejectionRepository {
  /** Records (or replaces) the refusal of a contact's address by a connection. */
  record(rejection: Omit<PlatformRejection, "rejected_at">): Promise<void>;
  /** Every refusal, by contact (the planner's input). */
  all(): Promise<PlatformRejection[]>;
}

export type StoredCredential = {
  connection_id: string;
  /** Opaque ciphertext from the credentials module; the store never sees plaintext. */
  ciphertext: string;
  key_id: string | null;
  updated_at: IsoTimestamp;
};

export interface CredentialRepository {
  put(connection_id: string, ciphertext: string, key_id?: string | null): Promise<void>;
  get(connection_id: string): Promise<StoredCredential | undefined>;
  remove(connection_id: string): Promise<boolean>;
}

// ---------------------------------------------------------------------------------------------
// Webhook inbox

export type InboxItem = {
  id: string;
  connection_id: string;
  received_at: IsoTimestamp;
  /** The connector's parsed changes (re-read hints), as JSON. */
  changes: JsonValue;
  attempts: number;
  last_error: string | null;
  processed_at: IsoTimestamp | null;
  next_attempt_at: IsoTimestamp | null;
  dead_at: IsoTimestamp | null;
};

export interface InboxRepository {
  /** Stores a delivery; the caller acknowledges it only after this resolves. */
  add(connection_id: string, changes: JsonValue): Promise<InboxItem>;
  /**
   * Stores several deliveries at once (the webhook receiver's group commit), and evaluates the SQL
   * expressions `alongside` (the jobs that drain them) so that they commit together: on PostgreSQL
   * in one statement, on SQLite in one transaction. Up to 1,000 deliveries are one statement.
   */
  addMany(
    deliveries: readonly { connection_id: string; changes: JsonValue }[],
    alongside?: readonly RawBuilder<unknown>[],
  ): Promise<void>;
  /**
   * Deliveries due now, oldest first: unprocessed, not given up, and past their next attempt time;
   * `exclude` leaves out connections (one whose system is down now).
   */
  pending(
    limit: number,
    options?: { connection_id?: string; exclude?: readonly string[] },
  ): Promise<InboxItem[]>;
  /** The connections that have deliveries due now (however many each has), in id order. */
  connectionsDue(): Promise<string[]>;
  markProcessed(ids: readonly string[]): Promise<void>;
  /**
   * Records a failed attempt: the item is tried again at `retry_at`, or, with `"dead"`, given up (a
   * dead letter, kept with its error; its records are left to the next poll).
   */
  markFailed(id: string, error: string, next: { retry_at: IsoTimestamp } | "dead"): Promise<void>;
  /** Deliveries not processed and not given up (due now or waiting for their next attempt). */
  countPending(): Promise<number>;
  /** Deliveries given up since `since`. */
  countDead(since?: IsoTimestamp): Promise<number>;
  /**
   * Deletes up to `limit` deliveries processed, or given up, before `before` (their retention is
   * over); pending ones and ones waiting for a retry are kept whatever their age. Returns how many.
   */
  prune(before: IsoTimestamp, limit: number): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// The store handle

/** Repositories bound to one connection or transaction. Pass this around; `Store` is one too. */
export interface StoreSession {
  readonly dialect: StoreDialect;
  /** The typed query builder, for queries no repository has yet. */
  readonly db: Kysely<Database>;
  readonly inTransaction: boolean;
  /** The clock every repository stamps with; injected in tests. */
  readonly clock: () => Date;
  /** Seals new ledger rows; undefined when the store was opened without the ledger key. */
  readonly sealer: LedgerSealer | undefined;
  readonly contacts: ContactRepository;
  readonly links: LinkRepository;
  readonly snapshots: SnapshotRepository;
  readonly baselines: BaselineRepository;
  readonly checkpoints: CheckpointRepository;
  readonly consentEvents: ConsentEventRepository;
  readonly suppressions: SuppressionRepository;
  readonly runs: RunRepository;
  readonly plans: PlanRepository;
  readonly operations: OperationRepository;
  readonly outcomes: OutcomeRepository;
  readonly reviewItems: ReviewRepository;
  readonly health: HealthRepository;
  readonly credentials: CredentialRepository;
  readonly inbox: InboxRepository;
  readonly budgets: BudgetRepository;
  readonly sessions: SessionRepository;
  readonly signInFailures: SignInFailureRepository;
  readonly connectFlows: ConnectFlowRepository;
  readonly alerts: AlertRepository;
  readonly rejections: PlatformRejectionRepository;
  /**
   * Runs `fn` in one transaction: all its writes commit together or not at all. Called on a session
   * that is already a transaction, it joins it (no savepoint), so helpers compose.
   */
  transaction<T>(fn: (tx: StoreSession) => Promise<T>): Promise<T>;
}

export interface Store extends StoreSession {
  close(): Promise<void>;
}
