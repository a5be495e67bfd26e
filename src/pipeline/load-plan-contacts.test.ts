import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BaselinesSchema, readBaselines } from "./load-plan-contacts";

describe("a contact's stored baselines, read without the schema's copy", () => {
  it("reads what the schema reads, and refuses what it refuses, for values damaged anywhere", () => {
    const value = fc.oneof(
      fc.string({ maxLength: 4 }),
      fc.constant(null),
      fc.integer(),
      fc.boolean(),
      fc.constant([]),
      fc.constant({}),
    );
    const connection = fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), value), value);
    const stored = fc.oneof(
      fc.dictionary(fc.string({ maxLength: 4 }), connection),
      value,
      fc.array(connection, { maxLength: 2 }),
    );
    fc.assert(
      fc.property(stored, (baselines) => {
        const json = JSON.stringify(baselines);
        const schema = BaselinesSchema.safeParse(JSON.parse(json));
        expect(readBaselines(json)).toEqual(schema.success ? schema.data : undefined);
      }),
      { numRuns: 2000 },
    );
  });

  it("reads a baseline as stored", () => {
    expect(readBaselines('{"cc-main":{"email":"ada@example.org","first_name":null}}')).toEqual({
      "cc-main": { email: "ada@example.org", first_name: null },
    });
    expect(readBaselines('{"cc-main":{"email":1}}')).toBeUndefined();
    expect(readBaselines('{"cc-main":["ada"]}')).toBeUndefined();
    expect(readBaselines("[]")).toBeUndefined();
  });
});
