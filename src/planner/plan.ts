/** What the planner yields: a stored plan of typed operations with reasons, the skipped records and their reasons, and counts. */
import type { ConsentEventId, OptOutEvent, Scope } from "../core/consent/consent-event";
import type { IneligibilityReason } from "../core/eligibility/decide-eligibility";
import type { ConnectionId, ContactId } from "../core/identity/canonical-contact";
import type { ConnectorOperation, OperationKind } from "../core/operations";

/** Stable codes for why an operation is in the plan. */
export type PlanReasonCode =
  | "opt_out_to_platform" // the ledger says not sendable for the platform's scope; the platform still shows subscribed
  | "opt_out_to_crm" // an opt-out seen outside the CRM that the CRM does not show yet
  | "opt_in_to_platform" // the account lifted its own opt-out, and the platform lets the account subscribe them again
  | "opt_in_to_crm" // the CRM shows an opt-out the person's own qualifying opt-in lifted
  | "resubscribe_requested" // an admin asked to resubscribe: the platform's confirmation email, waiting for the person
  | "new_contacts" // eligible CRM contacts the platform does not hold yet
  | "create_in_crm" // a platform contact with no CRM record, and the pair creates CRM records
  | "list_membership_added" // in the source list, not in the mapped list
  | "list_membership_removed" // left the source list, and the delete policy removes memberships
  | "list_membership_stopped" // the source list's own flag stops email to the person through it
  | "email_changed_in_crm" // the CRM's primary email moved: the platform follows
  | "email_changed_on_platform" // the platform's email moved from the agreed one: the CRM follows
  | "profile_fields_changed" // the three-way field merge says this side must change
  | "undeliverable_to_crm" // a platform found the address undeliverable; the CRM's own field does not say so yet
  | "personal_links_changed" // the platform's link fields do not hold the person's current Concord links
  | "crm_record_ended" // the CRM record ended (deceased, inactive, deleted) and the pair removes it
  | "list_created" // a CRM list a list rule selects has members and no platform list yet
  | "list_renamed" // its CRM list was renamed
  | "list_deleted"; // its CRM list was deleted and the rule deletes the platform list

export type PlanReason = { code: PlanReasonCode; message: string };

/** Consent operations run first (DESIGN.md §3 executor); everything else is a write. */
export type PlanPriority = "consent" | "write";

export type PlannedOperation = {
  op_id: string;
  connection_id: ConnectionId;
  contact_ids: ContactId[];
  priority: PlanPriority;
  reason: PlanReason;
  /** For a consent operation: the ledger scope it carries to the system. */
  scope?: Scope;
  /** The connector operation itself; its `op_id` equals the planned one. */
  operation: ConnectorOperation;
};

/** Why a record was left out, beyond eligibility: reasons the planner itself adds. */
export type SkipReason =
  | IneligibilityReason
  /** The platform record was deleted there; Concord does not re-create it on its own. */
  | { code: "deleted_on_platform" }
  /** The platform record is archived there (Mailchimp): only consent is written to it. */
  | { code: "inactive_on_platform" }
  /** The CRM record was deleted; nothing is sent from it. */
  | { code: "deleted_in_crm" };

export type SkippedRecord = { contact_id: ContactId; connection_id: ConnectionId; reasons: SkipReason[] };

/** How many skipped records a plan lists per connection and reason; the counts have them all. */
export const SKIPPED_LISTED_PER_REASON = 200;

/** An opted-out person an admin asked to resubscribe: only their own confirmation lifts the opt-out. */
export type WaitingForContact = {
  contact_id: ContactId;
  connection_id: ConnectionId;
  event_id: ConsentEventId;
  requested_at: string;
  /** Whether this plan asks the platform to send its confirmation (false: it already was). */
  requested_now: boolean;
};

/**
 * An opt-out seen on a platform record that was matched to the person only by its address (someone
 * uploaded it straight into the platform): reported, and applied to the CRM when the policy says so.
 */
export type UnlinkedOptOut = {
  contact_id: ContactId;
  connection_id: ConnectionId;
  event_id: ConsentEventId;
  scope: Scope;
  /** False under `report_only`: the CRM is left as it is. */
  applied: boolean;
};

export type PlanCounts = {
  /** Operations and the contacts they touch, by connection and kind. */
  operations: Record<ConnectionId, Partial<Record<OperationKind, { operations: number; contacts: number }>>>;
  /** Skipped records by connection and reason code (a record with several reasons counts under each). */
  skipped: Record<ConnectionId, Record<string, number>>;
  /** Records skipped, each record of each connection once (`skipped` lists only examples of them). */
  skipped_records: number;
};

export type Plan = {
  pair_id: string;
  as_of: string;
  /** Consent operations first, then writes; within a priority, in the order they were planned. */
  operations: PlannedOperation[];
  /**
   * Examples of the skipped records with their reasons: every record up to
   * `SKIPPED_LISTED_PER_REASON` per connection and reason, the rest counted in `counts` only (a large
   * database skips most of its records on purpose; a plan of a million does not carry them all).
   */
  skipped: SkippedRecord[];
  waiting: WaitingForContact[];
  unlinked_opt_outs: UnlinkedOptOut[];
  /**
   * Implied consent that lapsed under the config's rules (CASL), as opt-outs by rule the ledger does
   * not hold yet: the plan already acts on them; a run that applies the plan records them first.
   */
  lapses: OptOutEvent[];
  counts: PlanCounts;
  /** How many contacts each platform would gain. */
  gains: Record<ConnectionId, number>;
};
