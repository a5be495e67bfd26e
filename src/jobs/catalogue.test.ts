import { describe, expect, it } from "vitest";
import { jobKey, parsePayload } from "./catalogue";

describe("the job catalogue", () => {
  it("keys the jobs there is one of: a poll per pair, a drain per connection, one housekeeping", () => {
    expect(jobKey("poll_pair", { pair_id: "re-cc" })).toBe("poll:re-cc");
    expect(jobKey("drain_inbox", { connection_id: "re-nxt" })).toBe("inbox:re-nxt");
    expect(jobKey("housekeeping", {})).toBe("housekeeping");
    // A sync of named contacts is its own job: two deliveries' syncs never replace each other.
    expect(jobKey("sync_pair", { pair_id: "re-cc", contact_ids: ["con_1"] })).toBeUndefined();
  });

  it("checks a stored payload and says which job, which field and what was expected", () => {
    expect(parsePayload("sync_pair", { pair_id: "re-cc", contact_ids: ["con_1"] })).toEqual({
      ok: true,
      value: { pair_id: "re-cc", contact_ids: ["con_1"] },
    });
    const missing = parsePayload("poll_pair", {});
    expect(missing.ok).toBe(false);
    expect(missing.ok ? "" : missing.error).toMatch(/^job poll_pair: payload pair_id: .*expected .*pair_id/);
    const extra = parsePayload("drain_inbox", { connection_id: "re-nxt", surprise: 1 });
    expect(extra.ok ? "" : extra.error).toMatch(/^job drain_inbox: payload \(root\): .*surprise/);
  });
});
