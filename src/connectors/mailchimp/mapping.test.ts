// How a Mailchimp member's status reads as consent when the member names no time of its last change.
import { describe, expect, it } from "vitest";
import { memberToConsent } from "./mapping";
import { McMemberSchema } from "./schemas";

const seen = "2026-05-01T09:00:00.000Z";
const member = (fields: Record<string, unknown>) =>
  McMemberSchema.parse({ id: "abc", email_address: "ann@example.org", contact_id: "c1", ...fields });

describe("memberToConsent", () => {
  it.each([[undefined], [""], ["not a time"]])(
    "an unsubscribed member whose last_changed is %j is an opt-out dated when it was seen, not in 1970",
    (last_changed) => {
      const [optOut] = memberToConsent(
        member({ status: "unsubscribed", ...(last_changed === undefined ? {} : { last_changed }) }),
        seen,
      );
      expect(optOut).toMatchObject({ kind: "opt_out", occurred_at: seen, time_unknown: true });
    },
  );

  it("a cleaned member without last_changed is dated when it was seen", () => {
    expect(memberToConsent(member({ status: "cleaned" }), seen)).toMatchObject([
      { kind: "deliverability", occurred_at: seen },
    ]);
  });

  it("a member's own last_changed dates its opt-out", () => {
    expect(
      memberToConsent(member({ status: "unsubscribed", last_changed: "2026-03-02T10:00:00+00:00" }), seen),
    ).toMatchObject([{ kind: "opt_out", occurred_at: "2026-03-02T10:00:00.000Z" }]);
  });
});
