/**
 * The connector contract: what every system's connector declares (capabilities, limits) and does
 * (check, read with checkpoints, apply typed operations, report per-operation outcomes). Connectors
 * translate between a vendor's API and these shapes; they never decide consent (STYLE.md rule 4).
 */
import type { Actor, Channel, Evidence, Mechanism } from "../core/consent/consent-event";
import type { ConsentFact } from "../core/consent/system-consent";
import type { ConsentGround } from "../core/consent/implied-consent";
import type { ConnectorOperation, ObservedScope } from "../core/operations";
import type { Result } from "../core/result";

export type ConnectorRole = "crm" | "email_platform";

/** Stable codes for what can go wrong talking to a vendor. */
export type ConnectorErrorCode =
  | "auth_invalid" // credentials rejected and a refresh did not help: the connection is broken
  | "auth_missing" // no credentials configured
  | "rate_limited" // per-second limit: wait and retry
  | "quota_exceeded" // daily quota: defer everything to the reset time
  | "not_found"
  | "conflict"
  | "validation_failed" // the vendor rejected the payload; permanent for that record
  | "consent_requires_contact_action" // only the person can lift this opt-out
  | "vendor_unavailable" // 5xx or timeouts after retries
  | "network_error"
  | "bad_response" // the vendor answered something our schema does not accept
  | "forbidden"
  | "unsupported";

export type ConnectorError = {
  code: ConnectorErrorCode;
  message: string;
  /** When to try again (ISO-8601 UTC), for rate limits, quotas and outages. */
  retry_at?: string;
  http_status?: number;
  vendor_code?: string;
};

export type ConnectorResult<T> = Result<T, ConnectorError>;

/** The vendor's published call limits; the connection's call budget enforces every one of them. */
export type ConnectorLimits = {
  requests_per_second: number;
  /** The daily call quota and when it starts again; absent where the vendor has none (Mailchimp). */
  daily_quota?: { calls: number; reset: "utc_midnight" | "rolling_24h" };
  /** Most calls in flight at once for one connection (Mailchimp: 10 connections per API key). */
  max_concurrency: number;
  batch: {
    /** Most contacts one bulk import accepts. */
    import_contacts?: number;
    /** Most bytes one bulk import body may have. */
    import_bytes?: number;
    /** Most record ids one list-membership or delete activity accepts. */
    membership_ids?: number;
    /** Most lists one activity can target. */
    membership_lists?: number;
    /** Most records one page of a read returns. */
    read_page?: number;
  };
};

/** One email address as the system holds it (an address-level opt-out is a consent fact). */
export type ExternalEmail = {
  address: string;
  primary: boolean;
  external_id?: string;
  inactive?: boolean;
};

/** A contact, constituent or member as one system holds it, in canonical terms. */
export type ExternalRecord = {
  external_id: string;
  kind: "individual" | "organisation";
  emails: ExternalEmail[];
  first_name?: string | null;
  last_name?: string | null;
  organisation_name?: string | null;
  /** Profile fields by the system's own field name (its manifest's catalogue); never consent. */
  fields: Record<string, string | null>;
  /** Consent as the record shows it now, as typed facts (the engine never reads a vendor's field). */
  consent_state: ConsentFact[];
  /** External ids of the lists the record belongs to (where the read includes them). */
  list_ids?: string[];
  /**
   * Lists the record belongs to whose own flag says it must not be emailed through them (a
   * GrowthZone list's Do Not Contact). They are not in `list_ids`; a platform list that copies one
   * loses the person whatever the pair's delete policy, and no sync adds them to it.
   */
  stopped_list_ids?: string[];
  inactive?: boolean;
  deceased?: boolean;
  /** A "Do Not Contact"-style flag of the system is in force (it is also reported as an opt-out). */
  do_not_contact?: boolean;
  deleted?: boolean;
  /**
   * Dated acts that ground implied consent where the law lets it lapse (CASL): the latest gift
   * (`donation`), the latest inquiry. Facts only: the engine's rules decide what they allow.
   */
  consent_grounds?: ConsentGround[];
  /** For an individual who is an organisation's contact person: the organisation's external id. */
  organisation_external_id?: string;
  updated_at: string;
  /**
   * The system's own version stamp of the record (Raiser's Edge NXT's modification date as written,
   * to 100 ns), compared for equality only: an incremental read may read a record Concord already
   * holds at this version in part (`ReadOptions.held`).
   */
  version?: string;
  /**
   * Set by a partial re-read (`GetOptions.changed`): what was not read this time. The record stage
   * keeps those parts from the record's last snapshot, so nothing unread reads as cleared.
   */
  unread?: UnreadParts;
};

