/**
 * Zod schemas for the Blackbaud SKY API payloads the Raiser's Edge NXT connector reads (Constituent,
 * Communication Preference, List and Webhook APIs) and the request bodies it sends: tolerant of keys we
 * do not use, strict on the ones we do.
 */
import { z } from "zod";

/** SKY sends ids as strings; a few third-party mirrors send numbers, which we accept and normalise. */
const Id = z.union([z.string().min(1), z.number().int()]).transform((v) => String(v));

const OptionalText = z.string().nullish();

export const EmailAddressSchema = z.looseObject({
  id: Id.optional(),
  address: z.string(),
  constituent_id: Id.optional(),
  date_added: OptionalText,
  date_modified: OptionalText,
  // Optional in SKY's EmailAddressRead: an address without it says nothing of its Do Not Email
  // (the last known value stands), never that it was cleared.
  do_not_email: z.boolean().optional(),
  inactive: z.boolean().optional().default(false),
  primary: z.boolean().optional().default(false),
  type: OptionalText,
});
export type EmailAddress = z.infer<typeof EmailAddressSchema>;

/**
 * A constituent as `GET /constituents/{id}` (ConstituentRead) or the list endpoint (ConstituentListItem)
 * returns it; the list item has no `requests_no_email`, so it is optional here.
 */
export const ConstituentSchema = z.looseObject({
  id: Id,
  type: z.enum(["Individual", "Organization"]),
  lookup_id: OptionalText,
  first: OptionalText,
  last: OptionalText,
  middle: OptionalText,
  preferred_name: OptionalText,
  former_name: OptionalText,
  suffix: OptionalText,
  title: OptionalText,
  gender: OptionalText,
  name: OptionalText,
  email: EmailAddressSchema.nullish(),
  /** The preferred postal address (AddressRead). */
  address: z
    .looseObject({
      id: Id.optional(),
      address_lines: OptionalText,
      city: OptionalText,
      state: OptionalText,
      postal_code: OptionalText,
      country: OptionalText,
    })
    .nullish(),
  /** The primary phone (PhoneRead). */
  phone: z.looseObject({ id: Id.optional(), number: OptionalText, type: OptionalText }).nullish(),
  inactive: z.boolean().optional(),
  deceased: z.boolean().optional(),
  date_added: OptionalText,
  date_modified: z.string().min(1),
  requests_no_email: z.boolean().optional(),
});
export type Constituent = z.infer<typeof ConstituentSchema>;

export const ConstituentCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  next_link: z.string().nullish(),
  value: z.array(ConstituentSchema),
});
export type ConstituentCollection = z.infer<typeof ConstituentCollectionSchema>;

export const EmailAddressCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  next_link: z.string().nullish(),
  value: z.array(EmailAddressSchema),
});

const CONSENT_RESPONSES = { optin: "OptIn", optout: "OptOut", noresponse: "NoResponse" } as const;

/**
 * A consent record's response. SKY's documented values are `OptIn` and `OptOut`; `NoResponse` is
 * not confirmed, and the product's own screens say "Opt-in", "Opt-out", "No response": any of these
 * spellings reads as its value (case, spaces, hyphens and underscores aside), so that one record
 * spelled otherwise does not make the whole listing unreadable, and every read after it stop.
 */
export const ConsentResponseSchema = z.preprocess(
  (v) =>
    typeof v === "string"
      ? (CONSENT_RESPONSES[v.toLowerCase().replace(/[\s_-]/g, "") as keyof typeof CONSENT_RESPONSES] ?? v)
      : v,
  z.enum(["OptIn", "OptOut", "NoResponse"]),
);
export type ConsentResponse = z.infer<typeof ConsentResponseSchema>;

/** A Communication Preference consent record (ConstituentConsentRead); records are history, never edited. */
export const ConsentRecordSchema = z.looseObject({
  id: Id,
  constituent_id: Id.optional(),
  channel: z.string().min(1),
  category: OptionalText,
  source: OptionalText,
  constituent_consent_response: ConsentResponseSchema,
  consent_date: z.string().min(1),
  consent_statement: OptionalText,
  privacy_notice: OptionalText,
  date_added: OptionalText,
  user_name: OptionalText,
});
export type ConsentRecord = z.infer<typeof ConsentRecordSchema>;

export const ConsentCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  value: z.array(ConsentRecordSchema),
});

/** A constituent custom field (CustomFieldRead); `value`'s shape follows its category's `type`. */
export const CustomFieldSchema = z.looseObject({
  id: Id,
  parent_id: Id.optional(),
  category: z.string().min(1),
  type: OptionalText,
  value: z.unknown().optional(),
  comment: OptionalText,
  date: OptionalText,
  date_added: OptionalText,
  date_modified: OptionalText,
});
export type CustomField = z.infer<typeof CustomFieldSchema>;

/** A constituent's solicit code (Communication Preference API): active from `start_date` until `end_date`. */
export const ConstituentSolicitCodeSchema = z.looseObject({
  id: z.string(),
  solicit_code: z.string(),
  start_date: z.string().nullish(),
  end_date: z.string().nullish(),
  date_added: z.string().nullish(),
});
export type ConstituentSolicitCode = z.infer<typeof ConstituentSolicitCodeSchema>;
export const ConstituentSolicitCodeCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  value: z.array(ConstituentSolicitCodeSchema),
});
/** The giving summary's latest gift (GivingSummaryRead); empty for a constituent without gifts. */
export const LatestGiftSchema = z.looseObject({
  id: z.string().nullish(),
  date: z.string().nullish(),
  type: z.string().nullish(),
});
export type LatestGift = z.infer<typeof LatestGiftSchema>;
/** An entry of the tenant's Solicit Codes table. */
export const SolicitCodeTableSchema = z.looseObject({
  value: z.array(
    z.union([
      z.string().transform((description) => ({ description, inactive: false })),
      z.looseObject({ description: z.string(), inactive: z.boolean().optional() }),
    ]),
  ),
});

