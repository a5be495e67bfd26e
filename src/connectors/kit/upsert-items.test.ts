import { describe, expect, it } from "vitest";
import { isPlausibleEmail, screenUpsertItems } from "./upsert-items";
import { secretMatches } from "./webhook-secret";

describe("screenUpsertItems", () => {
  it("fails unusable addresses, drops a second item with the same address, and keeps the order of the rest", () => {
    const items = [
      { item_id: "a", email: "Ada@Example.org" },
      { item_id: "b", email: "not-an-address" },
      { item_id: "c", email: "ada@example.org " },
      { item_id: "d", email: "bob@example.org" },
    ];
    const screened = screenUpsertItems("op1", items, (e) => isPlausibleEmail(e));
    expect(screened.send.map((i) => i.item_id)).toEqual(["a", "d"]);
    expect(screened.outcomes).toEqual([
      expect.objectContaining({ op_id: "op1", item_id: "b", status: "failed", code: "validation_failed" }),
      expect.objectContaining({ item_id: "c", status: "skipped", code: "duplicate_in_batch" }),
    ]);
    expect(screened.byEmail.get("ada@example.org")?.item_id).toBe("a");
  });

  it("holds addresses to the vendor's length", () => {
    const long = `${"x".repeat(70)}@example.org`;
    expect(isPlausibleEmail(long)).toBe(true);
    expect(isPlausibleEmail(long, 80)).toBe(false);
    expect(isPlausibleEmail("a@b")).toBe(false);
  });
});

describe("secretMatches", () => {
  it("matches only the same secret, and never an empty one", () => {
    expect(secretMatches("s3cret", "s3cret")).toBe(true);
    expect(secretMatches("s3cret!", "s3cret")).toBe(false);
    expect(secretMatches(undefined, "s3cret")).toBe(false);
    expect(secretMatches("", "")).toBe(false);
  });
});