/** Record properties a partial read may leave to the last snapshot. */
export type UnreadProperty = Exclude<keyof ExternalRecord, "external_id" | "consent_state" | "unread">;

/** The parts of a record a partial re-read left out (see `ExternalRecord.unread`). */
export type UnreadParts = {
  /** Record properties not read: their last known values stand. */
  properties: readonly UnreadProperty[];
  /** Consent facts whose `source` starts with one of these were not read: their last known state stands. */
  consent_sources: readonly string[];
  /**
   * The source prefixes in the order the connector lists a record's facts, so the facts read and
   * those kept are put back in that order and the record hashes as the same record read whole.
   */
  fact_order: readonly string[];
};

/** Records and the consent observed on them, as a targeted re-read returns them. */
export type RecordsWithConsent = { records: ExternalRecord[]; consent: ConsentObservation[] };

export type ExternalList = {
  external_id: string;
  name: string;
  member_count?: number;
  /** The CRM's own setting that the list is synchronised with an email platform (GrowthZone's). */
  newsletter_sync?: boolean;
};

/** One fact about consent seen in a system, with its provenance; the ledger turns it into an event. */
export type ConsentObservation = {
  external_id: string;
  email: string;
  channel: Channel;
  kind: "opt_out" | "opt_in" | "resubscribe_requested" | "deliverability";
  scope: ObservedScope;
  mechanism: Mechanism;
  actor: Actor;
  occurred_at: string;
  evidence: Evidence;
  /** For `opt_in`: express or implied; for `deliverability`: the status. */
  basis?: "express" | "implied";
  deliverability?: "hard_bounce" | "soft_bounce" | "cleaned" | "deliverable";
  /**
   * The system gives no time of its own for this opt-out (a flag whose setting moves no date, a null
   * or unreadable date, or only a bound that later saves move, as Raiser's Edge NXT's "Requests No
   * Email" dated by the constituent's last save): `occurred_at` is when Concord saw it, or that
   * bound, never an older moment that an earlier opt-in could come after. Seen again by a later
   * read, it is the act already recorded (the latest event from the same record,
   * `evidence.source_record_id`, is this opt-out), not a new one.
   */
  time_unknown?: true;
  /**
   * For a person's `opt_in` that is the confirmation of a sign-up the system dates apart (Mailchimp:
   * a member's `timestamp_signup`, confirmed at `timestamp_opt`): when that sign-up was. It stands
   * for the person's act only if no opt-out of theirs falls between the two: then the subscription
   * is a later one (an account user's, another integration's) that kept the sign-up's traces, and
   * it is recorded as the account's. `null`: the system keeps no time of that sign-up (a
   * Mailchimp member added through the API and confirmed), so any opt-out of theirs before the
   * opt-in makes it the account's.
   */
  of_signup_at?: string | null;
  /**
   * The record is gone from its system for good (a Mailchimp member deleted permanently after it
   * announced this opt-out, before Concord read it), or out of reach (a delivery given up unread,
   * `WebhookSupport.announcedOptOuts`): there is no record read to link. The observation belongs to
   * the contact linked to `external_id` if any, else to the people whose address is `email`; to no
   * one if nobody holds it.
   */
  record_gone?: true;
};

/** An opaque position in a system's change stream; it advances only after the data it covers is stored. */
export type Checkpoint = { stream: string; value: string; taken_at: string };

export type ReadPage = {
  records: ExternalRecord[];
  consent: ConsentObservation[];
  /** Where to resume if the process stops after this page is stored. */
  checkpoint: Checkpoint;
  /**
   * The complete membership of the lists the read asked for, when the system cannot report a
   * membership change as a record change (Raiser's Edge NXT static lists change no modification date).
   * Given once, on the first page; records not in it are in none of `list_ids`.
   */
  memberships?: {
    list_ids: string[];
    members: Record<string, string[]>;
    /** Members the list itself says not to email (`ExternalRecord.stopped_list_ids`), by record. */
    stopped?: Record<string, string[]>;
  };
  /**
   * Called once the page and its checkpoint are stored (committed), before the next page is taken:
   * where a system keeps the read's position itself (Kindful: contacts are linked, and leave its
   * change feed), the page is acknowledged here and never earlier. A page is fetched while the one
   * before it is being stored, so being asked for the next page does not say this one is stored.
   * A failure ends the read as a failed page would; what was not acknowledged is read again.
   */
  stored?: () => Promise<ConnectorResult<void>>;
};

