import { describe, expect, it } from "vitest";
import { logThrottle } from "./log-throttle";

describe("logThrottle", () => {
  it("lets one line a window through for each kind, and the next says how many it held back", () => {
    let t = Date.parse("2026-12-07T10:00:00Z");
    const throttle = logThrottle(() => new Date(t), 60_000);
    expect(throttle("a")).toEqual({ log: true, held_back: 0 });
    expect(throttle("a")).toEqual({ log: false });
    expect(throttle("a")).toEqual({ log: false });
    // Another kind has its own window.
    expect(throttle("b")).toEqual({ log: true, held_back: 0 });
    t += 59_999;
    expect(throttle("a")).toEqual({ log: false });
    t += 1;
    expect(throttle("a")).toEqual({ log: true, held_back: 3 });
    expect(throttle("a")).toEqual({ log: false });
  });

  it("keeps at most maxKinds kinds, dropping the oldest", () => {
    const t = Date.parse("2026-12-07T10:00:00Z");
    const throttle = logThrottle(() => new Date(t), 60_000, 2);
    expect(throttle("a").log).toBe(true);
    expect(throttle("b").log).toBe(true);
    expect(throttle("c").log).toBe(true);
    // "a" was dropped to make room: it logs again; "c" is still held.
    expect(throttle("a").log).toBe(true);
    expect(throttle("c").log).toBe(false);
  });
});
