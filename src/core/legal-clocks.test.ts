import { describe, expect, it } from "vitest";
import { addBusinessDays, calendarOf, deadlineOf, elapsedDays, LEGAL_CLOCKS, standing } from "./legal-clocks";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const canSpam = LEGAL_CLOCKS.find((c) => c.key === "can_spam")!;
const mailbox = LEGAL_CLOCKS.find((c) => c.key === "mailbox_providers")!;

describe("legal clocks in business days", () => {
  it("skips weekends: 10 business days from a Wednesday end on the second Wednesday after", () => {
    // 2026-12-02 is a Wednesday.
    expect(iso(addBusinessDays(at("2026-12-02T15:00:00Z"), 10, calendarOf()))).toBe(
      "2026-12-16T15:00:00.000Z",
    );
    // From a Friday: Monday is the first business day.
    expect(iso(addBusinessDays(at("2026-12-04T09:30:00Z"), 1, calendarOf()))).toBe(
      "2026-12-07T09:30:00.000Z",
    );
  });

  it("starts an act on a weekend or holiday at the next business day's start", () => {
    expect(iso(addBusinessDays(at("2026-12-05T18:00:00Z"), 1, calendarOf()))).toBe(
      "2026-12-07T00:00:00.000Z",
    );
  });

  it("skips the organisation's holidays", () => {
    const holidays = calendarOf(["2026-12-25", "2026-12-28"]);
    // Thursday 24th + 10 business days, skipping the 25th, the weekend, the 28th and the next weekend.
    expect(iso(deadlineOf(canSpam, at("2026-12-24T12:00:00Z"), holidays))).toBe("2027-01-11T12:00:00.000Z");
    expect(iso(deadlineOf(canSpam, at("2026-12-24T12:00:00Z"), calendarOf()))).toBe(
      "2027-01-07T12:00:00.000Z",
    );
  });

  it("the mailbox providers' clock is 2 calendar days", () => {
    expect(iso(deadlineOf(mailbox, at("2026-12-05T10:00:00Z"), calendarOf()))).toBe(
      "2026-12-07T10:00:00.000Z",
    );
  });

  it("says where a pending or applied opt-out stands", () => {
    const acted = at("2026-12-02T10:00:00Z");
    const day = 86_400_000;
    const cal = calendarOf();
    expect(standing(mailbox, acted, undefined, acted + day / 2, day, cal)).toBe("running");
    expect(standing(mailbox, acted, undefined, acted + 1.5 * day, day, cal)).toBe("due_soon");
    expect(standing(mailbox, acted, undefined, acted + 3 * day, day, cal)).toBe("breached");
    expect(standing(mailbox, acted, acted + day, acted + 3 * day, day, cal)).toBe("met");
    expect(standing(mailbox, acted, acted + 3 * day, acted + 3 * day, day, cal)).toBe("breached");
  });
});

describe("elapsedDays", () => {
  const none = calendarOf([]);
  it("counts calendar days, or only the time on business days", () => {
    const fri = Date.parse("2026-06-05T18:00:00Z");
    const mon = Date.parse("2026-06-08T06:00:00Z");
    expect(elapsedDays(mailbox, fri, mon, none)).toBeCloseTo(2.5);
    expect(elapsedDays(canSpam, fri, mon, none)).toBeCloseTo(0.5);
    expect(elapsedDays(canSpam, fri, mon, calendarOf(["2026-06-08"]))).toBeCloseTo(0.25);
    expect(elapsedDays(canSpam, mon, fri, none)).toBe(0);
  });
});