export type ReadOptions = {
  /** Ignore the checkpoint and read everything (a full reconciliation). */
  full?: boolean;
  /** Lists to read memberships for (CRM static lists, platform lists). */
  list_ids?: readonly string[];
  /**
   * The versions (`ExternalRecord.version`) of the records Concord holds, asked a page at a time:
   * an incremental read may read a record whose version has not moved since it was stored (what
   * its overlap window lists again) only in the parts that change without moving it, naming the
   * rest in `unread`.
   */
  held?: (external_ids: readonly string[]) => Promise<ReadonlyMap<string, string>>;
};

export type { ConnectorOperation, ConsentIntent, ObservedScope, OperationKind } from "../core/operations";
export type { ConsentFact, ConstructRef } from "../core/consent/system-consent";
export type { ConsentGround } from "../core/consent/implied-consent";

/** What happened to one operation, or one item of a bulk operation. */
export type OperationOutcome = {
  op_id: string;
  item_id?: string;
  status: "succeeded" | "failed" | "deferred" | "pending_contact_action" | "skipped";
  /** The record's id in the system, when the operation created or found it. */
  external_id?: string;
  code?: ConnectorErrorCode | "already_applied" | "cannot_add_to_list" | "duplicate_in_batch";
  message?: string;
  retry_at?: string;
};

/** Where a connector keeps and renews its credentials; rotating refresh tokens are saved at once. */
export type CredentialAccess = {
  get: () => Promise<Record<string, string | undefined>>;
  save: (changes: Record<string, string>) => Promise<void>;
  /**
   * Runs `fn` holding the connection's credential lock, which every process of the installation
   * respects: a token renewal reads, spends and saves a rotating refresh token under it, so two
   * workers never spend the same one. Absent: one process, nothing to share.
   */
  exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
};

export type ConnectionSettings = {
  connection_id: string;
  /** The API's base URL when the config names one (an emulator, a region); else the manifest's endpoints say. */
  base_url?: string;
  token_url?: string;
  credentials: CredentialAccess;
  /** The connection's own limits where they differ from the vendor's published ones. */
  limits?: { requests_per_second?: number; daily_quota?: number; request_timeout_ms?: number };
  /** Records per read page, below the vendor's maximum (smaller pages checkpoint more often). */
  page_size?: number;
  /** The connection's options (config `connections[].options`), as the manifest's schema parsed them. */
  options?: Readonly<Record<string, unknown>>;
  /**
   * The constructs the config's topics stand for on this connection (a consent category, a list, a
   * custom field…), by the manifest's type names: what the connector must read and may write.
   */
  constructs?: readonly { type: string; id?: string | undefined; name?: string | undefined }[];
};

export type CheckInfo = { account_label: string; scopes?: string[] };

/** A live connection to one account of a system. */
export type ConnectorSession = {
  check: () => Promise<ConnectorResult<CheckInfo>>;
  read: (checkpoint: Checkpoint | null, options?: ReadOptions) => AsyncIterable<ConnectorResult<ReadPage>>;
  /** Targeted re-read of some records (after a webhook, or to confirm a write), with their consent. */
  get: (
    external_ids: readonly string[],
    options?: GetOptions,
  ) => Promise<ConnectorResult<RecordsWithConsent>>;
  lists: () => Promise<ConnectorResult<ExternalList[]>>;
  apply: (operations: readonly ConnectorOperation[]) => Promise<OperationOutcome[]>;
};

export type GetOptions = {
  /**
   * What webhooks said changed, by record, for records Concord already holds a snapshot of. A
   * connector whose records are read in several calls may then read only the parts those changes
   * can touch, and names the rest in each record's `unread`. Records not named are read whole.
   */
  changed?: ReadonlyMap<string, readonly WebhookChange[]>;
  /** Every change the webhooks announced, by the id they named, held or not. */
  announced?: ReadonlyMap<string, readonly WebhookChange[]>;
};

