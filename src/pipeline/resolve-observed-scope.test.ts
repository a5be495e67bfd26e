/** Table tests for mapping observed consent scopes to ledger scopes through a pair's config. */
import { describe, expect, it } from "vitest";
import { ConcordConfigShapeSchema } from "../config/concord-config";
import type { ObservedScope } from "../connectors/connector";
import { categorySlug, resolveObservedScope } from "./resolve-observed-scope";

const config = ConcordConfigShapeSchema.parse({
  connections: [
    { id: "re-nxt", system: "blackbaud-renxt" },
    { id: "cc-main", system: "constant-contact" },
    { id: "cc-appeals", system: "constant-contact" },
    { id: "cc-news", system: "constant-contact" },
  ],
  topics: [
    { key: "appeals", label: "Appeals", crm_categories: { "re-nxt": "Appeals" } },
    { key: "newsletter", label: "Newsletter" },
  ],
  pairs: [
    {
      id: "p",
      crm: "re-nxt",
      platforms: [
        { connection: "cc-main" },
        { connection: "cc-appeals", topic: "appeals" },
        { connection: "cc-news", topic: "newsletter", crm_category: "Monthly Newsletter" },
      ],
    },
  ],
});
const pair = config.pairs[0]!;
const map = (connection_id: string, observed: ObservedScope) =>
  resolveObservedScope(observed, { connection_id, pair, topics: config.topics });

describe("resolveObservedScope", () => {
  it.each([
    ["cc-main", { kind: "account" }, { scope: { kind: "global" } }],
    ["cc-appeals", { kind: "account" }, { scope: { kind: "topic", topic: "appeals" } }],
    ["cc-appeals", { kind: "global" }, { scope: { kind: "global" } }],
    ["re-nxt", { kind: "account" }, { scope: { kind: "global" } }],
    ["re-nxt", { kind: "category", category: "appeals " }, { scope: { kind: "topic", topic: "appeals" } }],
    [
      "re-nxt",
      { kind: "category", category: "MONTHLY newsletter" },
      { scope: { kind: "topic", topic: "newsletter" } },
    ],
    [
      "re-nxt",
      { kind: "category", category: "Major Gifts & Events" },
      { scope: { kind: "topic", topic: "major-gifts-events" }, unmapped_category: "Major Gifts & Events" },
    ],
  ] as const)("%s %j → %j", (connection, observed, expected) => {
    expect(map(connection, observed)).toEqual(expected);
  });

  it("slugs a category into a valid topic key, with a digest when nothing is left", () => {
    expect(categorySlug("Événements 2026")).toBe("evenements-2026");
    expect(categorySlug("x".repeat(100))).toHaveLength(64);
    expect(categorySlug("***")).toMatch(/^category-[a-f0-9]{16}$/);
  });
});
