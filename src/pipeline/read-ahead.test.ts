/** Reading one page ahead: the next page is asked for while the current one is handled. */
import { setImmediate as turn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { readAhead } from "./read-ahead";

/** A read of `n` pages that logs when each page is asked for and when the read is closed. */
function pages(n: number, log: string[], failAt?: number) {
  return (async function* () {
    try {
      for (let i = 0; i < n; i += 1) {
        log.push(`fetch ${i}`);
        await turn();
        if (i === failAt) throw new Error(`page ${i} failed`);
        yield i;
      }
    } finally {
      log.push("closed");
    }
  })();
}

describe("readAhead", () => {
  it("asks for the next page while the caller still handles the current one, and keeps their order", async () => {
    const log: string[] = [];
    const seen: number[] = [];
    for await (const page of readAhead(pages(3, log))) {
      log.push(`handle ${page}`);
      // Whatever the caller awaits (a store transaction), the next page is already on its way.
      await turn();
      await turn();
      if (page < 2) expect(log).toContain(`fetch ${page + 1}`);
      seen.push(page);
    }
    expect(seen).toEqual([0, 1, 2]);
    expect(log.indexOf("fetch 1")).toBeLessThan(log.indexOf("handle 1"));
    expect(log).toContain("closed");
  });

  it("hands the caller a failed page's error after the pages before it", async () => {
    const log: string[] = [];
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const page of readAhead(pages(3, log, 1))) seen.push(page);
      })(),
    ).rejects.toThrow("page 1 failed");
    expect(seen).toEqual([0]);
    expect(log).toContain("closed");
  });

  it("closes the read when the caller stops early, the page fetched meanwhile dropped even if it fails", async () => {
    const log: string[] = [];
    for await (const page of readAhead(pages(3, log, 1))) {
      expect(page).toBe(0);
      break;
    }
    expect(log).toEqual(["fetch 0", "fetch 1", "closed"]);
  });
});
