/** The V8 flags Concord sets must be flags this Node knows: V8 ignores an unknown one without a word. */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { V8_FLAGS } from "./v8-settings";

describe("V8 settings", () => {
  it.each(V8_FLAGS)("%s is a flag this Node accepts", (flag) => {
    const run = spawnSync(process.execPath, [flag, "-e", "0"], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("an unknown flag is refused the same way, so the check above can fail", () => {
    const run = spawnSync(process.execPath, ["--no-concord-no-such-flag", "-e", "0"], { encoding: "utf8" });
    expect(run.status).not.toBe(0);
  });
});
