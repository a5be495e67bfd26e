/**
 * The shape most behaviour tests share: Raiser's Edge NXT paired with two Constant Contact
 * accounts, the second standing for the Appeals topic (the Appeals consent category in the CRM).
 */

/** The Appeals topic: the CRM's consent category and the whole "appeals" account (a fresh copy). */
export const appealsTopic = () => ({
  key: "appeals",
  label: "Fundraising appeals",
  constructs: {
    "re-nxt": { type: "consent_category", name: "Appeals" } as Record<string, string>,
    "cc-appeals": { type: "account" } as Record<string, string>,
  },
});

/** The pair of the CRM and both accounts; `extra` adds audiences, fields, policies… */
export const reCcPair = (extra: Record<string, unknown> = {}) => ({
  id: "re-cc",
  crm: "re-nxt",
  platforms: [{ connection: "cc-main" }, { connection: "cc-appeals" }],
  ...extra,
});
