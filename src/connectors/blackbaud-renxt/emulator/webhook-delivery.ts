/**
 * The emulated SKY Webhook API's delivery side: subscriptions with the CloudEvents abuse-protection
 * handshake, CloudEvents 1.0 POSTs over real HTTP, Event Grid style retries, and optional
 * duplicate and out-of-order delivery, either in the background or on demand (flush).
 */
import { randomUUID } from "node:crypto";
import { request } from "undici";
import type { DomainEvent } from "./emulator-state";
import { errorMessage } from "../../../core/error-code";

export const TEST_PAYLOAD_EVENT = "com.blackbaud.utility.testpayload.v1";

/** Event types a subscription may name; the emulator raises the constituent-side ones it models. */
export const SUPPORTED_EVENT_TYPES: readonly string[] = [
  "com.blackbaud.constituent.add.v1",
  "com.blackbaud.constituent.change.v1",
  "com.blackbaud.constituent.delete.v1",
  "com.blackbaud.constituent.emailaddress.add.v1",
  "com.blackbaud.constituent.emailaddress.change.v1",
  "com.blackbaud.constituent.emailaddress.delete.v1",
  "com.blackbaud.constituent.address.add.v1",
  "com.blackbaud.constituent.address.change.v1",
  "com.blackbaud.constituent.address.delete.v1",
  "com.blackbaud.constituent.phone.add.v1",
  "com.blackbaud.constituent.phone.change.v1",
  "com.blackbaud.constituent.phone.delete.v1",
  "com.blackbaud.constituent.relationship.add.v1",
  "com.blackbaud.constituent.relationship.change.v1",
  "com.blackbaud.constituent.relationship.delete.v1",
  "com.blackbaud.constituent.solicitcode.add.v1",
  "com.blackbaud.constituent.solicitcode.change.v1",
  "com.blackbaud.constituent.solicitcode.delete.v1",
  TEST_PAYLOAD_EVENT,
];

/** Event Grid's retry schedule (seconds after each failed attempt); `backoffScale` compresses it. */
const RETRY_SCHEDULE_SECONDS = [10, 30, 60, 300, 600, 1800, 3600, 3600, 3600];

export type WebhookOptions = {
  /** Deliver in the background as events happen (default true); when false only flush delivers. */
  autoDeliver: boolean;
  /** Deliver every event twice (same id, aeg-delivery-count + 1), as redelivery can. */
  duplicate: boolean;
  /** Deliver each batch in reverse order of occurrence. */
  reorder: boolean;
  maxAttempts: number;
  timeoutMs: number;
  /** Multiplies the retry schedule for background delivery: 0.001 turns 10 s into 10 ms. */
  backoffScale: number;
  /** Must answer within this to provision (Blackbaud: 5 minutes). */
  handshakeTimeoutMs: number;
  /** The CloudEvents `source`, an opaque routing value at Blackbaud. */
  eventSource: string;
  /** Allow http:// subscriber URLs (the real service requires https). */
  allowHttp: boolean;
};

export const DEFAULT_WEBHOOK_OPTIONS: WebhookOptions = {
  autoDeliver: true,
  duplicate: false,
  reorder: false,
  maxAttempts: 10,
  timeoutMs: 30_000,
  backoffScale: 0.001,
  handshakeTimeoutMs: 10_000,
  eventSource: "CONCORDSKYEMULATOR",
  allowHttp: true,
};

export type Subscription = {
  id: string;
  application_id: string;
  environment_id: string;
  event_type: string;
  webhook_url: string;
  state: "Provisioning" | "Provisioned" | "Error";
  date_added: string;
};

export type CloudEvent = {
  type: string;
  specversion: "1.0";
  source: string;
  subject: string;
  id: string;
  time: string;
  data: Record<string, string>;
};

export type DeliveryAttempt = {
  at: string;
  aeg_delivery_count: number;
  outcome: "delivered" | "failed";
  status?: number;
  error?: string;
  duplicate?: boolean;
};

export type Delivery = {
  delivery_id: string;
  subscription_id: string;
  webhook_url: string;
  event: CloudEvent;
  status: "pending" | "delivered" | "dead";
  attempts: DeliveryAttempt[];
  /** Real-clock time of the next background attempt. */
  next_attempt_at: number;
};

