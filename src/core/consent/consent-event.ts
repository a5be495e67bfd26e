/**
 * Consent events: the facts the consent ledger stores and the consent state is folded from.
 * Every observation of consent from any system becomes one of these, with its provenance.
 */
import { z } from "zod";

/** Prefixed, content-derived ids keep events idempotent: the same observation gets the same id. */
export const ConsentEventIdSchema = z.string().regex(/^evt_[A-Za-z0-9_-]{8,}$/, "expected an id like evt_…");
export type ConsentEventId = z.infer<typeof ConsentEventIdSchema>;

export const ChannelSchema = z.enum(["email", "sms"]);
export type Channel = z.infer<typeof ChannelSchema>;

/** A topic is the organisation's own consent category (newsletter, appeals, events…), by key. */
export const TopicKeySchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "expected a topic key of lowercase letters, digits, _ or -");
export type TopicKey = z.infer<typeof TopicKeySchema>;

export const ScopeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("global") }).strict(),
  z.object({ kind: z.literal("topic"), topic: TopicKeySchema }).strict(),
]);
export type Scope = z.infer<typeof ScopeSchema>;

export const GLOBAL_SCOPE: Scope = { kind: "global" };
export const topicScope = (topic: TopicKey): Scope => ({ kind: "topic", topic });

/** How the act reached the source system. */
export const MechanismSchema = z.enum([
  "unsubscribe_link",
  "one_click_header",
  "spam_complaint",
  "preference_page",
  "signup_form",
  "double_opt_in_confirmation",
  "resubscribe_confirmation",
  "admin_edit",
  "phone_request",
  "written_request",
  "import",
  "api",
  "sync",
  "expiry_rule",
  "unknown",
]);
export type Mechanism = z.infer<typeof MechanismSchema>;

/**
 * Who acted. `contact`: the person, or staff recording the person's own request (phone, letter).
 * `account`: the organisation on its own initiative (an admin, an import, an API client).
 * `operator`: a Concord operator override; only valid with evidence of the person's request.
 * `platform`: the system itself (bounce processing, rule-based expiry).
 */
export const ActorSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("contact") }).strict(),
  z.object({ kind: z.literal("account"), user: z.string().max(200).optional() }).strict(),
  z.object({ kind: z.literal("operator"), user: z.string().min(1).max(200) }).strict(),
  z.object({ kind: z.literal("platform") }).strict(),
]);
export type Actor = z.infer<typeof ActorSchema>;

/** What the source gave us to prove the act; the payload itself is kept only as a digest. */
export const EvidenceSchema = z
  .object({
    payload_sha256: z
      .string()
      .regex(/^[a-f0-9]{64}$/)
      .optional(),
    ip: z.string().max(64).optional(),
    user_agent: z.string().max(512).optional(),
    form_wording: z.string().max(4000).optional(),
    privacy_notice: z.string().max(4000).optional(),
    reason: z.string().max(1000).optional(),
    /** A reference to the person's own request (ticket, letter, recorded call): required for overrides. */
    request_reference: z.string().max(500).optional(),
    source_record_id: z.string().max(200).optional(),
  })
  .strict();
export type Evidence = z.infer<typeof EvidenceSchema>;

/** Where the observation came from: the system and the connection (account) inside it. */
export const ProvenanceSchema = z
  .object({
    system: z.string().min(1).max(64),
    connection: z.string().min(1).max(128),
  })
  .strict();
export type Provenance = z.infer<typeof ProvenanceSchema>;

const common = {
  id: ConsentEventIdSchema,
  contact_id: z.string().min(1).max(64),
  channel: ChannelSchema,
  source: ProvenanceSchema,
  mechanism: MechanismSchema,
  actor: ActorSchema,
  /** When the person or system acted (ISO-8601 UTC). */
  occurred_at: z.iso.datetime({ offset: false }),
  /** When Concord first saw it (ISO-8601 UTC). */
  observed_at: z.iso.datetime({ offset: false }),
  evidence: EvidenceSchema,
};

export const ConsentBasisSchema = z.enum(["express", "implied"]);
export type ConsentBasis = z.infer<typeof ConsentBasisSchema>;

export const ConsentEventSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("opt_out"), scope: ScopeSchema, ...common }).strict(),
  z
    .object({
      kind: z.literal("opt_in"),
      scope: ScopeSchema,
      basis: ConsentBasisSchema,
      /** Implied consent (CASL) lapses; express consent has no expiry. */
      expires_at: z.iso.datetime({ offset: false }).optional(),
      ...common,
    })
    .strict(),
  /** Someone other than the person asked for them to be sendable again (e.g. a CRM flag cleared). Not an opt-in. */
  z.object({ kind: z.literal("resubscribe_requested"), scope: ScopeSchema, ...common }).strict(),
  /** Deliverability, kept beside consent and never mistaken for it. */
  z
    .object({
      kind: z.literal("deliverability"),
      status: z.enum(["hard_bounce", "soft_bounce", "cleaned", "deliverable"]),
      ...common,
    })
    .strict(),
]);
export type ConsentEvent = z.infer<typeof ConsentEventSchema>;
export type OptOutEvent = Extract<ConsentEvent, { kind: "opt_out" }>;
export type OptInEvent = Extract<ConsentEvent, { kind: "opt_in" }>;
export type ResubscribeRequestedEvent = Extract<ConsentEvent, { kind: "resubscribe_requested" }>;
export type DeliverabilityEvent = Extract<ConsentEvent, { kind: "deliverability" }>;

export const scopeKey = (scope: Scope): string =>
  scope.kind === "global" ? "global" : `topic:${scope.topic}`;

/** Spam complaints are global opt-outs whatever the source's topic mapping says (DESIGN.md §2 rule 5). */
export const isSpamComplaint = (event: ConsentEvent): boolean =>
  event.kind === "opt_out" && event.mechanism === "spam_complaint";

/** The scope an opt-out really applies to: a spam complaint is always global. */
export const effectiveScope = (event: OptOutEvent | OptInEvent | ResubscribeRequestedEvent): Scope =>
  event.kind === "opt_out" && event.mechanism === "spam_complaint" ? GLOBAL_SCOPE : event.scope;
