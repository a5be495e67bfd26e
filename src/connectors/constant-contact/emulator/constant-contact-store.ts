/**
 * The in-memory state of the Constant Contact emulator: contacts, lists, activities and the consent
 * transitions the real service applies (who opted out, who may undo it), rendered in V3 JSON shapes.
 */
import { randomUUID } from "node:crypto";

export const PERMISSIONS = [
  "explicit",
  "implicit",
  "not_set",
  "pending_confirmation",
  "temp_hold",
  "unsubscribed",
] as const;
export type Permission = (typeof PERMISSIONS)[number];
export type Source = "Contact" | "Account";

/** How an opt-out happened; kept in emulator state only, the V3 API cannot show it (QUIRKS.md). */
export type OptOutMechanism =
  "footer_link" | "one_click" | "spam_complaint" | "api_put" | "admin_ui" | "seed";

export type EmailAddress = {
  address: string;
  permission_to_send: Permission;
  created_at: string;
  updated_at: string;
  opt_in_source: Source | null;
  opt_in_date: string | null;
  opt_out_source: Source | null;
  opt_out_date: string | null;
  opt_out_reason: string | null;
  confirm_status: "pending" | "confirmed" | "off";
};

export const TOP_LEVEL_FIELDS = [
  "first_name",
  "last_name",
  "job_title",
  "company_name",
  "birthday_month",
  "birthday_day",
  "anniversary",
] as const;

export const SUB_RESOURCES = [
  "custom_fields",
  "phone_numbers",
  "street_addresses",
  "list_memberships",
  "taggings",
  "notes",
] as const;
export type SubResource = (typeof SUB_RESOURCES)[number];

export type StoredContact = {
  /** Insertion order; cursors page over it so concurrent inserts never shift a page. */
  seq: number;
  contact_id: string;
  email_address: EmailAddress | null;
  fields: Record<string, string | number | null>;
  create_source: Source;
  update_source: Source;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  custom_fields: unknown[];
  phone_numbers: any[];
  street_addresses: any[];
  list_memberships: string[];
  taggings: string[];
  notes: unknown[];
  sms_channel: unknown;
  opt_out_mechanism: OptOutMechanism | null;
  /**
   * The contact's tracking activities as the contact report gives them: only what a campaign email
   * records. An unsubscribe through the footer link or the one-click header is an `em_optouts` of the
   * campaign sent; a spam complaint is counted on the campaign (`abuse`), never on the contact.
   */
  tracking: TrackingActivity[];
  resubscribe: { sent_at: string; list_ids: string[]; confirmed_at: string | null } | null;
};

export type TrackingActivity = {
  tracking_activity_type: "em_optouts";
  campaign_activity_id: string;
  campaign_activity_name: string;
  created_time: string;
  opt_out_reason?: string;
};

/** The campaign an emulated person acts on when the act names none. */
export const DEFAULT_CAMPAIGN = {
  campaign_activity_id: "5b1f1e63-6ad9-4c0a-8a55-0c4f3d1e2a10",
  campaign_activity_name: "Monthly newsletter",
};

export type StoredList = {
  seq: number;
  list_id: string;
  name: string;
  description: string | null;
  favorite: boolean;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
};

export type ActivityKind =
  | "contacts_json_import"
  | "add_list_memberships"
  | "remove_list_memberships"
  | "contact_delete"
  | "list_delete";

export type ActivityState = "initialized" | "processing" | "completed" | "cancelled" | "failed" | "timed_out";

export type StoredActivity = {
  seq: number;
  activity_id: string;
  kind: ActivityKind;
  state: ActivityState;
  payload: any;
  polls: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  completed_at: string | null;
  percent_done: number;
  activity_errors: string[];
  status: Record<string, number>;
};

export type ConfirmationEmail = {
  kind: "resubscribe" | "confirm_opt_in";
  contact_id: string;
  email: string;
  list_ids: string[];
  sent_at: string;
};

export type EmulatorEvent = {
  at: string;
  as: "contact" | "admin" | "api";
  action: string;
  contact_id: string | null;
  email: string | null;
  mechanism?: OptOutMechanism;
  reason?: string | null;
  detail?: string;
};

export const MAX_LISTS = 1000;
export const MAX_LISTS_PER_CONTACT = 50;