export type FlushReport = {
  handshakes: { subscription_id: string; state: Subscription["state"] }[];
  attempts: (DeliveryAttempt & {
    delivery_id: string;
    subscription_id: string;
    event_id: string;
    type: string;
  })[];
  pending: number;
};

export class WebhookHub {
  subscriptions = new Map<string, Subscription>();
  deliveries: Delivery[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private timers = new Set<NodeJS.Timeout>();
  private pumpQueued = false;
  private closed = false;

  constructor(
    private readonly options: WebhookOptions,
    private readonly ctx: { now: () => Date; environmentId: string },
  ) {}

  reset(): void {
    this.subscriptions.clear();
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

  createSubscription(
    input: { webhook_url: string; event_type: string },
    applicationId: string,
  ): Subscription {
    const sub: Subscription = {
      id: randomUUID(),
      application_id: applicationId,
      environment_id: this.ctx.environmentId,
      event_type: input.event_type,
      webhook_url: input.webhook_url,
      state: "Provisioning",
      date_added: this.ctx.now().toISOString(),
    };
    this.subscriptions.set(sub.id, sub);
    if (this.options.autoDeliver) void this.exclusive(() => this.handshake(sub));
    return sub;
  }

  deleteSubscription(id: string): boolean {
    const existed = this.subscriptions.delete(id);
    // Undelivered events for a deleted subscription are dropped, as Event Grid drops them.
    if (existed)
      this.deliveries = this.deliveries.filter((d) => d.subscription_id !== id || d.status !== "pending");
    return existed;
  }

  private async handshake(sub: Subscription): Promise<void> {
    if (sub.state !== "Provisioning" || !this.subscriptions.has(sub.id)) return;
    try {
      const res = await request(sub.webhook_url, {
        method: "OPTIONS",
        headers: { "WebHook-Request-Origin": "eventgrid.azure.net" },
        headersTimeout: this.options.handshakeTimeoutMs,
        bodyTimeout: this.options.handshakeTimeoutMs,
      });
      await res.body.dump();
      const allowed = res.headers["webhook-allowed-origin"];
      const origin = Array.isArray(allowed) ? allowed[0] : allowed;
      sub.state =
        res.statusCode >= 200 && res.statusCode < 300 && (origin === "eventgrid.azure.net" || origin === "*")
          ? "Provisioned"
          : "Error";
    } catch {
      sub.state = "Error";
    }
  }

  private cloudEvent(type: string, data: Record<string, string>): CloudEvent {
    return {
      type,
      specversion: "1.0",
      source: this.options.eventSource,
      subject: `/environments/${this.ctx.environmentId}`,
      id: randomUUID(),
      time: this.ctx.now().toISOString(),
      data,
    };
  }

  /** Queues one event for every provisioned subscription to its type. */
  publish(event: DomainEvent): void {
    if (this.closed) return;
    let queued = false;
    for (const sub of this.subscriptions.values()) {
      if (sub.state !== "Provisioned" || sub.event_type !== event.type) continue;
      this.deliveries.push({
        delivery_id: randomUUID(),
        subscription_id: sub.id,
        webhook_url: sub.webhook_url,
        // Each subscription gets its own event id, as separate Event Grid subscriptions do.
        event: this.cloudEvent(event.type, event.data),
        status: "pending",
        attempts: [],
        next_attempt_at: 0,
      });
      queued = true;
    }
    if (queued && this.options.autoDeliver) this.schedulePump(0);
  }

  private schedulePump(delayMs: number): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      if (this.pumpQueued) return;
      this.pumpQueued = true;
      // setImmediate lets one admin action's several events form one batch (so reorder shows).
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

  private async pump(all: boolean): Promise<FlushReport["attempts"]> {
    const realNow = Date.now();
    let batch = this.deliveries.filter(
      (d) => d.status === "pending" && (all || d.next_attempt_at <= realNow),
    );
    if (this.options.reorder) batch = [...batch].reverse();
    const report: FlushReport["attempts"] = [];
    for (const d of batch) {
      if (!this.subscriptions.has(d.subscription_id)) continue;
      const attempt = await this.attempt(d, d.attempts.length, false);
      report.push(this.describe(d, attempt));
      if (attempt.outcome === "delivered") {
        d.status = "delivered";
        if (this.options.duplicate) {
          const again = await this.attempt(d, d.attempts.length, true);
          report.push(this.describe(d, again));
        }
      } else if (d.attempts.length >= this.options.maxAttempts) {
        d.status = "dead";
      } else if (!all && this.options.autoDeliver) {
        const wait =
          (RETRY_SCHEDULE_SECONDS[d.attempts.length - 1] ?? 3600) * 1000 * this.options.backoffScale;
        d.next_attempt_at = Date.now() + wait;
        this.schedulePump(Math.max(1, wait));
      }
    }
    if (!all && this.options.autoDeliver) {
      // A timer may fire a little before the wall clock says its delivery is due: whatever is
      // still waiting gets a timer of its own, so no retry is left without one.
      const now = Date.now();
      const next = this.deliveries
        .filter((d) => d.status === "pending" && d.next_attempt_at > now)
        .reduce((min, d) => Math.min(min, d.next_attempt_at), Number.POSITIVE_INFINITY);
      if (next !== Number.POSITIVE_INFINITY) this.schedulePump(Math.max(1, next - now));
    }
    return report;
  }

  private describe(d: Delivery, a: DeliveryAttempt): FlushReport["attempts"][number] {
    return {
      ...a,
      delivery_id: d.delivery_id,
      subscription_id: d.subscription_id,
      event_id: d.event.id,
      type: d.event.type,
    };
  }

  private async attempt(d: Delivery, deliveryCount: number, duplicate: boolean): Promise<DeliveryAttempt> {
    const base = { at: this.ctx.now().toISOString(), aeg_delivery_count: deliveryCount };
    let result: DeliveryAttempt;
    try {
      const res = await request(d.webhook_url, {
        method: "POST",
        headers: {
          "content-type": "application/cloudevents+json; charset=utf-8",
          origin: "eventgrid.azure.net",
          "aeg-delivery-count": String(deliveryCount),
          "aeg-event-type": "Notification",
        },
        body: JSON.stringify(d.event),
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
      await res.body.dump();
      // Blackbaud counts only 200-204 as delivered.
      const ok = res.statusCode >= 200 && res.statusCode <= 204;
      result = { ...base, outcome: ok ? "delivered" : "failed", status: res.statusCode };
    } catch (error) {
      result = { ...base, outcome: "failed", error: errorMessage(error) };
    }
    if (duplicate) result.duplicate = true;
    d.attempts.push(result);
    return result;
  }

  /** Provisions waiting subscriptions, then attempts every pending delivery once, now. */
  flush(): Promise<FlushReport> {
    return this.exclusive(async () => {
      const handshakes: FlushReport["handshakes"] = [];
      for (const sub of this.subscriptions.values()) {
        if (sub.state !== "Provisioning") continue;
        await this.handshake(sub);
        handshakes.push({ subscription_id: sub.id, state: sub.state });
      }
      const attempts = await this.pump(true);
      return { handshakes, attempts, pending: this.deliveries.filter((d) => d.status === "pending").length };
    });
  }

  /** The test-payload endpoint: one synchronous delivery outside the retry machinery. */
  sendTestPayload(sub: Subscription): Promise<DeliveryAttempt> {
    return this.exclusive(async () => {
      const d: Delivery = {
        delivery_id: randomUUID(),
        subscription_id: sub.id,
        webhook_url: sub.webhook_url,
        event: this.cloudEvent(TEST_PAYLOAD_EVENT, {}),
        status: "pending",
        attempts: [],
        next_attempt_at: 0,
      };
      const attempt = await this.attempt(d, 0, false);
      d.status = attempt.outcome === "delivered" ? "delivered" : "dead";
      this.deliveries.push(d);
      return attempt;
    });
  }

  /** Waits for background work already queued (handshakes, due deliveries). */
  async idle(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.chain;
  }

  snapshot(): { subscriptions: Subscription[]; deliveries: Delivery[] } {
    return { subscriptions: [...this.subscriptions.values()], deliveries: this.deliveries };
  }
}
