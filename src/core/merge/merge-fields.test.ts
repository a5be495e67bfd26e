/** Table tests for the three-way field merge, its conflict resolution, and its refusal of consent fields. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CONSENT_FIELD_NAMES,
  isConsentField,
  mergeField,
  mergeFields,
  type FieldMerge,
  type FieldMergeInput,
  type FieldOwner,
} from "./merge-fields";
import type { JsonValue } from "../canonical-json";

const T1 = "2024-01-01T10:00:00Z";
const T2 = "2024-01-02T10:00:00Z";
const f = (
  owner: FieldOwner,
  baseline: JsonValue | undefined, // undefined: no baseline (first sync)
  crm: JsonValue,
  platform: JsonValue,
  times: (string | undefined)[] = [],
): FieldMergeInput => ({
  owner,
  ...(baseline === undefined ? {} : { baseline }),
  crm: { value: crm, ...(times[0] ? { changed_at: times[0] } : {}) },
  platform: { value: platform, ...(times[1] ? { changed_at: times[1] } : {}) },
});

describe("mergeField", () => {
  it.each<[string, FieldMergeInput, FieldMerge]>([
    [
      "nothing moved",
      f("latest", "Jane", "Jane", "Jane"),
      { value: "Jane", outcome: "unchanged", update: [] },
    ],
    [
      "CRM moved: platform follows",
      f("platform", "Jane", "Janet", "Jane"),
      { value: "Janet", outcome: "crm_changed", update: ["platform"] },
    ],
    [
      "platform moved: CRM follows",
      f("crm", "Jane", "Jane", "Janet"),
      { value: "Janet", outcome: "platform_changed", update: ["crm"] },
    ],
    [
      "CRM cleared: platform follows",
      f("latest", "Jane", null, "Jane"),
      { value: null, outcome: "crm_changed", update: ["platform"] },
    ],
    [
      "both moved alike",
      f("crm", "Jane", "Janet", "Janet"),
      { value: "Janet", outcome: "converged", update: [] },
    ],
    [
      "conflict, CRM owns",
      f("crm", "Jane", "Janet", "Janey", [T1, T2]),
      {
        value: "Janet",
        outcome: "conflict",
        update: ["platform"],
        conflict: { crm: "Janet", platform: "Janey", winner: "crm", resolution: "owner_crm" },
      },
    ],
    [
      "conflict, platform owns",
      f("platform", "Jane", "Janet", "Janey", [T2, T1]),
      {
        value: "Janey",
        outcome: "conflict",
        update: ["crm"],
        conflict: { crm: "Janet", platform: "Janey", winner: "platform", resolution: "owner_platform" },
      },
    ],
    [
      "conflict, latest is the platform",
      f("latest", "Jane", "Janet", "Janey", [T1, T2]),
      {
        value: "Janey",
        outcome: "conflict",
        update: ["crm"],
        conflict: { crm: "Janet", platform: "Janey", winner: "platform", resolution: "latest_platform" },
      },
    ],
    [
      "conflict, latest is the CRM",
      f("latest", "Jane", "Janet", "Janey", [T2, T1]),
      {
        value: "Janet",
        outcome: "conflict",
        update: ["platform"],
        conflict: { crm: "Janet", platform: "Janey", winner: "crm", resolution: "latest_crm" },
      },
    ],
    [
      "conflict, equal times: CRM",
      f("latest", "Jane", "Janet", "Janey", [T1, T1]),
      {
        value: "Janet",
        outcome: "conflict",
        update: ["platform"],
        conflict: { crm: "Janet", platform: "Janey", winner: "crm", resolution: "latest_tie_crm" },
      },
    ],
    [
      "conflict, unknown time: CRM",
      f("latest", "Jane", "Janet", "Janey", [undefined, T2]),
      {
        value: "Janet",
        outcome: "conflict",
        update: ["platform"],
        conflict: { crm: "Janet", platform: "Janey", winner: "crm", resolution: "latest_tie_crm" },
      },
    ],
    [
      "conflict, owner wins even when older",
      f("crm", "Jane", null, "Janey", [T1, T2]),
      {
        value: null,
        outcome: "conflict",
        update: ["platform"],
        conflict: { crm: null, platform: "Janey", winner: "crm", resolution: "owner_crm" },
      },
    ],
    [
      "first sync, equal",
      f("crm", undefined, "Jane", "Jane"),
      { value: "Jane", outcome: "unchanged", update: [] },
    ],
    [
      "first sync, platform empty: filled from CRM",
      f("platform", undefined, "Jane", null),
      { value: "Jane", outcome: "crm_changed", update: ["platform"] },
    ],
    [
      "first sync, CRM empty string: filled from platform",
      f("crm", undefined, "", "Jane"),
      { value: "Jane", outcome: "platform_changed", update: ["crm"] },
    ],
    [
      "first sync, both empty",
      f("crm", undefined, null, ""),
      { value: null, outcome: "unchanged", update: [] },
    ],
    [
      "first sync, different: a conflict",
      f("platform", undefined, "Jane", "Janey"),
      {
        value: "Janey",
        outcome: "conflict",
        update: ["crm"],
        conflict: { crm: "Jane", platform: "Janey", winner: "platform", resolution: "owner_platform" },
      },
    ],
    [
      "baseline null is a known empty",
      f("latest", null, "Jane", null),
      { value: "Jane", outcome: "crm_changed", update: ["platform"] },
    ],
    [
      "structured values compare by content, not key order",
      f(
        "latest",
        { city: "Leeds", zip: "LS1" },
        { zip: "LS1", city: "Leeds" },
        { city: "Leeds", zip: "LS1" },
      ),
      { value: { city: "Leeds", zip: "LS1" }, outcome: "unchanged", update: [] },
    ],
    [
      "arrays compare in order",
      f("crm", ["a", "b"], ["b", "a"], ["a", "b"]),
      { value: ["b", "a"], outcome: "crm_changed", update: ["platform"] },
    ],
    [
      "numbers and strings differ",
      f("crm", 1, "1", 1),
      { value: "1", outcome: "crm_changed", update: ["platform"] },
    ],
  ])("%s", (_name, input, expected) => {
    expect(mergeField(input)).toEqual(expected);
  });

  const value = fc.oneof(fc.constantFrom<JsonValue>(null, "", "a", "b", "c"), fc.integer({ min: 0, max: 2 }));
  const time = fc.option(fc.constantFrom(T1, T2), { nil: undefined });
  const input = fc
    .record({
      owner: fc.constantFrom<FieldOwner>("crm", "platform", "latest"),
      baseline: fc.option(value, { nil: undefined }),
      crm: value,
      platform: value,
      tc: time,
      tp: time,
    })
    .map(({ owner, baseline, crm, platform, tc, tp }): FieldMergeInput => ({
      owner,
      ...(baseline !== undefined ? { baseline } : {}),
      crm: { value: crm, ...(tc ? { changed_at: tc } : {}) },
      platform: { value: platform, ...(tp ? { changed_at: tp } : {}) },
    }));

  it("after writing the updates both sides hold the merged value, and a second merge is a no-op", () => {
    fc.assert(
      fc.property(input, (i) => {
        const m = mergeField(i);
        const crm = m.update.includes("crm") ? m.value : i.crm.value;
        const platform = m.update.includes("platform") ? m.value : i.platform.value;
        const emptyAlike = (v: JsonValue) => (v === "" ? null : v);
        expect(emptyAlike(crm)).toEqual(emptyAlike(platform));
        const again = mergeField({
          owner: i.owner,
          baseline: m.value,
          crm: { value: m.value },
          platform: { value: m.value },
        });
        expect(again).toEqual({ value: m.value, outcome: "unchanged", update: [] });
      }),
      { numRuns: 1000 },
    );
  });

  it("the merged value is always one side's value, and a side that did not move is never the conflict", () => {
    fc.assert(
      fc.property(input, (i) => {
        const m = mergeField(i);
        const isSide =
          JSON.stringify(m.value) === JSON.stringify(i.crm.value) ||
          JSON.stringify(m.value) === JSON.stringify(i.platform.value);
        const bothMoved =
          i.baseline !== undefined &&
          JSON.stringify(i.crm.value) !== JSON.stringify(i.baseline) &&
          JSON.stringify(i.platform.value) !== JSON.stringify(i.baseline);
        return isSide && (m.outcome !== "conflict" || i.baseline === undefined || bothMoved);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("mergeFields", () => {
  it("merges a record and gathers updates and conflicts per side", () => {
    const result = mergeFields({
      first_name: f("crm", "Jane", "Janet", "Jane"),
      last_name: f("platform", "Doe", "Dough", "Do"),
      city: f("latest", "Leeds", "Leeds", "York"),
      phone: f("latest", "1", "1", "1"),
    });
    expect(result.crm_updates).toEqual({ last_name: "Do", city: "York" });
    expect(result.platform_updates).toEqual({ first_name: "Janet" });
    expect(result.conflicts).toEqual([
      { field: "last_name", crm: "Dough", platform: "Do", winner: "platform", resolution: "owner_platform" },
    ]);
    expect(Object.keys(result.fields)).toEqual(["city", "first_name", "last_name", "phone"]);
  });

  it("refuses consent fields at compile time and at run time", () => {
    const input = f("latest", false, true, false);
    // @ts-expect-error: consent never goes through the profile merge
    expect(() => mergeFields({ first_name: f("crm", "a", "a", "a"), email_opt_out: input })).toThrow(
      /email_opt_out/,
    );
    const vendorish: Record<string, FieldMergeInput> = { HasOptedOutOfEmail: input, first_name: input };
    expect(() => mergeFields(vendorish)).toThrow(/HasOptedOutOfEmail/);
  });

  it.each([
    ...CONSENT_FIELD_NAMES.map((n) => [n, true] as const),
    ["HasOptedOutOfEmail", true],
    ["emailOptIn", true],
    ["SUBSCRIPTION_STATUS", true],
    ["Requests No Email", true],
    ["email_status", true],
    ["suppressed", true],
    ["marketing_permissions", true],
    ["doNotEmail", true],
    ["first_name", false],
    ["email", false],
    ["description", false],
    ["job_title", false],
    ["optimistic", false],
    ["city", false],
  ] as const)("isConsentField(%j) is %s", (name, expected) => {
    expect(isConsentField(name)).toBe(expected);
  });
});
