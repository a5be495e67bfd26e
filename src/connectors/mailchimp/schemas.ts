/**
 * The Mailchimp Marketing API answers Concord reads, as zod schemas: loose objects (Mailchimp adds
 * fields), strict about the fields Concord acts on.
 */
import { z } from "zod";

export const MemberStatusSchema = z.enum([
  "subscribed",
  "unsubscribed",
  "cleaned",
  "pending",
  "transactional",
  "archived",
]);
export type McMemberStatus = z.infer<typeof MemberStatusSchema>;

export const McMemberSchema = z.looseObject({
  id: z.string(),
  email_address: z.string(),
  contact_id: z.string().optional(),
  status: MemberStatusSchema,
  unsubscribe_reason: z.string().optional(),
  merge_fields: z.record(z.string(), z.unknown()).optional(),
  interests: z.record(z.string(), z.boolean()).optional(),
  marketing_permissions: z
    .array(
      z.looseObject({
        marketing_permission_id: z.string(),
        text: z.string().optional(),
        enabled: z.boolean().optional(),
      }),
    )
    .optional(),
  timestamp_signup: z.string().optional(),
  timestamp_opt: z.string().optional(),
  ip_opt: z.string().optional(),
  last_changed: z.string().optional(),
  source: z.string().optional(),
  /** At most 50 of the member's tags; `tags_count` says how many it has. */
  tags: z.array(z.looseObject({ id: z.number(), name: z.string() })).optional(),
  tags_count: z.number().int().nonnegative().optional(),
  list_id: z.string().optional(),
});
export type McMember = z.infer<typeof McMemberSchema>;

export const McMembersPageSchema = z.looseObject({
  members: z.array(McMemberSchema),
  total_items: z.number().int().nonnegative(),
});

export const McAudiencesSchema = z.looseObject({
  lists: z.array(z.looseObject({ id: z.string(), name: z.string(), double_optin: z.boolean().optional() })),
  total_items: z.number().int().nonnegative(),
});

export const McBatchAnswerSchema = z.looseObject({
  new_members: z.array(z.looseObject({ id: z.string(), email_address: z.string(), status: z.string() })),
  updated_members: z.array(z.looseObject({ id: z.string(), email_address: z.string(), status: z.string() })),
  errors: z.array(
    z.looseObject({
      email_address: z.string().optional(),
      error: z.string().optional(),
      error_code: z.string().optional(),
      field: z.string().optional(),
      field_message: z.string().optional(),
    }),
  ),
});
export type McBatchAnswer = z.infer<typeof McBatchAnswerSchema>;

/** `GET /lists/{id}/members/{hash}/tags`: all of a member's tags, a page at a time. */
export const McMemberTagsSchema = z.looseObject({
  tags: z.array(z.looseObject({ id: z.number(), name: z.string() })),
  total_items: z.number().int().nonnegative(),
});

export const McTagsSchema = z.looseObject({
  segments: z.array(
    z.looseObject({
      id: z.number(),
      name: z.string(),
      member_count: z.number().optional(),
      type: z.string().optional(),
    }),
  ),
  total_items: z.number().int().nonnegative(),
});

export const McCategoriesSchema = z.looseObject({
  categories: z.array(z.looseObject({ id: z.string(), title: z.string() })),
  total_items: z.number().int().nonnegative(),
});

export const McInterestsSchema = z.looseObject({
  interests: z.array(z.looseObject({ id: z.string(), name: z.string(), category_id: z.string() })),
  total_items: z.number().int().nonnegative(),
});

export const McSegmentBatchSchema = z.looseObject({
  total_added: z.number().optional(),
  total_removed: z.number().optional(),
  errors: z
    .array(z.looseObject({ email_addresses: z.array(z.string()).optional(), error: z.string().optional() }))
    .optional(),
});

export const McWebhookSchema = z.looseObject({ id: z.string(), url: z.string() });
export const McWebhooksSchema = z.looseObject({ webhooks: z.array(McWebhookSchema) });

/** A problem document (RFC 7807), as Mailchimp answers every error. */
export const McProblemSchema = z.looseObject({
  title: z.string().optional(),
  detail: z.string().optional(),
  status: z.number().optional(),
  errors: z.array(z.looseObject({ field: z.string().optional(), message: z.string().optional() })).optional(),
});
export type McProblem = z.infer<typeof McProblemSchema>;

export function problemOf(body: unknown): McProblem {
  const parsed = McProblemSchema.safeParse(body);
  return parsed.success ? parsed.data : {};
}
