/**
 * The bulk-activity queue of the Constant Contact emulator: activities start "initialized", move a
 * step each time they are looked at, and do their work on completion, in queue order.
 */
import { randomUUID } from "node:crypto";
import {
  MAX_LISTS_PER_CONTACT,
  StoreError,
  isOptedIn,
  isUnsubscribed,
  isValidEmail,
  type ActivityKind,
  type ConstantContactStore,
  type StoredActivity,
  type StoredContact,
} from "./constant-contact-store";
import { applyImportRow } from "./request-parsing";
import { errorMessage } from "../../../core/error-code";

const MAX_QUEUED_ACTIVITIES = 1000;

export class ActivityRunner {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly store: ConstantContactStore,
    /** Looks until an activity completes; the earlier ones answer "processing". */
    private readonly pollsToComplete: number,
    /** For demos: also complete after this many real milliseconds (0 = never by time). */
    private readonly delayMs: number,
  ) {}

  /** Forgets pending timers (reset and close). */
  cancelTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  queue(kind: ActivityKind, payload: unknown, status: Record<string, number>): StoredActivity {
    const queued = [...this.store.activities.values()].filter(
      (a) => a.state === "initialized" || a.state === "processing",
    );
    if (queued.length >= MAX_QUEUED_ACTIVITIES) {
      throw new StoreError(
        429,
        "activities.api.too_many_requests",
        "Too many requests. You exceeded 1,000 queued activities for this user account.",
      );
    }
    const at = this.store.iso();
    const activity: StoredActivity = {
      seq: this.store.nextSeq(),
      activity_id: randomUUID(),
      kind,
      state: "initialized",
      payload,
      polls: 0,
      created_at: at,
      updated_at: at,
      started_at: null,
      completed_at: null,
      percent_done: 0,
      activity_errors: [],
      status,
    };
    this.store.activities.set(activity.activity_id, activity);
    if (this.delayMs > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.completeThrough(activity);
      }, this.delayMs);
      timer.unref();
      this.timers.add(timer);
    }
    return activity;
  }

  /** Each look at a queued activity moves it one step; work happens on completion, in queue order. */
  observe(activity: StoredActivity): void {
    if (activity.state !== "initialized" && activity.state !== "processing") return;
    activity.polls += 1;
    if (activity.polls >= this.pollsToComplete) {
      this.completeThrough(activity);
      return;
    }
    const at = this.store.iso();
    activity.state = "processing";
    activity.started_at ??= at;
    activity.updated_at = at;
    activity.percent_done = Math.floor((100 * activity.polls) / this.pollsToComplete);
  }

  completeThrough(activity: StoredActivity): void {
    const pending = [...this.store.activities.values()]
      .filter((a) => a.seq <= activity.seq && (a.state === "initialized" || a.state === "processing"))
      .sort((a, b) => a.seq - b.seq);
    for (const a of pending) this.runActivity(a);
  }

  private runActivity(activity: StoredActivity): void {
    const at = this.store.iso();
    activity.started_at ??= at;
    try {
      if (activity.kind === "contacts_json_import") this.runImport(activity);
      else if (activity.kind === "add_list_memberships" || activity.kind === "remove_list_memberships")
        this.runMembership(activity);
      else if (activity.kind === "contact_delete") this.runContactDelete(activity);
      else this.runListDelete(activity);
      activity.state = "completed";
    } catch (error) {
      activity.state = "failed";
      activity.activity_errors.push(errorMessage(error));
    }
    activity.percent_done = 100;
    activity.completed_at = at;
    activity.updated_at = at;
  }

  private runImport(activity: StoredActivity): void {
    const { import_data, list_ids } = activity.payload as { import_data: unknown[]; list_ids: string[] };
    const status = activity.status;
    import_data.forEach((raw, index) => {
      const line = index + 1;
      const row = (raw !== null && typeof raw === "object" ? raw : {}) as Record<string, unknown>;
      const emailValue = typeof row.email === "string" ? row.email.trim() : undefined;
      if (emailValue === undefined && row.sms_number === undefined) {
        activity.activity_errors.push(`Line ${line}: a contact needs an email or an sms_number.`);
        status.error_count = (status.error_count ?? 0) + 1;
        return;
      }
      if (emailValue !== undefined && (!isValidEmail(emailValue) || emailValue.length > 50)) {
        activity.activity_errors.push(`Line ${line}: "${emailValue}" is not a valid email address.`);
        status.error_count = (status.error_count ?? 0) + 1;
        return;
      }
      if (emailValue === undefined) {
        // SMS-only contacts are not emulated; count them as processed without a record.
        status.person_count = (status.person_count ?? 0) + 1;
        return;
      }
      let contact = this.store.findByEmail(emailValue);
      if (!contact) {
        contact = this.store.newContact({
          address: emailValue,
          permission: "implicit",
          createSource: "Account",
          optInSource: "Account",
        });
      } else {
        contact.deleted_at = null;
        this.store.touch(contact, "Account");
      }
      applyImportRow(contact, row);
      status.person_count = (status.person_count ?? 0) + 1;
      if (isUnsubscribed(contact)) {
        status.cannot_add_to_list_count = (status.cannot_add_to_list_count ?? 0) + 1;
        return;
      }
      if (!this.store.addLists(contact, list_ids)) {
        activity.activity_errors.push(
          `Line ${line}: ${emailValue} would exceed ${MAX_LISTS_PER_CONTACT} lists.`,
        );
        status.error_count = (status.error_count ?? 0) + 1;
      }
    });
  }

  private resolveSource(activity: StoredActivity, source: Record<string, unknown>): StoredContact[] {
    if (Array.isArray(source.contact_ids)) {
      const found: StoredContact[] = [];
      for (const id of source.contact_ids as string[]) {
        const c = this.store.contacts.get(id);
        if (!c || c.deleted_at !== null) activity.activity_errors.push(`Contact ${id} was not found.`);
        else found.push(c);
      }
      return found;
    }
    const live = [...this.store.contacts.values()]
      .filter((c) => c.deleted_at === null)
      .sort((a, b) => a.seq - b.seq);
    if (Array.isArray(source.list_ids)) {
      const ids = source.list_ids as string[];
      return live.filter((c) => ids.some((id) => c.list_memberships.includes(id)));
    }
    return live.filter((c) => isOptedIn(c.email_address?.permission_to_send));
  }

  private runMembership(activity: StoredActivity): void {
    const { source, list_ids } = activity.payload as { source: Record<string, unknown>; list_ids: string[] };
    const contacts = this.resolveSource(activity, source);
    const status = activity.status;
    status.items_total_count = contacts.length;
    let done = 0;
    for (const c of contacts) {
      if (activity.kind === "remove_list_memberships") {
        c.list_memberships = c.list_memberships.filter((id) => !list_ids.includes(id));
        this.store.touch(c, "Account");
        done += 1;
        continue;
      }
      // Unsubscribed contacts cannot be put on lists by the account.
      if (isUnsubscribed(c)) continue;
      if (!this.store.addLists(c, list_ids)) {
        activity.activity_errors.push(`Contact ${c.contact_id} would exceed ${MAX_LISTS_PER_CONTACT} lists.`);
        continue;
      }
      this.store.touch(c, "Account");
      done += 1;
    }
    status.items_completed_count = done;
  }

  private runContactDelete(activity: StoredActivity): void {
    const { contact_ids, list_ids } = activity.payload as { contact_ids?: string[]; list_ids?: string[] };
    const contacts = this.resolveSource(activity, contact_ids ? { contact_ids } : { list_ids });
    activity.status.items_total_count = contacts.length;
    for (const c of contacts) this.store.softDelete(c);
    activity.status.items_completed_count = contacts.length;
  }

  private runListDelete(activity: StoredActivity): void {
    const { list_ids } = activity.payload as { list_ids: string[] };
    let done = 0;
    for (const id of list_ids) {
      const list = this.store.lists.get(id);
      if (!list || list.deleted_at !== null) {
        activity.activity_errors.push(`List ${id} was not found.`);
        continue;
      }
      this.store.deleteList(list);
      done += 1;
    }
    activity.status.items_total_count = list_ids.length;
    activity.status.items_completed_count = done;
  }
}
