/**
 * The state of an emulated Mailchimp account and its rules: audiences, members keyed by the MD5 of
 * the lower-cased address, statuses and the compliance rules on them (an unsubscribed, cleaned or
 * reported member cannot be set back to subscribed; `pending` sends a confirmation email instead;
 * a permanently deleted address cannot be imported again), groups (interests), tags, merge fields
 * and marketing permissions. Every change says who made it (`user`, `admin` or `api`), which is
 * what Mailchimp's webhooks filter on. The routes in mailchimp-emulator.ts render it.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";

export type MemberStatus =
  "subscribed" | "unsubscribed" | "cleaned" | "pending" | "transactional" | "archived";
/** Who made a change, in Mailchimp's webhook terms. */
export type ChangeSource = "user" | "admin" | "api";

export type MergeField = {
  merge_id: number;
  tag: string;
  name: string;
  type:
    | "text"
    | "number"
    | "address"
    | "phone"
    | "date"
    | "url"
    | "imageurl"
    | "radio"
    | "dropdown"
    | "birthday"
    | "zip";
  required: boolean;
  public: boolean;
  display_order: number;
  default_value: string;
};

export type InterestCategory = {
  id: string;
  title: string;
  type: "checkboxes" | "dropdown" | "radio" | "hidden";
  display_order: number;
};
export type Interest = { id: string; category_id: string; name: string; display_order: number };
export type Tag = { id: number; name: string; created_at: string; updated_at: string };
export type MarketingPermission = { marketing_permission_id: string; text: string };

/** How a member left, as far as Mailchimp records it. */
export type Unsubscription = {
  source: ChangeSource;
  /** `unsub`: an unsubscribe; `abuse`: a spam complaint (the member is under compliance review). */
  reason: "manual" | "abuse";
  /** What the member chose on the unsubscribe form, or the admin's note. */
  text?: string;
  campaign_id?: string;
  /** The act behind it, for the state view: a link, the one-click header, a complaint, an admin, the API. */
  via: "link" | "one_click" | "spam_complaint" | "admin" | "api";
  at: string;
};

export type Member = {
  id: string;
  email_address: string;
  unique_email_id: string;
  contact_id: string;
  web_id: number;
  email_type: "html" | "text";
  status: MemberStatus;
  /** The status before the member was archived. */
  archived_from?: Exclude<MemberStatus, "archived">;
  merge_fields: Record<string, string | number>;
  interests: Record<string, boolean>;
  tags: Map<number, string>;
  marketing_permissions: Record<string, boolean>;
  ip_signup: string;
  timestamp_signup: string;
  ip_opt: string;
  timestamp_opt: string;
  last_changed: string;
  language: string;
  vip: boolean;
  source: string;
  unsubscription: Unsubscription | null;
  /** Reported as spam: the address stays unsubscribed; only the person can come back (a new sign-up form). */
  compliance: boolean;
  /** A confirmation email sent and not yet confirmed (double opt-in, or a resubscribe by `pending`). */
  confirmation_sent_at: string | null;
  created_at: string;
};

export type Audience = {
  id: string;
  web_id: number;
  name: string;
  date_created: string;
  double_optin: boolean;
  permission_reminder: string;
  from_name: string;
  from_email: string;
  marketing_permissions_enabled: boolean;
  members: Map<string, Member>;
  /** The same members by contact id (an address change keeps it). */
  byContactId: Map<string, Member>;
  merge_fields: MergeField[];
  categories: InterestCategory[];
  interests: Interest[];
  tags: Tag[];
  permissions: MarketingPermission[];
  /** Hashes of permanently deleted addresses. */
  forgotten: Set<string>;
};

export type ConfirmationEmail = {
  list_id: string;
  email: string;
  kind: "opt_in" | "resubscribe";
  at: string;
};

/** A refused request, as Mailchimp's problem document says it. */
export class MailchimpError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly errors?: { field: string; message: string }[],
  ) {
    super(detail);
  }
}

/** A change to announce through the audience's webhooks. */
export type MemberEvent =
  | {
      type: "subscribe" | "profile" | "cleaned";
      source: ChangeSource;
      list_id: string;
      member: Member;
      reason?: string;
      campaign_id?: string;
    }
  | {
      type: "unsubscribe";
      source: ChangeSource;
      list_id: string;
      member: Member;
      action: "unsub" | "delete";
      reason: "manual" | "abuse";
      campaign_id?: string;
    }
  | {
      type: "upemail";
      source: ChangeSource;
      list_id: string;
      member: Member;
      old_email: string;
      new_email: string;
    };

