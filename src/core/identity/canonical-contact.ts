/** The canonical contact Concord keeps for one person or organisation, and its links to records in each connection. */
import { z } from "zod";

export const ContactIdSchema = z.string().regex(/^con_[A-Za-z0-9_-]{8,}$/, "expected an id like con_…");
export type ContactId = z.infer<typeof ContactIdSchema>;

export const ContactTypeSchema = z.enum(["individual", "organisation"]);
export type ContactType = z.infer<typeof ContactTypeSchema>;

/** A connection is one account in one system (a CRM tenant, a Mailchimp audience), by its configured id. */
export const ConnectionIdSchema = z.string().min(1).max(128);
export type ConnectionId = z.infer<typeof ConnectionIdSchema>;

export const CanonicalContactSchema = z
  .object({
    id: ContactIdSchema,
    type: ContactTypeSchema,
    first_name: z.string().max(200).optional(),
    last_name: z.string().max(200).optional(),
    /** The organisation's name, or an individual's employer. */
    organisation_name: z.string().max(300).optional(),
    /**
     * As held by the system of record, not normalised: an invalid address must stay visible so
     * eligibility can say why it was skipped. Absent after erasure.
     */
    primary_email: z.string().max(512).optional(),
    other_emails: z.array(z.string().max(512)).max(50),
    lifecycle: z
      .object({
        inactive: z.boolean(),
        deceased: z.boolean(),
        /** Personal data removed; the suppression survives elsewhere as a keyed hash (DESIGN.md §2 rule 8). */
        erased: z.boolean(),
      })
      .strict(),
    /** The CRM's "do not contact" / "do not solicit" flag: no channel at all, whatever consent says. */
    do_not_contact: z.boolean(),
  })
  .strict();
export type CanonicalContact = z.infer<typeof CanonicalContactSchema>;

/** A record in one connection that represents a canonical contact; identity follows this link, not the email. */
export const ContactLinkSchema = z
  .object({
    contact_id: ContactIdSchema,
    connection: ConnectionIdSchema,
    external_id: z.string().min(1).max(200),
    linked_at: z.iso.datetime({ offset: false }),
  })
  .strict();
export type ContactLink = z.infer<typeof ContactLinkSchema>;
