/**
 * Zod schemas for the Constant Contact V3 payloads the connector reads: tolerant of keys we do not
 * use (`z.looseObject`), strict on the ones we do. Field names and enums follow the official spec
 * (shared/specs/constant-contact/csharp-client-openapi/openapi.yaml).
 */
import { z } from "zod";

/** Timestamps arrive as ISO-8601 with a zone ("…Z" or "…-05:00"); dates of deletion as YYYY-MM-DD. */
const Timestamp = z.string().refine((v) => !Number.isNaN(Date.parse(v)), "expected an ISO-8601 timestamp");
const Source = z.string(); // "Contact" | "Account"; kept open so a new value is reported, not rejected

export const PermissionToSendSchema = z.enum([
  "explicit",
  "implicit",
  "not_set",
  "pending_confirmation",
  "temp_hold",
  "unsubscribed",
]);
export type PermissionToSend = z.infer<typeof PermissionToSendSchema>;

export const CcEmailAddressSchema = z.looseObject({
  address: z.string(),
  permission_to_send: PermissionToSendSchema.optional(),
  created_at: Timestamp.optional(),
  updated_at: Timestamp.optional(),
  opt_in_source: Source.optional(),
  opt_in_date: Timestamp.optional(),
  opt_out_source: Source.optional(),
  opt_out_date: Timestamp.optional(),
  opt_out_reason: z.string().nullable().optional(),
  confirm_status: z.string().optional(),
});
export type CcEmailAddress = z.infer<typeof CcEmailAddressSchema>;

export const CcCustomFieldSchema = z.looseObject({
  custom_field_id: z.string(),
  value: z.string().nullable().optional(),
  choice_ids: z.array(z.string()).optional(),
});

export const CcPhoneNumberSchema = z.looseObject({
  kind: z.string().optional(),
  phone_number: z.string().optional(),
});

export const CcStreetAddressSchema = z.looseObject({
  kind: z.string(),
  street: z.string().nullable().optional(),
  city: z.string().nullable().optional(),
  state: z.string().nullable().optional(),
  postal_code: z.string().nullable().optional(),
  country: z.string().nullable().optional(),
});

export const CcNoteSchema = z.looseObject({
  note_id: z.string().optional(),
  created_at: Timestamp.optional(),
  content: z.string().optional(),
});

export const CcContactSchema = z.looseObject({
  contact_id: z.string().min(1),
  email_address: CcEmailAddressSchema.optional(),
  first_name: z.string().nullable().optional(),
  last_name: z.string().nullable().optional(),
  job_title: z.string().nullable().optional(),
  company_name: z.string().nullable().optional(),
  birthday_month: z.number().int().nullable().optional(),
  birthday_day: z.number().int().nullable().optional(),
  anniversary: z.string().nullable().optional(),
  create_source: Source.optional(),
  update_source: Source.optional(),
  created_at: Timestamp.optional(),
  updated_at: Timestamp.optional(),
  deleted_at: Timestamp.nullable().optional(),
  custom_fields: z.array(CcCustomFieldSchema).optional(),
  phone_numbers: z.array(CcPhoneNumberSchema).optional(),
  street_addresses: z.array(CcStreetAddressSchema).optional(),
  list_memberships: z.array(z.string()).optional(),
  taggings: z.array(z.string()).optional(),
  notes: z.array(CcNoteSchema).optional(),
});
export type CcContact = z.infer<typeof CcContactSchema>;

const LinksSchema = z
  .looseObject({ next: z.looseObject({ href: z.string().nullable().optional() }).nullable().optional() })
  .optional();

export const CcContactsPageSchema = z.looseObject({
  contacts: z.array(CcContactSchema).default([]),
  contacts_count: z.number().int().optional(),
  _links: LinksSchema,
  status: z.string().optional(),
});
export type CcContactsPage = z.infer<typeof CcContactsPageSchema>;

export const CcListSchema = z.looseObject({
  list_id: z.string().min(1),
  name: z.string(),
  membership_count: z.number().int().optional(),
  deleted_at: Timestamp.nullable().optional(),
});

export const CcListsPageSchema = z.looseObject({
  lists: z.array(CcListSchema).default([]),
  lists_count: z.number().int().optional(),
  _links: LinksSchema,
});

export const ActivityStateSchema = z.enum([
  "initialized",
  "processing",
  "completed",
  "cancelled",
  "failed",
  "timed_out",
]);
export type ActivityState = z.infer<typeof ActivityStateSchema>;

/** One bulk activity (import, membership add/remove), as created (201) and as polled. */
/** A page of the contact report (GET /reports/contact_reports/{id}/activity_details), newest first. */
export const CcTrackingPageSchema = z.looseObject({
  tracking_activities: z
    .array(
      z.looseObject({
        campaign_activity_id: z.string(),
        campaign_activity_name: z.string().optional(),
        tracking_activity_type: z.string().optional(),
        created_time: z.string().optional(),
      }),
    )
    .default([]),
});

export const CcActivitySchema = z.looseObject({
  activity_id: z.string().min(1),
  state: ActivityStateSchema,
  percent_done: z.number().optional(),
  activity_errors: z.array(z.string()).optional(),
  status: z
    .looseObject({
      items_total_count: z.number().int().optional(),
      items_completed_count: z.number().int().optional(),
      person_count: z.number().int().optional(),
      error_count: z.number().int().optional(),
      correctable_count: z.number().int().optional(),
      cannot_add_to_list_count: z.number().int().optional(),
      list_count: z.number().int().optional(),
    })
    .optional(),
});
export type CcActivity = z.infer<typeof CcActivitySchema>;

/** POST /contacts answers the created contact; only its id matters to us. */
export const CcCreatedContactSchema = z.looseObject({ contact_id: z.string().min(1) });

/** Constant Contact's error body: a JSON array of `{error_key, error_message}` (401 may be a bare object). */
export const CcErrorItemSchema = z.looseObject({
  error_key: z.string(),
  error_message: z.string().optional(),
});
export const CcErrorBodySchema = z.union([z.array(CcErrorItemSchema), CcErrorItemSchema]);
export type CcErrorItem = z.infer<typeof CcErrorItemSchema>;

/** Reads the error keys out of any error body shape, or none. */
export function errorItems(body: unknown): CcErrorItem[] {
  const parsed = CcErrorBodySchema.safeParse(body);
  if (!parsed.success) return [];
  return Array.isArray(parsed.data) ? parsed.data : [parsed.data];
}