export const subscriberHash = (email: string): string =>
  createHash("md5").update(email.trim().toLowerCase()).digest("hex");

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]{2,}$/;
export const isValidEmail = (email: string): boolean => email.length <= 254 && EMAIL_RE.test(email.trim());

const hex = (bytes: number): string => randomBytes(bytes).toString("hex");

const DEFAULT_MERGE_FIELDS: readonly Omit<MergeField, "merge_id" | "display_order">[] = [
  { tag: "FNAME", name: "First Name", type: "text", required: false, public: true, default_value: "" },
  { tag: "LNAME", name: "Last Name", type: "text", required: false, public: true, default_value: "" },
  { tag: "ADDRESS", name: "Address", type: "address", required: false, public: false, default_value: "" },
  { tag: "PHONE", name: "Phone Number", type: "phone", required: false, public: false, default_value: "" },
  { tag: "BIRTHDAY", name: "Birthday", type: "birthday", required: false, public: false, default_value: "" },
];

/** The body fields a member write may carry (POST, PUT, PATCH, batch subscribe). */
export type MemberInput = {
  email_address?: string;
  status?: string;
  status_if_new?: string;
  email_type?: string;
  merge_fields?: Record<string, unknown>;
  interests?: Record<string, unknown>;
  language?: string;
  vip?: boolean;
  marketing_permissions?: { marketing_permission_id?: string; enabled?: boolean }[];
  ip_signup?: string;
  timestamp_signup?: string;
  ip_opt?: string;
  timestamp_opt?: string;
  tags?: string[];
};

const WRITABLE_STATUSES = new Set(["subscribed", "unsubscribed", "cleaned", "pending", "transactional"]);

export class MailchimpStore {
  audiences = new Map<string, Audience>();
  confirmationEmails: ConfirmationEmail[] = [];
  private nextWebId = 100_001;
  private nextTagId = 10_001;
  private nextMergeId = 1;

  constructor(
    private readonly now: () => Date,
    private readonly emit: (event: MemberEvent) => void,
  ) {}

  reset(): void {
    this.audiences.clear();
    this.confirmationEmails = [];
  }

  private stamp(): string {
    return this.now()
      .toISOString()
      .replace(/\.\d{3}Z$/, "+00:00");
  }

  createAudience(input: {
    id?: string;
    name: string;
    double_optin?: boolean;
    marketing_permissions?: boolean;
    from_name?: string;
    from_email?: string;
    permission_reminder?: string;
  }): Audience {
    const id = input.id ?? hex(5);
    if (this.audiences.has(id))
      throw new MailchimpError(400, "Invalid Resource", `An audience with id ${id} exists.`);
    const audience: Audience = {
      id,
      web_id: this.nextWebId++,
      name: input.name,
      date_created: this.stamp(),
      double_optin: input.double_optin ?? true,
      permission_reminder: input.permission_reminder ?? "You signed up on our website.",
      from_name: input.from_name ?? "Concord Emulated",
      from_email: input.from_email ?? "news@example.org",
      marketing_permissions_enabled: input.marketing_permissions ?? false,
      members: new Map(),
      byContactId: new Map(),
      merge_fields: DEFAULT_MERGE_FIELDS.map((f, i) => ({
        ...f,
        merge_id: this.nextMergeId++,
        display_order: i + 1,
      })),
      categories: [],
      interests: [],
      tags: [],
      permissions: [],
      forgotten: new Set(),
    };
    if (input.marketing_permissions === true) this.enableGdprFields(audience);
    this.audiences.set(id, audience);
    return audience;
  }

  /** Turns on an audience's GDPR fields: its marketing permissions, none given by any member yet. */
  enableGdprFields(audience: Audience): void {
    audience.marketing_permissions_enabled = true;
    if (audience.permissions.length > 0) return;
    audience.permissions = [
      { marketing_permission_id: hex(5), text: "Email" },
      { marketing_permission_id: hex(5), text: "Customized Online Advertising" },
    ];
    for (const m of audience.members.values())
      for (const p of audience.permissions) m.marketing_permissions[p.marketing_permission_id] = false;
  }

  audience(listId: string): Audience {
    const found = this.audiences.get(listId);
    if (!found)
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    return found;
  }

  addCategory(
    audience: Audience,
    title: string,
    type: InterestCategory["type"] = "checkboxes",
  ): InterestCategory {
    const existing = audience.categories.find((c) => c.title === title);
    if (existing) return existing;
    const category: InterestCategory = { id: hex(5), title, type, display_order: audience.categories.length };
    audience.categories.push(category);
    return category;
  }