/** An incoming webhook request, as the server received it (body already size-limited). */
export type WebhookRequest = {
  method: string;
  headers: Record<string, string | undefined>;
  query: Record<string, string | undefined>;
  raw_body: string;
};

/** A change a webhook announced: a hint to re-read the record, never trusted as state. */
export type WebhookChange = {
  event_id: string;
  type: string;
  external_id: string;
  occurred_at: string;
  /**
   * The list the delivery is about, where the system says (Mailchimp's `data[list_id]`, its
   * audience): a connection keeps one in step, and another's announcement is not about its record.
   */
  list_id?: string;
  change: "changed" | "deleted" | "email_changed" | "consent_changed" | "test";
  /**
   * The delivery says the person opted out (their own act, never an opt-in), for a system whose
   * re-read may no longer show it: a Mailchimp member archived after unsubscribing reads only as
   * archived. The connector uses it only when the record it re-reads hides its consent.
   */
  opt_out?: {
    reason?: string;
    actor?: "account";
    /**
     * The address the delivery named, for a record deleted for good before the re-read: no read
     * finds it then, and the opt-out is recorded for the people at that address
     * (`ConsentObservation.record_gone`). Kept in the inbox until its retention is over.
     */
    email?: string;
  };
};

export type WebhookHandling =
  /** A subscription handshake to answer as given. */
  | { kind: "handshake"; status: number; headers: Record<string, string> }
  | {
      kind: "events";
      changes: WebhookChange[];
      /**
       * Events of a batch that could not be read (not CloudEvents, no record named), each with
       * why: the rest of the batch is kept (a vendor resends a refused batch whole, and drops it
       * whole at last), and the host logs these.
       */
      skipped?: string[];
    }
  | { kind: "rejected"; status: number; code: "webhook_unverified" | "webhook_invalid"; message: string };

/** Consent operations go first; bulk writes next; reads last (DESIGN.md §3 executor). */
export type CallPriority = "consent" | "write" | "read";

export type QuotaUsage = {
  used_today: number;
  /** Null where the vendor sets no daily quota. */
  remaining: number | null;
  daily_quota: number | null;
  resets_at: string | null;
  paused_until?: string;
  /** Calls in flight now, and the most the vendor allows at once. */
  in_flight: number;
  max_concurrency: number;
};

/** Ends a call's hold on the budget's concurrency: called once its answer is read (or it failed). */
export type ReleaseSlot = () => void;

/**
 * The API-call budget of one connection (per-second rate, daily quota, calls in flight). The host
 * keeps one per connection and hands it to every session, so all of a connection's work shares it.
 */
export type CallBudget = {
  acquire: (priority: CallPriority) => Promise<Result<ReleaseSlot, ConnectorError>>;
  /** The vendor throttled: hold every call for `ms`. */
  pause: (ms: number) => void;
  /** The vendor says the daily quota is spent until `until`. */
  quotaExhausted: (until: Date) => void;
  usage: () => QuotaUsage;
};

/** What the host gives a connector: a clock, a way to wait, the call budget, and hooks to report health. */
/** One HTTP call as a transport carries it. */
export type TransportRequest = {
  method: string;
  headers: Record<string, string>;
  body: string | null;
  timeout_ms: number;
  /** The largest answer taken (bytes); more is a failure. Default: 64 MiB. */
  max_bytes?: number;
};
export type TransportResponse = { status: number; headers: Record<string, string>; text: string };
/** Carries a connector's HTTP calls; throws on a network failure (no answer at all). */
export type HttpTransport = (url: string, init: TransportRequest) => Promise<TransportResponse>;

export type ConnectorRuntime = {
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** The connection's shared call budget; when absent a session makes its own from the declared limits. */
  budget?: CallBudget;
  /** Called when a request fails for auth after a refresh: the host marks the connection broken and alerts. */
  onAuthFailure?: (error: ConnectorError) => void;
  /** How HTTP calls leave the process; the network when absent. */
  transport?: HttpTransport;
  /** Called on each vendor call, for metrics and budget display. */
  onApiCall?: (call: { method: string; path: string; status: number; duration_ms: number }) => void;
};
