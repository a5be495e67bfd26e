/**
 * The screening every bulk upsert does before it calls its vendor: an address the vendor would
 * refuse fails at once (with the reason), and a second item with the same address (by Concord's
 * email key) is dropped, so one batch never names a person twice. What is left is sent in order.
 */
import type { OperationOutcome } from "../connector";
import { emailKey } from "../../core/identity/normalise-email";

export type ScreenedItems<I> = {
  /** The items to send, in the order given. */
  send: I[];
  /** Each address's item, by email key (a vendor's answer is matched back through it). */
  byEmail: Map<string, I>;
  /** The outcomes of the items screened out. */
  outcomes: OperationOutcome[];
};

export function screenUpsertItems<I extends { item_id: string; email: string }>(
  op_id: string,
  items: readonly I[],
  usable: (email: string) => boolean,
): ScreenedItems<I> {
  const send: I[] = [];
  const byEmail = new Map<string, I>();
  const outcomes: OperationOutcome[] = [];
  for (const item of items) {
    if (!usable(item.email)) {
      outcomes.push({
        op_id,
        item_id: item.item_id,
        status: "failed",
        code: "validation_failed",
        message: `"${item.email}" is not a usable email address.`,
      });
      continue;
    }
    const key = emailKey(item.email);
    const first = byEmail.get(key);
    if (first) {
      outcomes.push({
        op_id,
        item_id: item.item_id,
        status: "skipped",
        code: "duplicate_in_batch",
        message: `Same address as item ${first.item_id} in this batch; dropped.`,
      });
      continue;
    }
    byEmail.set(key, item);
    send.push(item);
  }
  return { send, byEmail, outcomes };
}

/** Deliberately plain: the vendor has the last word; this keeps obvious junk out of a batch. */
const EMAIL_RE =
  /^[^\s@"(),:;<>[\\\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

/** Whether an address is worth sending to a vendor whose addresses are at most `max` characters. */
export const isPlausibleEmail = (email: string, max = 254): boolean =>
  email.trim().length <= max && EMAIL_RE.test(email.trim());
