/** Table tests for mapping observed consent scopes to ledger scopes through the config's topics. */
import { describe, expect, it } from "vitest";
import { ConcordConfigShapeSchema } from "../config/concord-config";
import type { ObservedScope } from "../connectors/connector";
import { constructSlug, resolveObservedScope } from "./resolve-observed-scope";

const config = ConcordConfigShapeSchema.parse({
  connections: [
    { id: "re-nxt", system: "blackbaud-renxt" },
    { id: "cc-main", system: "constant-contact" },
    { id: "cc-appeals", system: "constant-contact" },
    { id: "cc-news", system: "constant-contact" },
  ],
  topics: [
    {
      key: "appeals",
      label: "Appeals",
      constructs: {
        "re-nxt": { type: "consent_category", name: "Appeals" },
        "cc-appeals": { type: "account" },
      },
    },
    {
      key: "newsletter",
      label: "Newsletter",
      constructs: {
        "re-nxt": { type: "consent_category", name: "Monthly Newsletter" },
        "cc-news": { type: "account" },
        "cc-main": { type: "list", name: "Newsletter" },
      },
    },
  ],
});
const map = (connection_id: string, observed: ObservedScope) =>
  resolveObservedScope(observed, { connection_id, topics: config.topics });
const category = (id: string): ObservedScope => ({
  kind: "construct",
  construct: { type: "consent_category", id },
});

describe("resolveObservedScope", () => {
  it.each<[string, ObservedScope, unknown]>([
    ["cc-main", { kind: "account" }, { scope: { kind: "global" } }],
    ["cc-appeals", { kind: "account" }, { scope: { kind: "topic", topic: "appeals" } }],
    ["cc-appeals", { kind: "global" }, { scope: { kind: "global" } }],
    ["re-nxt", { kind: "account" }, { scope: { kind: "global" } }],
    ["re-nxt", category("appeals "), { scope: { kind: "topic", topic: "appeals" } }],
    ["re-nxt", category("MONTHLY newsletter"), { scope: { kind: "topic", topic: "newsletter" } }],
    [
      "cc-main",
      { kind: "construct", construct: { type: "list", id: "0b9c-uuid", name: "newsletter" } },
      { scope: { kind: "topic", topic: "newsletter" } },
    ],
    [
      "cc-appeals",
      category("Appeals"),
      { scope: { kind: "topic", topic: "appeals" }, unmapped_construct: "Appeals" },
    ],
    [
      "re-nxt",
      category("Major Gifts & Events"),
      { scope: { kind: "topic", topic: "major-gifts-events" }, unmapped_construct: "Major Gifts & Events" },
    ],
  ])("%s %j → %j", (connection, observed, expected) => {
    expect(map(connection, observed)).toEqual(expected);
  });

  it("slugs a construct's name into a valid topic key, with a digest when nothing is left", () => {
    expect(constructSlug("Événements 2026")).toBe("evenements-2026");
    expect(constructSlug("x".repeat(100))).toHaveLength(64);
    expect(constructSlug("***")).toMatch(/^category-[a-f0-9]{16}$/);
  });
});
