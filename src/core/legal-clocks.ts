/**
 * The legal clocks an opt-out runs against (DESIGN.md §2 rule 9): mailbox providers want it
 * honoured within 2 days; CAN-SPAM and CASL within 10 business days. Business days skip weekends
 * and the organisation's holidays, counted in UTC calendar days. Pure: the engine, the overview and
 * the alerts all ask here.
 */

export type LegalClock = {
  key: "mailbox_providers" | "can_spam" | "casl";
  name: string;
  /** Calendar days, or business days. */
  days: number;
  unit: "calendar_days" | "business_days";
};

export const LEGAL_CLOCKS: readonly LegalClock[] = [
  {
    key: "mailbox_providers",
    name: "Mailbox providers (Gmail, Yahoo): 2 days",
    days: 2,
    unit: "calendar_days",
  },
  { key: "can_spam", name: "CAN-SPAM: 10 business days", days: 10, unit: "business_days" },
  { key: "casl", name: "CASL: 10 business days", days: 10, unit: "business_days" },
];

/** Days that are not business days besides Saturday and Sunday, as `YYYY-MM-DD` (UTC). */
export type BusinessCalendar = { holidays: ReadonlySet<string> };

export const calendarOf = (holidays: readonly string[] = []): BusinessCalendar => ({
  holidays: new Set(holidays),
});

const DAY_MS = 86_400_000;

export function isBusinessDay(dayStartMs: number, calendar: BusinessCalendar): boolean {
  const weekday = new Date(dayStartMs).getUTCDay();
  if (weekday === 0 || weekday === 6) return false;
  return !calendar.holidays.has(new Date(dayStartMs).toISOString().slice(0, 10));
}

/**
 * The moment `n` business days after `fromMs`: the same time of day on the n-th business day that
 * follows (an act on a weekend or holiday starts counting from the next business day's start).
 */
export function addBusinessDays(fromMs: number, n: number, calendar: BusinessCalendar): number {
  let day = Math.floor(fromMs / DAY_MS) * DAY_MS;
  let timeOfDay = fromMs - day;
  if (!isBusinessDay(day, calendar)) timeOfDay = 0;
  let left = n;
  while (left > 0) {
    day += DAY_MS;
    if (isBusinessDay(day, calendar)) left -= 1;
  }
  return day + timeOfDay;
}

/** When an opt-out made at `actedMs` must be honoured by, under `clock`. */
export function deadlineOf(clock: LegalClock, actedMs: number, calendar: BusinessCalendar): number {
  return clock.unit === "calendar_days"
    ? actedMs + clock.days * DAY_MS
    : addBusinessDays(actedMs, clock.days, calendar);
}

export type ClockStanding = "met" | "running" | "due_soon" | "breached";

/**
 * Where an opt-out stands against a clock: `met` when applied by the deadline (`appliedMs`), else
 * `breached` past it, `due_soon` within `warnMs` of it, `running` before that.
 */
export function standing(
  clock: LegalClock,
  actedMs: number,
  appliedMs: number | undefined,
  nowMs: number,
  warnMs: number,
  calendar: BusinessCalendar,
): ClockStanding {
  const deadline = deadlineOf(clock, actedMs, calendar);
  if (appliedMs !== undefined) return appliedMs <= deadline ? "met" : "breached";
  if (nowMs > deadline) return "breached";
  return deadline - nowMs <= warnMs ? "due_soon" : "running";
}

/**
 * How long `[fromMs, toMs)` lasted in the clock's unit: calendar days, or the time that fell on
 * business days (a Friday-evening act applied on Monday morning took a few business hours, not 3 days).
 */
export function elapsedDays(
  clock: LegalClock,
  fromMs: number,
  toMs: number,
  calendar: BusinessCalendar,
): number {
  if (toMs <= fromMs) return 0;
  if (clock.unit === "calendar_days") return (toMs - fromMs) / DAY_MS;
  let total = 0;
  let dayStart = Math.floor(fromMs / DAY_MS) * DAY_MS;
  // Lags beyond ten years are not measured day by day: they are breaches whatever they are.
  const stop = Math.min(toMs, fromMs + 3650 * DAY_MS);
  while (dayStart < stop) {
    const next = dayStart + DAY_MS;
    if (isBusinessDay(dayStart, calendar)) total += Math.min(next, stop) - Math.max(dayStart, fromMs);
    dayStart = next;
  }
  return total / DAY_MS;
}
