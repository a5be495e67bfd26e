/**
 * The typed operations a plan holds and a connector applies: shared by the planner (which imports
 * core only) and the connector contract, which re-exports them unchanged.
 */
import type { Actor, Mechanism } from "./consent/consent-event";
import type { ObservedScope } from "./consent/system-consent";

export type { ObservedScope } from "./consent/system-consent";

/**
 * What an upsert does to consent, decided by the planner so no connector ever picks a status
 * itself: contacts the system already holds keep what they show (an upsert never re-subscribes
 * anyone), and new ones start as `new_contacts` says — `subscribed` only for people the planner
 * found sendable by the consent rules.
 */
export type ConsentIntent = {
  existing: "keep";
  new_contacts: "subscribed" | "unsubscribed" | "pending_confirmation";
};

/** Typed operations the planner emits; each has a deterministic id so a retry never duplicates. */
export type ConnectorOperation =
  | {
      kind: "upsert_contacts";
      op_id: string;
      items: {
        item_id: string;
        external_id?: string;
        email: string;
        first_name?: string | null;
        last_name?: string | null;
        fields?: Record<string, string | null>;
      }[];
      list_ids: string[];
      consent_intent: ConsentIntent;
    }
  | { kind: "add_list_members"; op_id: string; list_ids: string[]; external_ids: string[] }
  | { kind: "remove_list_members"; op_id: string; list_ids: string[]; external_ids: string[] }
  | {
      kind: "record_opt_out";
      op_id: string;
      external_id: string;
      email: string;
      scope: ObservedScope;
      /** Whose act this was: decides how the system records who made the change. */
      initiated_by: "contact" | "account";
      occurred_at: string;
      reason?: string;
      /** Where the opt-out came from, for the record written in this system. */
      origin: { system: string; connection: string; mechanism: Mechanism; statement?: string };
    }
  | {
      kind: "record_opt_in";
      op_id: string;
      external_id: string;
      scope: ObservedScope;
      occurred_at: string;
      /**
       * Whether the plan read the record as opted out in this scope. An opt-in planned over a record
       * that showed no opt-out only adds the person's record of it: an opt-out the record shows when
       * the opt-in is applied was made after that read (by staff, the person, another pair's run)
       * and stands; the connector leaves it for the next read (`optedOutSinceRead`). Absent in
       * operations planned before it was kept: written as before.
       */
      read_opted_out?: boolean;
      /**
       * `actor` says whose act the opt-in was: a system that cannot name the mechanism (Constant
       * Contact) still proves the person acted, and only such an opt-in may be written
       * (`isPersonsOwnOptIn`); an operator's override carries the person's request reference.
       */
      origin: {
        system: string;
        connection: string;
        mechanism: Mechanism;
        actor: Actor["kind"];
        request_reference?: string;
        statement?: string;
      };
    }
  | { kind: "request_resubscribe"; op_id: string; external_id: string; list_ids: string[] }
  | {
      kind: "update_contact";
      op_id: string;
      external_id: string;
      first_name?: string | null;
      last_name?: string | null;
      fields?: Record<string, string | null>;
    }
  | { kind: "change_email"; op_id: string; external_id: string; old_email: string; new_email: string }
  /**
   * Takes the record out of the platform (Constant Contact deletes it, Mailchimp archives it; both
   * keep its unsubscribe): for a person whose CRM record ended, under the pair's `remove` policy.
   */
  | { kind: "remove_contact"; op_id: string; external_id: string; email: string; reason: string }
  /**
   * Erasure (DESIGN.md §2 rule 8): the person's record deleted as far as the system allows, on the
   * person's request; its outcome's message says what the system keeps (`concord erase`).
   */
  | { kind: "erase_contact"; op_id: string; external_id: string }
  /** A list the pair's list rules need on the platform (its members follow once it exists). */
  | { kind: "create_list"; op_id: string; name: string }
  | { kind: "rename_list"; op_id: string; list_id: string; name: string }
  /** Deletes the list, never its people. */
  | { kind: "delete_list"; op_id: string; list_id: string }
  | {
      kind: "create_contact";
      op_id: string;
      email: string;
      first_name?: string | null;
      last_name?: string | null;
      kind_of_record: "individual" | "organisation";
    };

export type OperationKind = ConnectorOperation["kind"];
