/**
 * Webhook deliveries as a vendor's sender makes them: each delivery is POSTed over real HTTP to
 * its receiver, one at a time in order, retried on a schedule when the receiver fails or is slower
 * than the vendor waits, and given up after the schedule ends. Deliveries go out in the background
 * as they are queued, or only when a test flushes them. The vendor's emulator decides what a
 * delivery carries (its body, content type and headers); this queue only carries it.
 */
import { randomUUID } from "node:crypto";
import { request } from "undici";

export type DeliveryQueueOptions = {
  /** Deliver in the background as deliveries are queued; when false only `flush` delivers. */
  autoDeliver: boolean;
  /** How long the sender waits for an answer before it counts the attempt as failed. */
  timeoutMs: number;
  /** Waits before each retry, in vendor time (ms); the schedule's length is the retry count. */
  retryScheduleMs: readonly number[];
  /** Multiplies the schedule for background delivery (0.001 turns a minute into 60 ms). */
  backoffScale: number;
  /** Which answers count as delivered. */
  delivered: (status: number) => boolean;
  /** The sender's User-Agent. */
  user_agent: string;
  /** The wall clock retries are timed by (ms; default `Date.now`): timers keep their own time. */
  wall_clock?: () => number;
};

export type QueuedDelivery = {
  delivery_id: string;
  /** The subscription (webhook) it was made for. */
  hook_id: string;
  url: string;
  content_type: string;
  body: string;
  /** What it announces, for the state view ("unsubscribe"). */
  type: string;
  status: "pending" | "delivered" | "dead";
  attempts: { at: string; outcome: "delivered" | "failed"; status?: number; error?: string }[];
  /** Real-clock time of the next background attempt. */
  next_attempt_at: number;
};

export class DeliveryQueue {
  deliveries: QueuedDelivery[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private timers = new Set<NodeJS.Timeout>();
  private pumpQueued = false;
  private closed = false;

  constructor(
    private readonly options: DeliveryQueueOptions,
    private readonly now: () => Date,
  ) {}

  reset(): void {
    this.deliveries = [];
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  close(): void {
    this.closed = true;
    this.reset();
  }

  /** Runs jobs one at a time so background delivery and flush never send the same attempt twice. */
  private exclusive<T>(job: () => Promise<T>): Promise<T> {
    const run = this.chain.then(job, job);
    this.chain = run.catch(() => undefined);
    return run;
  }

  enqueue(d: { hook_id: string; url: string; content_type: string; body: string; type: string }): void {
    if (this.closed) return;
    this.deliveries.push({
      delivery_id: randomUUID(),
      ...d,
      status: "pending",
      attempts: [],
      next_attempt_at: 0,
    });
    if (this.options.autoDeliver) this.schedulePump(0);
  }

  /** Drops the pending deliveries of a deleted subscription. */
  dropHook(hookId: string): void {
    this.deliveries = this.deliveries.filter((d) => d.hook_id !== hookId || d.status !== "pending");
  }

  private schedulePump(delayMs: number): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      if (this.pumpQueued) return;
      this.pumpQueued = true;
      setImmediate(() => {
        this.pumpQueued = false;
        void this.exclusive(() => this.pump(false));
      });
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.exclusive(() => this.pump(false));
    }, delayMs);
    this.timers.add(timer);
  }

  private wall(): number {
    return (this.options.wall_clock ?? Date.now)();
  }

  private async pump(all: boolean): Promise<number> {
    const realNow = this.wall();
    const due = this.deliveries.filter(
      (d) => d.status === "pending" && (all || d.next_attempt_at <= realNow),
    );
    let attempted = 0;
    for (const d of due) {
      if (this.closed) break;
      attempted += 1;
      const outcome = await this.attempt(d);
      if (outcome === "delivered") {
        d.status = "delivered";
        continue;
      }
      const wait = this.options.retryScheduleMs[d.attempts.length - 1];
      if (wait === undefined) {
        d.status = "dead";
        continue;
      }
      if (!all && this.options.autoDeliver) {
        const scaled = Math.max(1, wait * this.options.backoffScale);
        d.next_attempt_at = this.wall() + scaled;
        this.schedulePump(scaled);
      }
    }
    if (!all && this.options.autoDeliver) this.rescheduleWaiting();
    return attempted;
  }

  /**
   * A timer may fire a little before the wall clock says its delivery is due (timers and
   * `Date.now()` keep time apart): whatever is still waiting gets a timer of its own, so no
   * retry is left without one.
   */
  private rescheduleWaiting(): void {
    const now = this.wall();
    const next = this.deliveries
      .filter((d) => d.status === "pending" && d.next_attempt_at > now)
      .reduce((min, d) => Math.min(min, d.next_attempt_at), Number.POSITIVE_INFINITY);
    if (next !== Number.POSITIVE_INFINITY) this.schedulePump(Math.max(1, next - now));
  }

  private async attempt(d: QueuedDelivery): Promise<"delivered" | "failed"> {
    const at = this.now().toISOString();
    try {
      const res = await request(d.url, {
        method: "POST",
        headers: { "content-type": d.content_type, "user-agent": this.options.user_agent },
        body: d.body,
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
      await res.body.dump();
      const outcome = this.options.delivered(res.statusCode) ? "delivered" : "failed";
      d.attempts.push({ at, outcome, status: res.statusCode });
      return outcome;
    } catch (error) {
      d.attempts.push({
        at,
        outcome: "failed",
        error: error instanceof Error ? error.message : String(error),
      });
      return "failed";
    }
  }

  /** Attempts every pending delivery once, now; answers how many were attempted and how many wait. */
  flush(): Promise<{ attempted: number; pending: number }> {
    return this.exclusive(async () => {
      const attempted = await this.pump(true);
      return { attempted, pending: this.deliveries.filter((d) => d.status === "pending").length };
    });
  }

  /** Waits for background work already queued. */
  async idle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.chain;
  }
}