export const CustomFieldCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  next_link: z.string().nullish(),
  value: z.array(CustomFieldSchema),
});
export type CustomFieldCollection = z.infer<typeof CustomFieldCollectionSchema>;

export const CustomFieldCategoryCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  value: z.array(z.looseObject({ name: z.string().min(1), type: OptionalText })),
});

export type CustomFieldAddBody = {
  parent_id: string;
  category: string;
  value: boolean;
  date?: string;
  comment?: string;
};
export type CustomFieldEditBody = { value: boolean; date?: string; comment?: string };

export const RelationshipSchema = z.looseObject({
  id: Id.optional(),
  constituent_id: Id,
  relation_id: Id.nullish(),
  is_organization_contact: z.boolean().optional().default(false),
  type: OptionalText,
});
export type Relationship = z.infer<typeof RelationshipSchema>;

export const RelationshipCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  next_link: z.string().nullish(),
  value: z.array(RelationshipSchema),
});

export const ListSchema = z.looseObject({
  id: Id,
  name: z.string(),
  record_count: z.number().int().nullish(),
});
export type List = z.infer<typeof ListSchema>;

export const ListCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  next_link: z.string().nullish(),
  value: z.array(ListSchema),
});

export const SearchResultCollectionSchema = z.looseObject({
  count: z.number().int().optional(),
  value: z.array(z.looseObject({ id: Id, email: OptionalText, address: OptionalText })),
});

/** `{ "id": "1281" }`: what every SKY create answers. */
export const CreatedSchema = z.looseObject({ id: Id });

export const WebhookSubscriptionSchema = z.looseObject({
  id: z.string().min(1),
  environment_id: OptionalText,
  webhook_url: OptionalText,
  application_id: OptionalText,
  event_type: OptionalText,
  /** Provisioning → Provisioned | Error (the field's name is unpublished: both spellings are read). */
  state: OptionalText,
  provisioning_status: OptionalText,
});
export type WebhookSubscription = z.infer<typeof WebhookSubscriptionSchema>;

/** The list answer is undocumented in what we could read: accept a bare array or a `{ value }` collection. */
export const WebhookSubscriptionListSchema = z.union([
  z.array(WebhookSubscriptionSchema),
  z.looseObject({ value: z.array(WebhookSubscriptionSchema) }).transform((c) => c.value),
]);

/** A CloudEvents 1.0 event as the Webhook API delivers it (`application/cloudevents+json`). */
export const CloudEventSchema = z.looseObject({
  specversion: z.literal("1.0"),
  type: z.string().min(1),
  source: z.string().min(1),
  id: z.string().min(1),
  subject: z.string().optional(),
  time: z.string().min(1),
  data: z
    .looseObject({
      id: Id.optional(),
      constituent_id: Id.optional(),
    })
    .optional(),
});
export type CloudEvent = z.infer<typeof CloudEventSchema>;

/** The quota and rate-limit answers: `{"statusCode":403,"message":"Out of call volume quota. …"}`. */
export const GatewayErrorSchema = z.looseObject({ statusCode: z.number().optional(), message: z.string() });
/** Constituent, Communication Preference and List API errors: an array of these. */
export const SkyErrorSchema = z.looseObject({
  message: OptionalText,
  error_name: OptionalText,
  error_code: z.union([z.number(), z.string()]).nullish(),
});
/** The Webhook API's RFC 7807 Problem Details. */
export const ProblemDetailsSchema = z.looseObject({
  title: OptionalText,
  detail: OptionalText,
  status: z.number().nullish(),
});

// ------------------------------------------------------------------ request bodies we send

/** ConstituentEdit (PATCH /constituent/v1/constituents/{id}): only the fields Concord writes. */
export type ConstituentEditBody = {
  first?: string;
  last?: string;
  name?: string;
  requests_no_email?: boolean;
  lookup_id?: string;
  preferred_name?: string;
  middle?: string;
  former_name?: string;
  suffix?: string;
  title?: string;
};

/** ConstituentAdd (POST /constituent/v1/constituents) with its inline primary email. */
export type ConstituentAddBody = {
  type: "Individual" | "Organization";
  first?: string;
  last?: string;
  name?: string;
  email?: { address: string; type: string; primary: boolean; do_not_email: boolean; inactive: boolean };
};

/** EmailAddressAdd (POST /constituent/v1/emailaddresses). */
export type EmailAddressAddBody = {
  address: string;
  constituent_id: string;
  type: string;
  primary?: boolean;
  do_not_email?: boolean;
  inactive?: boolean;
};

/** EmailAddressEdit (PATCH /constituent/v1/emailaddresses/{id}). */
export type EmailAddressEditBody = {
  address?: string;
  primary?: boolean;
  do_not_email?: boolean;
  inactive?: boolean;
};

/** ConstituentConsentAdd (POST /commpref/v1/consent/consents). */
export type ConsentAddBody = {
  constituent_id: string;
  channel: string;
  category?: string;
  source?: string;
  constituent_consent_response: "OptIn" | "OptOut";
  consent_date: string;
  consent_statement?: string;
  privacy_notice?: string;
};

/** AppendIdsToList (POST /list/v1/appendidstolist); `list_type` as Blackbaud's Power Automate connector sends it. */
export type AppendIdsBody = { list_id: string; list_type: "Constituent"; ids: string[] };

/** CreateSubscription (POST /webhook/v1/subscriptions). */
export type SubscriptionAddBody = { webhook_url: string; event_type: string };
