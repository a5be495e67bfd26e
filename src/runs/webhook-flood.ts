/**
 * Webhook floods: what keeps one huge or repeated delivery from spending a connection's quota and
 * holding up its polls. A delivery may name at most `MAX_EVENTS_PER_DELIVERY` events; an event seen
 * in the last day is not stored again; and a record re-read for a kind of change after a delivery of
 * that kind arrived is not re-read for it (the read saw everything the delivery announced). Re-reads stop while a quarter or less of
 * the connection's daily quota is left: the records are read by the next poll, and the rest is kept
 * for consent writes (whose reserve no read ever touches) and polls.
 */
import type { QuotaUsage, WebhookChange } from "../connectors/connector";

/** More events than this in one delivery are refused (413): no vendor sends that many at once. */
export const MAX_EVENTS_PER_DELIVERY = 1_000;
/** An event id seen within this window is a redelivery. */
const SEEN_WINDOW_MS = 24 * 3_600_000;
/** Event ids remembered (the oldest go first); a redelivery after that costs one re-read. */
const SEEN_MAX = 100_000;
/** Webhook re-reads stop when this share of the daily quota or less is left. */
export const WEBHOOK_QUOTA_FLOOR = 0.25;

/**
 * Event ids already stored, per connection, for a day (in memory: a restart forgets them), and the
 * ones whose first delivery is being stored. A redelivery that arrives while the first is still
 * being written is answered only once that write is done, and as it went: were it acknowledged at
 * once and the first write then failed (or the process stopped), the vendor would take the event as
 * delivered and it would be lost.
 */
export function seenEvents(now: () => Date) {
  const seen = new Map<string, number>();
  const writing = new Map<string, Promise<boolean>>();
  return {
    /**
     * The changes not seen before, each event once, for the caller to store and then `settle`;
     * and, for events another delivery is storing, whether those writes stored them.
     */
    claim(connectionId: string, changes: readonly WebhookChange[]): WebhookClaim {
      const at = now().getTime();
      const fresh: WebhookChange[] = [];
      const elsewhere = new Set<Promise<boolean>>();
      const keys = new Set<string>();
      let done!: (stored: boolean) => void;
      const ours = new Promise<boolean>((resolve) => (done = resolve));
      for (const change of changes) {
        const key = `${connectionId}\u0000${change.event_id}`;
        if (keys.has(key)) continue;
        const pending = writing.get(key);
        if (pending !== undefined) {
          elsewhere.add(pending);
          continue;
        }
        const when = seen.get(key);
        if (when !== undefined && at - when < SEEN_WINDOW_MS) continue;
        keys.add(key);
        writing.set(key, ours);
        fresh.push(change);
      }
      let settled = false;
      const settle = (stored: boolean): void => {
        if (settled) return;
        settled = true;
        const when = now().getTime();
        for (const key of keys) {
          writing.delete(key);
          if (!stored) continue;
          seen.delete(key);
          seen.set(key, when);
        }
        while (seen.size > SEEN_MAX) {
          const oldest = seen.keys().next();
          if (oldest.done === true) break;
          seen.delete(oldest.value);
        }
        done(stored);
      };
      return { fresh, elsewhere: [...elsewhere], settle };
    },
  };
}

/** A delivery's claim on its events (`seenEvents`). */
export type WebhookClaim = {
  /** The events this delivery stores. */
  fresh: WebhookChange[];
  /** Other deliveries' writes of the rest: whether each stored its events. */
  elsewhere: Promise<boolean>[];
  /** Stored: the events are seen for a day. Not stored: a redelivery is taken. */
  settle: (stored: boolean) => void;
};

/**
 * One hint per record and kind of change: a thousand events about one record are one re-read. An
 * announced opt-out is a kind of its own, per actor: a later plain change to the record (Mailchimp's
 * "cleaned" after an "unsubscribe") must not drop it, since the re-read may no longer show it.
 */
export function distinctChanges(changes: readonly WebhookChange[]): WebhookChange[] {
  const byRecord = new Map<string, WebhookChange>();
  for (const change of changes) {
    const optOut = change.opt_out === undefined ? "" : (change.opt_out.actor ?? "person");
    byRecord.set(`${change.external_id}\u0000${change.change}\u0000${optOut}`, change);
  }
  return [...byRecord.values()];
}

/**
 * When each record was last re-read for each kind of change, per connection: a later delivery of
 * that kind about it needs no re-read. Per kind, since a re-read reads what its change can have
 * changed and no more (a Raiser's Edge NXT constituent's change reads no solicit codes): a read for
 * one kind does not cover a delivery of another that arrived before it.
 */
export function recentReads() {
  const reads = new Map<string, Map<string, number>>();
  const key = (c: Pick<WebhookChange, "external_id" | "change">): string =>
    `${c.external_id}\u0000${c.change}`;
  return {
    /**
     * The changes a re-read of their kind since `received_at` has not covered. An announced
     * opt-out is never covered: a re-read may not show it (`WebhookChange.opt_out`).
     */
    uncovered(connectionId: string, received_at: string, changes: readonly WebhookChange[]): WebhookChange[] {
      const read = reads.get(connectionId);
      const received = Date.parse(received_at);
      if (read === undefined || Number.isNaN(received)) return [...changes];
      return changes.filter(
        (c) => c.opt_out !== undefined || (read.get(key(c)) ?? Number.NEGATIVE_INFINITY) < received,
      );
    },
    /** The records of `changes` were re-read for those changes as of `at` (when the read started). */
    record(
      connectionId: string,
      changes: readonly Pick<WebhookChange, "external_id" | "change">[],
      at: number,
    ): void {
      const read = reads.get(connectionId) ?? new Map<string, number>();
      for (const c of changes) read.set(key(c), at);
      reads.set(connectionId, read);
    },
    /** Drops reads older than `before`: deliveries received since are all newer. */
    prune(before: number): void {
      for (const read of reads.values()) for (const [id, at] of read) if (at < before) read.delete(id);
    },
  };
}

/** Whether webhook re-reads must leave the rest of today's quota to polls and consent writes. */
export const webhookShareSpent = (usage: QuotaUsage): boolean =>
  usage.daily_quota !== null &&
  usage.remaining !== null &&
  usage.remaining <= usage.daily_quota * WEBHOOK_QUOTA_FLOOR;
