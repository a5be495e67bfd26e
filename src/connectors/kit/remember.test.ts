import { describe, expect, it } from "vitest";
import { err, ok } from "../../core/result";
import type { ConnectorResult } from "../connector";
import { createRemember } from "./remember";

describe("createRemember", () => {
  it("keeps an answer for its time to live, shares one load between callers, and never keeps a failure", async () => {
    let at = 0;
    const remember = createRemember(() => new Date(at));
    const answers: ConnectorResult<number>[] = [
      err({ code: "vendor_unavailable", message: "503" }),
      ok(1),
      ok(2),
    ];
    let loads = 0;
    const load = async (): Promise<ConnectorResult<number>> => answers[loads++]!;

    expect((await remember("t", 1000, load)).ok).toBe(false);
    const [a, b] = await Promise.all([remember("t", 1000, load), remember("t", 1000, load)]);
    expect([a, b]).toEqual([ok(1), ok(1)]);
    at = 999;
    expect(await remember("t", 1000, load)).toEqual(ok(1));
    expect(loads).toBe(2);
    at = 1000;
    expect(await remember("t", 1000, load)).toEqual(ok(2));
    expect(loads).toBe(3);
  });
});
