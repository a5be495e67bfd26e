/** Whether a contact may be sent to one email-platform connection (and topic), with every reason it may not. */
import type { ConsentEventId, Scope, TopicKey } from "../consent/consent-event";
import {
  decisionFor,
  type ChannelConsent,
  type ConsentRule,
  type ScopeDecision,
} from "../consent/consent-state";
import type { CanonicalContact, ConnectionId } from "../identity/canonical-contact";
import { EMAIL_INVALID_MESSAGES, normaliseEmail, type EmailInvalidReason } from "../identity/normalise-email";

/** An email-platform connection, and the topic its audience is mapped to when there is one. */
export type EligibilityTarget = { connection: ConnectionId; topic?: TopicKey };

export type EligibilityInput = {
  contact: CanonicalContact;
  target: EligibilityTarget;
  /** The contact's email consent, folded by the caller (with its own as_of and basis policy). */
  consent: ChannelConsent;
  /** Whether the contact is in any audience the pair syncs to this connection. */
  in_synced_audience: boolean;
  /** The platform's refusal of this address under its own rules, when it gave one. */
  platform_rejection?: { code: string; message?: string };
};

/** Stable codes, in the order reasons are listed. */
export const INELIGIBILITY_CODES = [
  "erased",
  "deceased",
  "inactive",
  "do_not_contact",
  "no_primary_email",
  "invalid_email",
  "opted_out",
  "pending_resubscribe",
  "no_consent_basis",
  "consent_expired",
  "undeliverable",
  "rejected_by_platform",
  "not_in_synced_audience",
] as const;
export type IneligibilityCode = (typeof INELIGIBILITY_CODES)[number];

export type IneligibilityReason =
  | { code: "erased" }
  | { code: "deceased" }
  | { code: "inactive" }
  | { code: "do_not_contact" }
  | { code: "no_primary_email" }
  | { code: "invalid_email"; email_reason: EmailInvalidReason }
  | {
      code: "opted_out";
      /** The scope of the deciding opt-out: global, or the target's topic. */
      scope: Scope;
      rule: Extract<ConsentRule, "global_opt_out" | "topic_opt_out" | "spam_complaint">;
      event_id: ConsentEventId;
    }
  | { code: "pending_resubscribe"; event_id: ConsentEventId; requested_at: string }
  | { code: "no_consent_basis" }
  | { code: "consent_expired"; event_id: ConsentEventId }
  | { code: "undeliverable"; status: "hard_bounce" | "cleaned"; event_id?: ConsentEventId }
  | { code: "rejected_by_platform"; platform_code: string; message?: string }
  | { code: "not_in_synced_audience" };

export type Eligibility = { eligible: true } | { eligible: false; reasons: IneligibilityReason[] };

/** Decides eligibility. Pure: lists every reason, not the first, so a preview can count each. */
export function decideEligibility(input: EligibilityInput): Eligibility {
  const { contact, consent, target } = input;
  if (consent.channel !== "email")
    throw new Error(`eligibility for email needs email consent, got ${consent.channel}`);
  const reasons: IneligibilityReason[] = [];

  if (contact.lifecycle.erased) reasons.push({ code: "erased" });
  if (contact.lifecycle.deceased) reasons.push({ code: "deceased" });
  if (contact.lifecycle.inactive) reasons.push({ code: "inactive" });
  if (contact.do_not_contact) reasons.push({ code: "do_not_contact" });

  if (contact.primary_email === undefined || contact.primary_email.trim() === "") {
    reasons.push({ code: "no_primary_email" });
  } else {
    const email = normaliseEmail(contact.primary_email);
    if (!email.ok) reasons.push({ code: "invalid_email", email_reason: email.reason });
  }

  const scope: Scope =
    target.topic === undefined ? { kind: "global" } : { kind: "topic", topic: target.topic };
  const decision = decisionFor(consent, scope);
  if (!decision.sendable) reasons.push(...consentReasons(decision));

  const { deliverability } = consent;
  if (deliverability.status === "hard_bounce" || deliverability.status === "cleaned") {
    reasons.push({
      code: "undeliverable",
      status: deliverability.status,
      ...(deliverability.decided_by !== undefined ? { event_id: deliverability.decided_by } : {}),
    });
  }
  if (input.platform_rejection) {
    const { code, message } = input.platform_rejection;
    reasons.push({
      code: "rejected_by_platform",
      platform_code: code,
      ...(message !== undefined ? { message } : {}),
    });
  }
  if (!input.in_synced_audience) reasons.push({ code: "not_in_synced_audience" });

  return reasons.length === 0 ? { eligible: true } : { eligible: false, reasons };
}