/** A rule the real service enforces; the HTTP layer maps it to its documented status. */
export class StoreError extends Error {
  constructor(
    readonly status: number,
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

export class ConstantContactStore {
  contacts = new Map<string, StoredContact>();
  lists = new Map<string, StoredList>();
  activities = new Map<string, StoredActivity>();
  confirmationEmails: ConfirmationEmail[] = [];
  events: EmulatorEvent[] = [];
  private seq = 0;
  private byEmail = new Map<string, StoredContact>();
  /** Contacts in seq order (append-only), so a page starts with a binary search, not a full scan. */
  readonly ordered: StoredContact[] = [];

  constructor(
    private readonly now: () => Date,
    public confirmedOptIn: boolean,
  ) {}

  nextSeq(): number {
    this.seq += 1;
    return this.seq;
  }

  iso(): string {
    return this.now().toISOString();
  }

  reset(): void {
    this.contacts.clear();
    this.byEmail.clear();
    this.ordered.length = 0;
    this.lists.clear();
    this.activities.clear();
    this.confirmationEmails = [];
    this.events = [];
  }

  findByEmail(address: string): StoredContact | undefined {
    return this.byEmail.get(address.trim().toLowerCase());
  }

  /** Sets or changes a contact's address, keeping the address index (imports look up every row). */
  setAddress(contact: StoredContact, address: string, permission: Permission, source: Source): void {
    if (contact.email_address) {
      this.byEmail.delete(contact.email_address.address.trim().toLowerCase());
      contact.email_address.address = address;
    } else {
      contact.email_address = this.makeEmail(address, permission, source);
    }
    this.byEmail.set(address.trim().toLowerCase(), contact);
  }

  activeLists(): StoredList[] {
    return [...this.lists.values()].filter((l) => l.deleted_at === null);
  }

  /** Throws unless every id names a live list. */
  requireLists(ids: string[], field: string): void {
    for (const id of ids) {
      const list = this.lists.get(id);
      if (!list || list.deleted_at !== null) {
        throw new StoreError(404, "contacts.api.not_found", `${field}: list ${id} was not found.`);
      }
    }
  }

  newContact(input: {
    address: string | null;
    permission: Permission;
    createSource: Source;
    optInSource: Source | null;
    confirmStatus?: EmailAddress["confirm_status"];
  }): StoredContact {
    const at = this.iso();
    const email =
      input.address === null
        ? null
        : this.makeEmail(input.address, input.permission, input.optInSource, input.confirmStatus);
    const contact: StoredContact = {
      seq: this.nextSeq(),
      contact_id: randomUUID(),
      email_address: email,
      fields: {},
      create_source: input.createSource,
      update_source: input.createSource,
      created_at: at,
      updated_at: at,
      deleted_at: null,
      custom_fields: [],
      phone_numbers: [],
      street_addresses: [],
      list_memberships: [],
      taggings: [],
      notes: [],
      sms_channel: undefined,
      opt_out_mechanism: null,
      tracking: [],
      resubscribe: null,
    };
    this.contacts.set(contact.contact_id, contact);
    this.ordered.push(contact);
    if (email) this.byEmail.set(email.address.trim().toLowerCase(), contact);
    return contact;
  }

  makeEmail(
    address: string,
    permission: Permission,
    optInSource: Source | null,
    confirmStatus?: EmailAddress["confirm_status"],
  ): EmailAddress {
    const at = this.iso();
    return {
      address,
      permission_to_send: permission,
      created_at: at,
      updated_at: at,
      opt_in_source: optInSource,
      opt_in_date: isOptedIn(permission) ? at : null,
      opt_out_source: null,
      opt_out_date: null,
      opt_out_reason: null,
      confirm_status: confirmStatus ?? (permission === "pending_confirmation" ? "pending" : "off"),
    };
  }

  touch(contact: StoredContact, source: Source): void {
    const at = this.iso();
    contact.updated_at = at;
    contact.update_source = source;
    if (contact.email_address) contact.email_address.updated_at = at;
  }

  /** Records an opt-out; unsubscribed contacts belong to no list. */
  optOut(contact: StoredContact, source: Source, mechanism: OptOutMechanism, reason: string | null): void {
    const email = contact.email_address;
    if (!email)
      throw new StoreError(400, "contacts.api.validation.error", "The contact has no email address.");
    const at = this.iso();
    email.permission_to_send = "unsubscribed";
    email.opt_out_source = source;
    email.opt_out_date = at;
    email.opt_out_reason = reason;
    contact.opt_out_mechanism = mechanism;
    contact.list_memberships = [];
    if (mechanism === "footer_link" || mechanism === "one_click")
      contact.tracking.unshift({
        tracking_activity_type: "em_optouts",
        ...DEFAULT_CAMPAIGN,
        created_time: at,
        ...(reason !== null ? { opt_out_reason: reason } : {}),
      });
    this.touch(contact, source);
  }

  /** Clears an opt-out and records the new opt-in; callers check that the actor may do so. */
  optIn(contact: StoredContact, permission: Permission, source: Source): void {
    const email = contact.email_address;
    if (!email) return;
    const at = this.iso();
    const wasOptedIn = isOptedIn(email.permission_to_send);
    email.permission_to_send = permission;
    email.opt_out_source = null;
    email.opt_out_date = null;
    email.opt_out_reason = null;
    contact.opt_out_mechanism = null;
    if (isOptedIn(permission) && !wasOptedIn) {
      email.opt_in_source = source;
      email.opt_in_date = at;
    }
    if (permission === "pending_confirmation") email.confirm_status = "pending";
    this.touch(contact, source);
  }

  /** Adds lists, keeping the 50-list cap; returns false when the cap would be passed. */
  addLists(contact: StoredContact, ids: string[]): boolean {
    const merged = [...new Set([...contact.list_memberships, ...ids])];
    if (merged.length > MAX_LISTS_PER_CONTACT) return false;
    contact.list_memberships = merged;
    return true;
  }

  softDelete(contact: StoredContact): void {
    contact.deleted_at = this.iso();
    contact.list_memberships = [];
    contact.updated_at = this.iso();
  }

  deleteList(list: StoredList): void {
    const at = this.iso();
    list.deleted_at = at;
    list.updated_at = at;
    for (const c of this.contacts.values()) {
      if (c.list_memberships.includes(list.list_id)) {
        c.list_memberships = c.list_memberships.filter((id) => id !== list.list_id);
      }
    }
  }

  log(event: Omit<EmulatorEvent, "at">): void {
    this.events.push({ at: this.iso(), ...event });
  }

  membershipCount(listId: string, activeOnly: boolean): number {
    let n = 0;
    for (const c of this.contacts.values()) {
      if (c.deleted_at !== null || !c.list_memberships.includes(listId)) continue;
      if (activeOnly && !isOptedIn(c.email_address?.permission_to_send)) continue;
      n += 1;
    }
    return n;
  }
}

export function isOptedIn(permission: Permission | undefined): boolean {
  return permission === "explicit" || permission === "implicit";
}

/** A contact opted out by their own action stays out until they act again (spec: opt_out_source). */
export function isContactOptOut(contact: StoredContact): boolean {
  return (
    contact.email_address?.permission_to_send === "unsubscribed" &&
    contact.email_address.opt_out_source === "Contact"
  );
}

export function isUnsubscribed(contact: StoredContact): boolean {
  return contact.email_address?.permission_to_send === "unsubscribed";
}

/** Renders a contact as GET /contacts/{id} does: null fields are omitted, sub-resources only on request. */
export function renderContact(contact: StoredContact, include: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = { contact_id: contact.contact_id };
  if (contact.email_address) out.email_address = dropNulls({ ...contact.email_address });
  for (const field of TOP_LEVEL_FIELDS) {
    const value = contact.fields[field];
    if (value !== null && value !== undefined) out[field] = value;
  }
  out.update_source = contact.update_source;
  out.create_source = contact.create_source;
  out.created_at = contact.created_at;
  out.updated_at = contact.updated_at;
  // The spec types deleted_at as a date, not a date-time.
  if (contact.deleted_at !== null) out.deleted_at = contact.deleted_at.slice(0, 10);
  for (const sub of SUB_RESOURCES) {
    if (include.has(sub)) out[sub] = contact[sub];
  }
  if (contact.sms_channel !== undefined && include.has("sms_channel")) out.sms_channel = contact.sms_channel;
  return out;
}

export const ALL_INCLUDES: ReadonlySet<string> = new Set<string>([...SUB_RESOURCES]);

export function renderList(list: StoredList, membershipCount?: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    list_id: list.list_id,
    name: list.name,
    favorite: list.favorite,
    created_at: list.created_at,
    updated_at: list.updated_at,
  };
  if (list.description !== null) out.description = list.description;
  if (list.deleted_at !== null) out.deleted_at = list.deleted_at;
  if (membershipCount !== undefined) out.membership_count = membershipCount;
  return out;
}

export function renderActivity(activity: StoredActivity): Record<string, unknown> {
  const out: Record<string, unknown> = {
    activity_id: activity.activity_id,
    state: activity.state,
    created_at: activity.created_at,
    updated_at: activity.updated_at,
  };
  if (activity.started_at !== null) out.started_at = activity.started_at;
  if (activity.completed_at !== null) out.completed_at = activity.completed_at;
  out.percent_done = activity.percent_done;
  out.activity_errors = activity.activity_errors;
  out.status = activity.status;
  out._links = { self: { href: `/v3/activities/${activity.activity_id}` } };
  return out;
}

function dropNulls(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== null && v !== undefined));
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function isValidEmail(value: unknown): value is string {
  return typeof value === "string" && value.length <= 80 && EMAIL_RE.test(value);
}
