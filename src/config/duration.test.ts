import { describe, expect, it } from "vitest";
import { parseByteSize } from "./byte-size";
import { didYouMean } from "./did-you-mean";
import { durationSchema, formatDuration, parseDuration } from "./duration";

describe("parseDuration", () => {
  it.each([
    ["60s", 60_000],
    ["1m", 60_000],
    ["90s", 90_000],
    ["1h30m", 5_400_000],
    ["24h", 86_400_000],
    ["7d", 604_800_000],
    ["500ms", 500],
    ["1m500ms", 60_500],
    ["1d2h3m4s5ms", 93_784_005],
    [" 5m ", 300_000],
  ])("%s → %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "60", "1.5h", "30m1h", "5 m", "m", "-5s", "5w", "1H"])("rejects %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [35_000, "35s"],
    [90_000, "1m30s"],
    [86_400_000, "1d"],
    [500, "500ms"],
  ])("%d → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe("durationSchema", () => {
  const schema = durationSchema({ min: 1_000, max: 3_600_000 });
  it.each([
    [60, "found the number 60 without a unit (write 60s or 60m)"],
    ["abc", 'expected a duration such as 30s, 5m, 1h30m or 24h (units d, h, m, s, ms), found "abc"'],
    ["500ms", 'expected a duration of at least 1s, found "500ms"'],
    ["2h", 'expected a duration of at most 1h, found "2h"'],
    [{ s: 1 }, "found a mapping or list"],
    [null, "found an empty value"],
  ])("%j → %s", (input, message) => {
    const result = schema.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toContain(message);
  });
});

describe("parseByteSize", () => {
  it.each([
    ["1mb", 1_048_576],
    ["512kb", 524_288],
    ["512KB", 524_288],
    ["100", 100],
    [2048, 2048],
    ["1 gb", 1_073_741_824],
  ] as const)("%j → %d", (input, bytes) => {
    expect(parseByteSize(input)).toBe(bytes);
  });
  it.each(["1.5mb", "mb", "1tb", -1, 1.5])("rejects %j", (input) => {
    expect(parseByteSize(input)).toBeUndefined();
  });
});

describe("didYouMean", () => {
  it.each([
    ["poll_intervall", ["poll_interval", "label"], "poll_interval"],
    ["polling_interval", ["poll_interval", "label"], "poll_interval"],
    ["constantcontact", ["constant-contact", "blackbaud-renxt"], "constant-contact"],
    ["re-nx", ["re-nxt", "cc-main"], "re-nxt"],
    ["prod", ["development", "production", "test"], "production"],
    ["dev", ["development", "production", "test"], "development"],
    ["pro", ["production", "profile"], undefined],
    ["zzzzzz", ["poll_interval", "label"], undefined],
    ["id", ["id"], undefined],
  ])("%s among %j → %s", (input, candidates, expected) => {
    expect(didYouMean(input, candidates)).toBe(expected);
  });
});
