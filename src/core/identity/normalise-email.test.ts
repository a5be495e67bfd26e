/** Table tests for email normalisation: canonical forms, no provider folding, every reason code. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EMAIL_INVALID_MESSAGES,
  EMAIL_INVALID_REASONS,
  normaliseEmail,
  type EmailInvalidReason,
} from "./normalise-email";

describe("normaliseEmail: accepted", () => {
  it.each<[string, string]>([
    ["jane@example.org", "jane@example.org"],
    ["  Jane.Doe@Example.ORG \n", "jane.doe@example.org"],
    ["JANE@EXAMPLE.ORG", "jane@example.org"],
    // No provider-specific folding: these are different mailboxes on most providers.
    ["jane.doe+news@gmail.com", "jane.doe+news@gmail.com"],
    ["j.a.n.e@googlemail.com", "j.a.n.e@googlemail.com"],
    ["o'brien@example.ie", "o'brien@example.ie"],
    ["a!#$%&'*+/=?^_`{|}~-z@example.com", "a!#$%&'*+/=?^_`{|}~-z@example.com"],
    ["user@bücher.de", "user@xn--bcher-kva.de"],
    ["user@BÜCHER.DE", "user@xn--bcher-kva.de"],
    ["user@xn--bcher-kva.de", "user@xn--bcher-kva.de"],
    ["user@例え.テスト", "user@xn--r8jz45g.xn--zckzah"],
    ["josé@example.com", "josé@example.com"],
    ["JOSÉ@example.com", "josé@example.com"],
    ["jose\u0301@example.com", "josé@example.com"], // decomposed é becomes NFC
    ["user@sub.mail.example.co.uk", "user@sub.mail.example.co.uk"],
    ["user@123.example.com", "user@123.example.com"],
    ["user@a-b.example", "user@a-b.example"],
    [`${"a".repeat(64)}@example.com`, `${"a".repeat(64)}@example.com`],
  ])("%j → %s", (raw, address) => {
    expect(normaliseEmail(raw)).toEqual({ ok: true, address, match_key: address });
  });
});

describe("normaliseEmail: refused", () => {
  const long = (n: number) => `${"a".repeat(63)}.`.repeat(Math.ceil(n / 64)).slice(0, n);
  const rows: [string, EmailInvalidReason][] = [
    ["", "empty"],
    ["   \t ", "empty"],
    ["jane doe@example.org", "contains_whitespace"],
    ["jane@exam ple.org", "contains_whitespace"],
    ["jane\u00A0@example.org", "contains_whitespace"],
    ["jane\u200B@example.org", "contains_whitespace"],
    ["jane\u0000@example.org", "contains_control_character"],
    ["jane\u0085x@example.org", "contains_control_character"], // NEL: a C1 control, not JS whitespace
    ["jane\u0007@example.org", "contains_control_character"],
    ["ada\u00AD@example.org", "contains_invisible_character"], // a soft hyphen, pasted from a document
    ["ada\u200D@example.org", "contains_invisible_character"],
    ["ada\u202E@example.org", "contains_invisible_character"],
    ["jane.example.org", "missing_at"],
    ["jane@doe@example.org", "multiple_at"],
    ['"jane@doe"@example.org', "multiple_at"],
    ["@example.org", "missing_local_part"],
    ["jane@", "missing_domain"],
    [`${"a".repeat(65)}@example.com`, "local_part_too_long"],
    [`${"é".repeat(33)}@example.com`, "local_part_too_long"], // 66 bytes in UTF-8
    [`jane@${long(250)}.com`, "address_too_long"],
    [".jane@example.org", "invalid_local_part"],
    ["jane.@example.org", "invalid_local_part"],
    ["ja..ne@example.org", "invalid_local_part"],
    ["ja(ne)@example.org", "invalid_local_part"],
    ['"jane"@example.org', "invalid_local_part"],
    ["ja,ne@example.org", "invalid_local_part"],
    ["jane@[192.0.2.1]", "domain_literal_unsupported"],
    ["jane@192.0.2.1", "invalid_domain"],
    ["jane@exa_mple.org", "invalid_domain"],
    ["jane@-example.org", "invalid_domain"],
    ["jane@example-.org", "invalid_domain"],
    ["jane@example..org", "invalid_domain"],
    ["jane@example.org.", "invalid_domain"],
    ["jane@.example.org", "invalid_domain"],
    ["jane@exa%20mple.org", "invalid_domain"],
    ["jane@xn--zz.com", "invalid_domain"],
    ["jane@xn--bcher-kva.xn--zz", "invalid_domain"],
    ["jane@localhost", "domain_without_dot"],
    ["jane@LOCALHOST", "domain_without_dot"],
    [`jane@${"a".repeat(64)}.com`, "domain_label_too_long"],
  ];
  it.each(rows)("%j → %s", (raw, reason) => {
    expect(normaliseEmail(raw)).toEqual({ ok: false, reason });
  });

  it("exercises every reason code and has a sentence for each", () => {
    expect(new Set(rows.map(([, r]) => r))).toEqual(new Set(EMAIL_INVALID_REASONS));
    for (const r of EMAIL_INVALID_REASONS) expect(EMAIL_INVALID_MESSAGES[r]).toMatch(/^[A-Z].*\.$/);
  });
});

describe("normaliseEmail: properties", () => {
  it("is idempotent and an accepted address is ASCII-domained, lowercase and within limits", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.emailAddress(),
          fc.string(),
          fc.emailAddress().map((e) => ` ${e.toUpperCase()} `),
        ),
        (raw) => {
          const n = normaliseEmail(raw);
          if (!n.ok) return true;
          const again = normaliseEmail(n.address);
          const domain = n.address.slice(n.address.lastIndexOf("@") + 1);
          return (
            again.ok &&
            again.address === n.address &&
            again.match_key === n.match_key &&
            n.address === n.address.toLowerCase() &&
            /^[\x21-\x7e]+$/.test(domain) &&
            new TextEncoder().encode(n.address).length <= 254
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("accepts every address fast-check considers valid unless a limit says otherwise", () => {
    fc.assert(
      fc.property(fc.emailAddress(), (raw) => {
        const n = normaliseEmail(raw);
        return n.ok || ["address_too_long", "invalid_domain", "domain_without_dot"].includes(n.reason);
      }),
      { numRuns: 1000 },
    );
  });
});
