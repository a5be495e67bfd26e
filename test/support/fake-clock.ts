/** A controllable clock for tests: `sleep` advances time instead of waiting, so nothing waits for real. */
export type FakeClock = {
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  advance: (ms: number) => void;
  set: (iso: string) => void;
  /** Total time spent in sleep calls. */
  slept: () => number;
};

export function createFakeClock(startIso = "2026-11-22T09:00:00.000Z"): FakeClock {
  let t = Date.parse(startIso);
  let slept = 0;
  return {
    now: () => new Date(t),
    sleep: async (ms: number) => {
      t += ms;
      slept += ms;
      await Promise.resolve();
    },
    advance: (ms: number) => {
      t += ms;
    },
    set: (iso: string) => {
      t = Date.parse(iso);
    },
    slept: () => slept,
  };
}