  addInterest(audience: Audience, category: InterestCategory, name: string, id?: string): Interest {
    const existing = audience.interests.find((i) => i.category_id === category.id && i.name === name);
    if (existing) return existing;
    const interest: Interest = {
      id: id ?? hex(5),
      category_id: category.id,
      name,
      display_order: audience.interests.filter((i) => i.category_id === category.id).length,
    };
    audience.interests.push(interest);
    return interest;
  }

  tag(audience: Audience, name: string, id?: number): Tag {
    const existing = audience.tags.find((t) => t.name.toLowerCase() === name.toLowerCase());
    if (existing) return existing;
    const at = this.stamp();
    const tag: Tag = { id: id ?? this.nextTagId++, name, created_at: at, updated_at: at };
    if (id !== undefined) this.nextTagId = Math.max(this.nextTagId, id + 1);
    audience.tags.push(tag);
    return tag;
  }

  /** The member a path names: its subscriber hash, its address, or its contact id. */
  findMember(audience: Audience, key: string): Member | undefined {
    const decoded = decodeURIComponent(key);
    if (decoded.includes("@")) return audience.members.get(subscriberHash(decoded));
    return audience.members.get(decoded.toLowerCase()) ?? audience.byContactId.get(decoded);
  }

  /**
   * The member a path names by its subscriber hash alone: the spec gives no other name on the paths
   * that write a member's tags or delete it for good (a contact id or an address there is not found).
   */
  memberByHash(audience: Audience, key: string): Member {
    const found = audience.members.get(decodeURIComponent(key).toLowerCase());
    if (!found)
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    return found;
  }

  member(audience: Audience, key: string): Member {
    const found = this.findMember(audience, key);
    if (!found)
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    return found;
  }