function consentReasons(decision: ScopeDecision): IneligibilityReason[] {
  const rule = decision.rule;
  switch (rule) {
    case "global_opt_out":
    case "topic_opt_out":
    case "spam_complaint": {
      const deciding = decision.open_opt_outs.find((o) => o.event_id === decision.decided_by);
      if (!deciding) throw new Error(`opted-out decision without its deciding opt-out (${rule})`);
      const pending = decision.pending_resubscribe;
      return [
        // Implied consent that lapsed by rule (CASL) is an opt-out by rule, named for what it is.
        deciding.mechanism === "expiry_rule"
          ? { code: "consent_expired" as const, event_id: deciding.event_id }
          : { code: "opted_out" as const, scope: deciding.scope, rule, event_id: deciding.event_id },
        ...(pending
          ? [
              {
                code: "pending_resubscribe" as const,
                event_id: pending.event_id,
                requested_at: pending.requested_at,
              },
            ]
          : []),
      ];
    }
    case "no_consent_basis":
      return [{ code: "no_consent_basis" }];
    case "implied_consent_expired":
      if (decision.decided_by === undefined) throw new Error("expired consent without its opt-in");
      return [{ code: "consent_expired", event_id: decision.decided_by }];
    case "no_opt_out":
    case "express_consent":
    case "implied_consent":
    case "lifted_by_contact_opt_in":
    case "lifted_by_operator_override":
    case "lifted_by_account_opt_in":
      throw new Error(`a decision by ${rule} is never unsendable`);
  }
}

/** One human sentence per reason, for the preview, the UI and the CLI. */
export function describeIneligibility(reason: IneligibilityReason): string {
  switch (reason.code) {
    case "erased":
      return "The contact was erased; only their suppression is kept.";
    case "deceased":
      return "The contact is marked as deceased.";
    case "inactive":
      return "The contact is marked as inactive.";
    case "do_not_contact":
      return "The contact is flagged do-not-contact in the CRM.";
    case "no_primary_email":
      return "The contact has no primary email address.";
    case "invalid_email":
      return `The primary email address is not valid: ${EMAIL_INVALID_MESSAGES[reason.email_reason]}`;
    case "opted_out":
      return reason.rule === "spam_complaint"
        ? "The contact reported an email as spam, which opts them out of everything."
        : reason.scope.kind === "global"
          ? "The contact opted out of all email."
          : `The contact opted out of the topic “${reason.scope.topic}”.`;
    case "pending_resubscribe":
      return "A resubscribe was requested for the contact; it waits for the contact's own confirmation.";
    case "no_consent_basis":
      return "Consent is required for this audience and the contact has given none.";
    case "consent_expired":
      return "The contact's implied consent has expired (no express consent is recorded); only their own opt-in makes them sendable again.";
    case "undeliverable":
      return reason.status === "cleaned"
        ? "The address was cleaned by the platform after repeated bounces."
        : "The address bounced permanently (hard bounce).";
    case "rejected_by_platform":
      return reason.message
        ? `The platform refuses this address (${reason.platform_code}): ${reason.message}${/[.!?]$/.test(reason.message) ? "" : "."}`
        : `The platform refuses this address (${reason.platform_code}).`;
    case "not_in_synced_audience":
      return "The contact is in no audience synced to this platform.";
  }
}
