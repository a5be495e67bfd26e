/** Table tests for the matcher: links first, email only when unambiguous, never a silent merge. */
import { describe, expect, it } from "vitest";
import {
  CanonicalContactSchema,
  ContactLinkSchema,
  type CanonicalContact,
  type ContactLink,
} from "./canonical-contact";
import { buildMatchIndex, matchRecord, type MatchCandidate, type MatchResult } from "./match-record";

const contact = (id: string, o: Partial<CanonicalContact> = {}): CanonicalContact =>
  CanonicalContactSchema.parse({
    id: `con_${id.padEnd(8, "0")}`,
    type: "individual",
    other_emails: [],
    lifecycle: { inactive: false, deceased: false, erased: false },
    do_not_contact: false,
    ...o,
  });
const cid = (id: string) => `con_${id.padEnd(8, "0")}`;
const link = (id: string, connection: string, external_id: string): ContactLink =>
  ContactLinkSchema.parse({
    contact_id: cid(id),
    connection,
    external_id,
    linked_at: "2024-01-01T00:00:00Z",
  });

const contacts: CanonicalContact[] = [
  contact("jane", {
    first_name: "Jane",
    primary_email: "Jane@Example.org",
    other_emails: ["jane.old@example.net"],
  }),
  contact("john", { primary_email: "john@example.org" }),
  contact("shared1", { primary_email: "family@example.org" }),
  contact("shared2", { primary_email: " FAMILY@example.org" }),
  contact("acme", { type: "organisation", organisation_name: "Acme", primary_email: "info@acme.example" }),
  contact("bob", { primary_email: "bob@example.org" }),
  contact("gone", {
    primary_email: "gone@example.org",
    lifecycle: { inactive: false, deceased: false, erased: true },
  }),
  contact("bad", { primary_email: "not-an-address" }),
  contact("second", { primary_email: "sam@example.org", other_emails: ["shared.old@example.org"] }),
  contact("third", { primary_email: "sue@example.org", other_emails: ["shared.old@example.org"] }),
];
const links: ContactLink[] = [
  link("jane", "cc_main", "cc-1"),
  link("jane", "re_main", "re-1"),
  link("bob", "cc_main", "cc-2"),
];
const index = buildMatchIndex(contacts, links);

const c = (o: Partial<MatchCandidate>): MatchCandidate => ({
  connection: "cc_main",
  external_id: "cc-new",
  ...o,
});

describe("matchRecord", () => {
  it.each<[string, MatchCandidate, MatchResult]>([
    [
      "an existing link wins over everything",
      c({ external_id: "cc-1", email: "someone.else@example.org" }),
      { kind: "linked", contact_id: cid("jane") },
    ],
    [
      "a link is per connection",
      c({ connection: "mc_main", external_id: "cc-1", email: "nobody@example.org" }),
      { kind: "new", match_key: "nobody@example.org" },
    ],
    [
      "a changed email on a linked record stays linked",
      c({ connection: "re_main", external_id: "re-1", email: "jane.new@example.org" }),
      { kind: "linked", contact_id: cid("jane") },
    ],
    [
      "one contact by normalised email",
      c({ connection: "mc_main", external_id: "mc-9", email: " JANE@example.ORG " }),
      { kind: "matched_by_email", contact_id: cid("jane"), match_key: "jane@example.org" },
    ],
    [
      "a matching type is fine",
      c({ email: "john@example.org", type: "individual" }),
      { kind: "matched_by_email", contact_id: cid("john"), match_key: "john@example.org" },
    ],
    [
      "no type given matches an organisation",
      c({ email: "info@acme.example" }),
      { kind: "matched_by_email", contact_id: cid("acme"), match_key: "info@acme.example" },
    ],
    [
      "no provider folding: dots and plus are other addresses",
      c({ email: "john+news@example.org" }),
      { kind: "new", match_key: "john+news@example.org" },
    ],
    [
      "two contacts share the address",
      c({ email: "family@example.org" }),
      {
        kind: "ambiguous",
        contact_ids: [cid("shared1"), cid("shared2")],
        reason: "several_contacts_share_email",
      },
    ],
    [
      "a person at an organisation's address",
      c({ email: "info@acme.example", type: "individual" }),
      { kind: "ambiguous", contact_ids: [cid("acme")], reason: "contact_type_differs" },
    ],
    [
      "an organisation at a person's address",
      c({ email: "john@example.org", type: "organisation" }),
      { kind: "ambiguous", contact_ids: [cid("john")], reason: "contact_type_differs" },
    ],
    [
      "a second record in a connection where the contact is linked",
      c({ email: "bob@example.org" }),
      { kind: "ambiguous", contact_ids: [cid("bob")], reason: "contact_already_linked_in_connection" },
    ],
    [
      "someone's secondary address",
      c({ email: "jane.old@example.net" }),
      { kind: "ambiguous", contact_ids: [cid("jane")], reason: "email_is_another_contacts_secondary" },
    ],
    [
      "several contacts' secondary address",
      c({ email: "shared.old@example.org" }),
      {
        kind: "ambiguous",
        contact_ids: [cid("second"), cid("third")],
        reason: "email_is_another_contacts_secondary",
      },
    ],
    [
      "an erased contact matches nothing",
      c({ email: "gone@example.org" }),
      { kind: "new", match_key: "gone@example.org" },
    ],
    [
      "a contact with an invalid address matches nothing",
      c({ email: "not-an-address" }),
      { kind: "new", match_key: null },
    ],
    ["no email: new", c({}), { kind: "new", match_key: null }],
    [
      "unknown address: new",
      c({ email: "new.person@example.org" }),
      { kind: "new", match_key: "new.person@example.org" },
    ],
  ])("%s", (_name, candidate, expected) => {
    expect(matchRecord(candidate, index)).toEqual(expected);
  });

  it("rejects ids and links that are not well formed", () => {
    expect(CanonicalContactSchema.safeParse({ ...contacts[0], id: "jane" }).success).toBe(false);
    expect(CanonicalContactSchema.safeParse({ ...contacts[0], type: "household" }).success).toBe(false);
    expect(
      ContactLinkSchema.safeParse({
        contact_id: cid("x"),
        connection: "",
        external_id: "1",
        linked_at: "2024-01-01T00:00:00Z",
      }).success,
    ).toBe(false);
  });
});