  private checkInput(audience: Audience, input: MemberInput, skipMergeValidation: boolean): void {
    const errors: { field: string; message: string }[] = [];
    if (input.status !== undefined && !WRITABLE_STATUSES.has(input.status))
      errors.push({
        field: "status",
        message: `Value "${input.status}" is not one of subscribed, unsubscribed, cleaned, pending, transactional.`,
      });
    if (input.status_if_new !== undefined && !WRITABLE_STATUSES.has(input.status_if_new))
      errors.push({
        field: "status_if_new",
        message: `Value "${input.status_if_new}" is not one of subscribed, unsubscribed, cleaned, pending, transactional.`,
      });
    if (input.email_type !== undefined && input.email_type !== "html" && input.email_type !== "text")
      errors.push({ field: "email_type", message: 'Must be "html" or "text".' });
    for (const [tag, value] of Object.entries(input.merge_fields ?? {})) {
      const field = audience.merge_fields.find((f) => f.tag === tag);
      if (!field)
        errors.push({
          field: `merge_fields.${tag}`,
          message: `The merge field ${tag} does not exist in this audience.`,
        });
      else if (typeof value !== "string" && typeof value !== "number")
        errors.push({ field: `merge_fields.${tag}`, message: "Must be a string or a number." });
    }
    for (const [id, value] of Object.entries(input.interests ?? {})) {
      if (!audience.interests.some((i) => i.id === id))
        errors.push({ field: `interests.${id}`, message: `Invalid interest ID: '${id}'` });
      else if (typeof value !== "boolean")
        errors.push({ field: `interests.${id}`, message: "Must be true or false." });
    }
    for (const p of input.marketing_permissions ?? [])
      if (!audience.permissions.some((x) => x.marketing_permission_id === p.marketing_permission_id))
        errors.push({
          field: "marketing_permissions",
          message: `Unknown marketing permission ${String(p.marketing_permission_id)}.`,
        });
    if (errors.length > 0)
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        errors,
      );
    if (!skipMergeValidation)
      for (const f of audience.merge_fields)
        if (f.required && input.merge_fields?.[f.tag] === undefined)
          throw new MailchimpError(400, "Invalid Resource", "Your merge fields were invalid.", [
            { field: `merge_fields.${f.tag}`, message: `Please enter a value for ${f.name}` },
          ]);
  }

  private applyProfile(audience: Audience, member: Member, input: MemberInput): boolean {
    let changed = false;
    for (const [tag, value] of Object.entries(input.merge_fields ?? {}))
      if (member.merge_fields[tag] !== value) {
        member.merge_fields[tag] = value as string | number;
        changed = true;
      }
    for (const [id, value] of Object.entries(input.interests ?? {}))
      if (member.interests[id] !== value) {
        member.interests[id] = value as boolean;
        changed = true;
      }
    for (const p of input.marketing_permissions ?? []) {
      const id = p.marketing_permission_id ?? "";
      if (member.marketing_permissions[id] !== (p.enabled === true)) {
        member.marketing_permissions[id] = p.enabled === true;
        changed = true;
      }
    }
    if (input.email_type !== undefined && member.email_type !== input.email_type) {
      member.email_type = input.email_type as Member["email_type"];
      changed = true;
    }
    if (input.language !== undefined && member.language !== input.language) {
      member.language = input.language;
      changed = true;
    }
    // Writable (spec): when the subscriber signed up, as the writer says.
    if (input.timestamp_signup !== undefined && member.timestamp_signup !== input.timestamp_signup) {
      member.timestamp_signup = input.timestamp_signup;
      changed = true;
    }
    if (input.vip !== undefined && member.vip !== input.vip) {
      member.vip = input.vip;
      changed = true;
    }
    for (const name of input.tags ?? []) {
      const tag = this.tag(audience, name);
      if (!member.tags.has(tag.id)) {
        member.tags.set(tag.id, this.stamp());
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Adds a new member (POST /members, PUT with `status_if_new`, batch subscribe, a sign-up form).
   * A permanently deleted address is refused; `pending` sends the confirmation email.
   */
  addMember(
    audience: Audience,
    input: MemberInput & { email_address: string },
    how: { status: string; source: ChangeSource; label: string; skipMergeValidation?: boolean },
  ): Member {
    const email = input.email_address.trim();
    if (!isValidEmail(email))
      throw new MailchimpError(
        400,
        "Invalid Resource",
        `${email} looks fake or invalid, please enter a real email address.`,
      );
    const hash = subscriberHash(email);
    if (audience.forgotten.has(hash))
      throw new MailchimpError(
        400,
        "Forgotten Email Not Subscribed",
        `${email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.`,
      );
    this.checkInput(audience, { ...input, status: how.status }, how.skipMergeValidation === true);
    const at = this.stamp();
    const member: Member = {
      id: hash,
      email_address: email,
      unique_email_id: hex(5),
      contact_id: hex(16),
      web_id: this.nextWebId++,
      email_type: (input.email_type as Member["email_type"] | undefined) ?? "html",
      status: "transactional",
      merge_fields: Object.fromEntries(audience.merge_fields.map((f) => [f.tag, ""])),
      interests: Object.fromEntries(audience.interests.map((i) => [i.id, false])),
      tags: new Map(),
      marketing_permissions: Object.fromEntries(
        audience.permissions.map((p) => [p.marketing_permission_id, false]),
      ),
      ip_signup: input.ip_signup ?? "",
      timestamp_signup: input.timestamp_signup ?? "",
      ip_opt: input.ip_opt ?? "",
      timestamp_opt: "",
      last_changed: at,
      language: input.language ?? "",
      vip: input.vip ?? false,
      source: how.label,
      unsubscription: null,
      compliance: false,
      confirmation_sent_at: null,
      created_at: at,
    };
    this.applyProfile(audience, member, input);
    audience.members.set(hash, member);
    audience.byContactId.set(member.contact_id, member);
    this.setStatus(audience, member, how.status as Exclude<MemberStatus, "archived">, how.source, {
      isNew: true,
    });
    return member;
  }

  /**
   * Changes an existing member by a PUT, PATCH or batch subscribe with `update_existing`. An
   * archived member comes back with the status given (or the one it had).
   */
  updateMember(
    audience: Audience,
    member: Member,
    input: MemberInput,
    how: { source: ChangeSource; skipMergeValidation?: boolean },
  ): Member {
    this.checkInput(audience, input, true);
    if (input.email_address !== undefined && subscriberHash(input.email_address) !== member.id)
      this.changeEmail(audience, member, input.email_address, how.source);
    const profileChanged = this.applyProfile(audience, member, input);
    const status = input.status as Exclude<MemberStatus, "archived"> | undefined;
    if (member.status === "archived") {
      this.setStatus(audience, member, status ?? member.archived_from ?? "subscribed", how.source, {
        unarchive: true,
      });
    } else if (status !== undefined && status !== member.status) {
      this.setStatus(audience, member, status, how.source, {});
    } else if (profileChanged) {
      member.last_changed = this.stamp();
      this.emit({ type: "profile", source: how.source, list_id: audience.id, member });
    }
    return member;
  }

  /** The compliance rules on a status change, then the change and its webhook event. */
  setStatus(
    audience: Audience,
    member: Member,
    status: Exclude<MemberStatus, "archived">,
    source: ChangeSource,
    how: { isNew?: boolean; unarchive?: boolean; unsubscription?: Omit<Unsubscription, "source" | "at"> },
  ): void {
    const from = how.unarchive === true ? (member.archived_from ?? "subscribed") : member.status;
    const inCompliance = member.compliance || (!how.isNew && (from === "unsubscribed" || from === "cleaned"));
    if (status === "subscribed" && inCompliance && source !== "user")
      throw new MailchimpError(
        400,
        "Member In Compliance State",
        `${member.email_address} is already a list member in compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.`,
      );
    if (status === "pending" && (member.compliance || from === "cleaned") && source !== "user")
      throw new MailchimpError(
        400,
        "Member In Compliance State",
        `${member.email_address} is in compliance state due to a bounce or an abuse report; a confirmation email cannot be sent.`,
      );
    if (status === "cleaned" && source === "api" && !how.isNew)
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "Only Mailchimp cleans a member (after hard bounces); the status cannot be set to cleaned.",
      );
    const at = this.stamp();
    member.status = status;
    delete member.archived_from;
    member.last_changed = at;
    if (status === "subscribed") {
      member.timestamp_opt = at;
      member.unsubscription = null;
      member.confirmation_sent_at = null;
      if (source === "user") member.compliance = false;
      this.emit({ type: "subscribe", source, list_id: audience.id, member });
    } else if (status === "pending") {
      member.confirmation_sent_at = at;
      this.confirmationEmails.push({
        list_id: audience.id,
        email: member.email_address,
        kind: from === "unsubscribed" ? "resubscribe" : "opt_in",
        at,
      });
    } else if (status === "unsubscribed") {
      const u = how.unsubscription ?? {
        reason: "manual",
        via: source === "api" ? "api" : source === "admin" ? "admin" : "link",
      };
      member.unsubscription = { ...u, source, at };
      member.confirmation_sent_at = null;
      if (u.reason === "abuse") member.compliance = true;
      if (!how.isNew || source === "user")
        this.emit({
          type: "unsubscribe",
          source,
          list_id: audience.id,
          member,
          action: "unsub",
          reason: u.reason,
          ...(u.campaign_id !== undefined ? { campaign_id: u.campaign_id } : {}),
        });
    } else if (status === "cleaned") {
      this.emit({ type: "cleaned", source, list_id: audience.id, member, reason: "hard" });
    }
  }

  changeEmail(audience: Audience, member: Member, newEmail: string, source: ChangeSource): void {
    const email = newEmail.trim();
    if (!isValidEmail(email))
      throw new MailchimpError(
        400,
        "Invalid Resource",
        `${email} looks fake or invalid, please enter a real email address.`,
      );
    const hash = subscriberHash(email);
    if (audience.members.has(hash) || audience.forgotten.has(hash))
      throw new MailchimpError(400, "Member Exists", `${email} is already a list member.`);
    const old = { email: member.email_address };
    audience.members.delete(member.id);
    member.id = hash;
    member.email_address = email;
    member.last_changed = this.stamp();
    audience.members.set(hash, member);
    this.emit({
      type: "upemail",
      source,
      list_id: audience.id,
      member,
      old_email: old.email,
      new_email: email,
    });
  }

  /** DELETE /members/{hash}: archives the member (it keeps its history and can come back). */
  archive(audience: Audience, member: Member, source: ChangeSource): void {
    if (member.status === "archived" || member.status === "cleaned" || member.status === "pending")
      throw new MailchimpError(
        405,
        "Method Not Allowed",
        "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived",
      );
    member.archived_from = member.status;
    member.status = "archived";
    member.last_changed = this.stamp();
    this.emit({
      type: "unsubscribe",
      source,
      list_id: audience.id,
      member,
      action: "delete",
      reason: "manual",
    });
  }

  /** POST …/actions/delete-permanent: gone, and the address may never be imported again. */
  forget(audience: Audience, member: Member): void {
    audience.members.delete(member.id);
    audience.byContactId.delete(member.contact_id);
    audience.forgotten.add(member.id);
  }

  setTags(audience: Audience, member: Member, tags: { name: string; status: string }[]): void {
    let changed = false;
    for (const t of tags) {
      if (t.status === "active") {
        const tag = this.tag(audience, t.name);
        if (!member.tags.has(tag.id)) {
          member.tags.set(tag.id, this.stamp());
          changed = true;
        }
      } else {
        const tag = audience.tags.find((x) => x.name.toLowerCase() === t.name.toLowerCase());
        if (tag && member.tags.delete(tag.id)) changed = true;
      }
    }
    if (changed) member.last_changed = this.stamp();
  }

  /** The members of a tag, for its member count. */
  tagMembers(audience: Audience, tagId: number): number {
    let n = 0;
    for (const m of audience.members.values()) if (m.tags.has(tagId) && m.status !== "archived") n++;
    return n;
  }

  newId(): string {
    return randomUUID();
  }
}
