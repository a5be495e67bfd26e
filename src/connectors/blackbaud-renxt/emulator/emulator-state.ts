/**
 * The in-memory Raiser's Edge NXT environment behind the emulator: constituents, email addresses,
 * relationships, consent records, solicit codes and static lists, with every write going through
 * one method here so that the API, the seed and the admin "act" route behave the same and raise
 * the same webhook events.
 */
import { randomUUID } from "node:crypto";

export type ConsentResponse = "OptIn" | "OptOut" | "NoResponse";

export type EmailAddress = {
  id: string;
  address: string;
  constituent_id: string;
  date_added: string;
  date_modified: string;
  do_not_email: boolean;
  inactive: boolean;
  primary: boolean;
  type: string;
};

/** A postal address (Constituent API AddressRead); one per constituent is preferred. */
export type Address = {
  id: string;
  constituent_id: string;
  type: string;
  address_lines?: string;
  city?: string;
  state?: string;
  postal_code?: string;
  country?: string;
  preferred: boolean;
  inactive: boolean;
  do_not_mail: boolean;
  date_added: string;
  date_modified: string;
};

/** A phone number (Constituent API PhoneRead); one per constituent is primary. */
export type Phone = {
  id: string;
  constituent_id: string;
  type: string;
  number: string;
  primary: boolean;
  inactive: boolean;
  do_not_call: boolean;
  date_added: string;
  date_modified: string;
};

const ADDRESS_PARTS = ["address_lines", "city", "state", "postal_code", "country"] as const;

export type Constituent = {
  id: string;
  type: "Individual" | "Organization";
  lookup_id: string;
  fields: Record<string, unknown>;
  inactive: boolean;
  deceased: boolean;
  requests_no_email: boolean;
  date_added: string;
  date_modified: string;
  /** A database-wide counter bumped on every change, like SQL Server's rowversion; sort_token carries it. */
  row_version: number;
  /** Creation order, immutable; the stable key when paging by date_added. */
  added_seq: number;
};

export type Relationship = {
  id: string;
  constituent_id: string;
  relation_id: string;
  type: string;
  reciprocal_type: string;
  reciprocal_relationship_id: string;
  is_organization_contact: boolean;
  is_primary_business: boolean;
  is_spouse: boolean;
  organization_contact_type?: string;
  position?: string;
  comment?: string;
  date_added: string;
  date_modified: string;
};

export type ConsentRecord = {
  id: string;
  constituent_id: string;
  channel: string;
  category?: string;
  source?: string;
  consent_date: string;
  constituent_consent_response: ConsentResponse;
  consent_statement?: string;
  privacy_notice?: string;
  date_added: string;
  user_name: string;
  /** Insertion order, to break ties between records with the same consent_date. */
  seq: number;
};

export type ConstituentSolicitCode = {
  id: string;
  constituent_id: string;
  solicit_code: string;
  start_date?: string;
  end_date?: string;
};

export type ConstituentList = {
  id: string;
  name: string;
  description: string;
  list_type: "Constituent" | "Gift" | "Action" | "Opportunity";
  list_permissions: string;
  ids: string[];
  date_modified: string;
  last_modified_by_user_name: string;
};

export type ConsentCategory = { description: string; inactive: boolean; sequence: number };

/** A gift, as far as the constituent API's giving summary shows it. */
export type Gift = {
  id: string;
  constituent_id: string;
  /** The gift date, ISO-8601 (`2025-04-10T00:00:00`). */
  date: string;
  amount: number;
  type: string;
};

export const CUSTOM_FIELD_TYPES = [
  "Text",
  "Number",
  "Date",
  "Currency",
  "Boolean",
  "CodeTableEntry",
  "ConstituentId",
  "FuzzyDate",
] as const;
export type CustomFieldType = (typeof CUSTOM_FIELD_TYPES)[number];
export type CustomFieldCategory = { name: string; type: CustomFieldType; one_per_record?: boolean };

export type CustomField = {
  id: string;
  parent_id: string;
  category: string;
  type: CustomFieldType;
  value?: unknown;
  comment?: string;
  date?: string;
  date_added: string;
  date_modified: string;
};
export type SolicitCodeEntry = { description: string; inactive: boolean; sequence: number };

/** An event raised by a write; the webhook module turns it into CloudEvents. */
export type DomainEvent = { type: string; data: Record<string, string> };

/** A domain failure the HTTP layer turns into the vendor's error body. */
export class DomainError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    readonly errorName: string,
    message: string,
  ) {
    super(message);
  }
}

export type StateConfig = {
  now: () => Date;
  channels: string[];
  categories: string[];
  solicitCodes: string[];
  requestsNoEmailSolicitCode: string;
  consentTouchesConstituent: boolean;
  customFieldCategories: CustomFieldCategory[];
  /** How long a change takes to show in the "all constituents" lists. */
  allConstituentsListLatencyMs: number;
  /** How long a constituent's change takes to show in the constituent list asked by `last_modified`. */
  constituentListLatencyMs: (constituentId: string) => number;
  emailTypes: string[];
};

export const CONSTITUENT_EVENT = {
  add: "com.blackbaud.constituent.add.v1",
  change: "com.blackbaud.constituent.change.v1",
  delete: "com.blackbaud.constituent.delete.v1",
  emailAdd: "com.blackbaud.constituent.emailaddress.add.v1",
  emailChange: "com.blackbaud.constituent.emailaddress.change.v1",
  emailDelete: "com.blackbaud.constituent.emailaddress.delete.v1",
  solicitAdd: "com.blackbaud.constituent.solicitcode.add.v1",
  solicitChange: "com.blackbaud.constituent.solicitcode.change.v1",
  solicitDelete: "com.blackbaud.constituent.solicitcode.delete.v1",
  relationshipAdd: "com.blackbaud.constituent.relationship.add.v1",
  relationshipChange: "com.blackbaud.constituent.relationship.change.v1",
  relationshipDelete: "com.blackbaud.constituent.relationship.delete.v1",
} as const;

/** Blackbaud writes offsets as "+00:00" rather than "Z" (spec examples). */
export const isoWithOffset = (date: Date): string => date.toISOString().replace("Z", "+00:00");

const NAME_FIELDS = [
  "first",
  "last",
  "middle",
  "preferred_name",
  "former_name",
  "title",
  "title_2",
  "suffix",
  "suffix_2",
  "name",
] as const;

/** Fields ConstituentEdit allows besides the ones with their own semantics. */
const PLAIN_EDIT_FIELDS = [
  ...NAME_FIELDS,
  "lookup_id",
  "gender",
  "marital_status",
  "birthdate",
  "deceased_date",
  "gives_anonymously",
  "birthplace",
  "ethnicity",
  "income",
  "religion",
  "industry",
  "no_valid_address",
  "is_memorial",
  "is_solicitor",
  "target",
  "num_employees",
  "matches_gifts",
] as const;

export class EmulatorState {
  constituents = new Map<string, Constituent>();
  emails = new Map<string, EmailAddress>();
  addresses = new Map<string, Address>();
  phones = new Map<string, Phone>();
  relationships = new Map<string, Relationship>();
  consents: ConsentRecord[] = [];
  customFields = new Map<string, CustomField>();
  customFieldCategories: CustomFieldCategory[];
  solicitCodes = new Map<string, ConstituentSolicitCode>();
  gifts = new Map<string, Gift>();
  lists = new Map<string, ConstituentList>();
  channels: string[];
  categories: ConsentCategory[];
  solicitCodeTable: SolicitCodeEntry[];
  private nextId = 1000;
  private rowVersion = 0;
  private addedSeq = 0;
  private consentSeq = 0;

  constructor(
    readonly config: StateConfig,
    private readonly emit: (event: DomainEvent) => void,
  ) {
    this.channels = [...config.channels];
    this.customFieldCategories = config.customFieldCategories.map((c) => ({ ...c }));
    this.categories = config.categories.map((description, i) => ({
      description,
      inactive: false,
      sequence: i + 1,
    }));
    this.solicitCodeTable = config.solicitCodes.map((description, i) => ({
      description,
      inactive: false,
      sequence: i + 1,
    }));
  }

  reset(): void {
    this.constituents.clear();
    this.emails.clear();
    this.addresses.clear();
    this.phones.clear();
    this.relationships.clear();
    this.consents = [];
    this.customFields.clear();
    this.customFieldCategories = this.config.customFieldCategories.map((c) => ({ ...c }));
    this.solicitCodes.clear();
    this.gifts.clear();
    this.lists.clear();
    this.nextId = 1000;
    this.rowVersion = 0;
    this.addedSeq = 0;
    this.consentSeq = 0;
    this.channels = [...this.config.channels];
    this.categories = this.config.categories.map((description, i) => ({
      description,
      inactive: false,
      sequence: i + 1,
    }));
    this.solicitCodeTable = this.config.solicitCodes.map((description, i) => ({
      description,
      inactive: false,
      sequence: i + 1,
    }));
  }

  /**
   * SKY writes modification dates with seven fractional digits (100 ns ticks), so two saves never
   * share one. The emulator's clock has milliseconds: a save in the same millisecond as the last
   * takes the next tick (ten thousand saves in one millisecond run a millisecond ahead).
   */
  private stamp(): string {
    const now = this.config.now().getTime();
    if (now > this.lastStamp.ms) this.lastStamp = { ms: now, tick: 0 };
    else if (this.lastStamp.tick < 9_999)
      this.lastStamp = { ms: this.lastStamp.ms, tick: this.lastStamp.tick + 1 };
    else this.lastStamp = { ms: this.lastStamp.ms + 1, tick: 0 };
    const { ms, tick } = this.lastStamp;
    return isoWithOffset(new Date(ms)).replace("+00:00", `${String(tick).padStart(4, "0")}+00:00`);
  }
  private lastStamp = { ms: Number.NEGATIVE_INFINITY, tick: 0 };

  private newId(): string {
    this.nextId += 1;
    return String(this.nextId);
  }

  /** Keeps generated ids clear of explicitly seeded numeric ids. */
  private reserveId(id: string): void {
    const n = Number(id);
    if (Number.isInteger(n) && n > this.nextId) this.nextId = n;
  }

  private touch(constituent: Constituent): void {
    this.rowVersion += 1;
    constituent.row_version = this.rowVersion;
    constituent.date_modified = this.stamp();
  }

  get currentRowVersion(): number {
    return this.rowVersion;
  }

  requireConstituent(id: string): Constituent {
    const c = this.constituents.get(id);
    if (!c) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    return c;
  }

  findConstituentByEmail(address: string): Constituent | undefined {
    const wanted = address.trim().toLowerCase();
    for (const e of this.emails.values()) {
      if (e.address.toLowerCase() === wanted) return this.constituents.get(e.constituent_id);
    }
    return undefined;
  }

  addressesOf(constituentId: string): Address[] {
    return [...this.addresses.values()].filter((a) => a.constituent_id === constituentId);
  }

  phonesOf(constituentId: string): Phone[] {
    return [...this.phones.values()].filter((p) => p.constituent_id === constituentId);
  }

  /** Adds an address; the first one, or one marked preferred, becomes the preferred address. */
  addAddress(input: Record<string, any>, opts: { seeded?: boolean } = {}): Address {
    const constituentId = String(input.constituent_id ?? "");
    const c = this.requireConstituent(constituentId);
    if (typeof input.type !== "string" || input.type.trim() === "")
      throw new DomainError(400, "InvalidArgument", "The type field is required.");
    const stamp = this.stamp();
    const preferred = input.preferred === true || this.addressesOf(constituentId).length === 0;
    const address: Address = {
      id: this.newId(),
      constituent_id: constituentId,
      type: input.type,
      preferred,
      inactive: input.inactive === true,
      do_not_mail: input.do_not_mail === true,
      date_added: stamp,
      date_modified: stamp,
    };
    for (const part of ADDRESS_PARTS) if (typeof input[part] === "string") address[part] = input[part];
    if (preferred) for (const a of this.addressesOf(constituentId)) a.preferred = false;
    this.addresses.set(address.id, address);
    this.touch(c);
    if (!opts.seeded) this.emit({ type: CONSTITUENT_EVENT.change, data: { id: constituentId } });
    return address;
  }

  updateAddress(id: string, changes: Record<string, any>): Address {
    const address = this.addresses.get(id);
    if (!address) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    for (const part of ADDRESS_PARTS) {
      if (changes[part] === undefined) continue;
      if (changes[part] === null) Reflect.deleteProperty(address, part);
      else if (typeof changes[part] === "string") address[part] = changes[part];
      else throw new DomainError(400, "InvalidArgument", `The ${part} field must be a string.`);
    }
    if (typeof changes.type === "string") address.type = changes.type;
    if (changes.preferred === true) {
      for (const a of this.addressesOf(address.constituent_id)) a.preferred = false;
      address.preferred = true;
    }
    address.date_modified = this.stamp();
    const c = this.requireConstituent(address.constituent_id);
    this.touch(c);
    this.emit({ type: CONSTITUENT_EVENT.change, data: { id: c.id } });
    return address;
  }

  /** Adds a phone; the first one, or one marked primary, becomes the primary phone. */
  addPhone(input: Record<string, any>, opts: { seeded?: boolean } = {}): Phone {
    const constituentId = String(input.constituent_id ?? "");
    const c = this.requireConstituent(constituentId);
    if (typeof input.type !== "string" || input.type.trim() === "")
      throw new DomainError(400, "InvalidArgument", "The type field is required.");
    if (typeof input.number !== "string" || input.number.trim() === "")
      throw new DomainError(400, "InvalidArgument", "The number field is required.");
    const stamp = this.stamp();
    const primary = input.primary === true || this.phonesOf(constituentId).length === 0;
    const phone: Phone = {
      id: this.newId(),
      constituent_id: constituentId,
      type: input.type,
      number: input.number.trim(),
      primary,
      inactive: input.inactive === true,
      do_not_call: input.do_not_call === true,
      date_added: stamp,
      date_modified: stamp,
    };
    if (primary) for (const p of this.phonesOf(constituentId)) p.primary = false;
    this.phones.set(phone.id, phone);
    this.touch(c);
    if (!opts.seeded) this.emit({ type: CONSTITUENT_EVENT.change, data: { id: constituentId } });
    return phone;
  }

  updatePhone(id: string, changes: Record<string, any>): Phone {
    const phone = this.phones.get(id);
    if (!phone) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    if (changes.number !== undefined) {
      if (typeof changes.number !== "string" || changes.number.trim() === "")
        throw new DomainError(400, "InvalidArgument", "The number field cannot be empty.");
      phone.number = changes.number.trim();
    }
    if (typeof changes.type === "string") phone.type = changes.type;
    if (changes.primary === true) {
      for (const p of this.phonesOf(phone.constituent_id)) p.primary = false;
      phone.primary = true;
    }
    phone.date_modified = this.stamp();
    const c = this.requireConstituent(phone.constituent_id);
    this.touch(c);
    this.emit({ type: CONSTITUENT_EVENT.change, data: { id: c.id } });
    return phone;
  }

  addressRead(a: Address): Record<string, unknown> {
    const formatted = [a.address_lines, [a.city, a.state, a.postal_code].filter(Boolean).join(" "), a.country]
      .filter((x) => x !== undefined && x !== "")
      .join("\r\n");
    return { ...a, formatted_address: formatted };
  }

  phoneRead(p: Phone): Record<string, unknown> {
    return { ...p };
  }

  emailsOf(constituentId: string): EmailAddress[] {
    return [...this.emails.values()]
      .filter((e) => e.constituent_id === constituentId)
      .sort((a, b) => Number(a.id) - Number(b.id));
  }

  primaryEmail(constituentId: string): EmailAddress | undefined {
    return this.emailsOf(constituentId).find((e) => e.primary);
  }

  // ---------------------------------------------------------------- constituents

  createConstituent(
    input: Record<string, any>,
    opts: { seeded?: boolean; userId?: string } = {},
  ): { constituent: Constituent; email?: EmailAddress } {
    const type = input.type;
    if (type !== "Individual" && type !== "Organization") {
      throw new DomainError(
        400,
        "InvalidArgument",
        "The type field is required and must be Individual or Organization.",
      );
    }
    if (type === "Individual" && (typeof input.last !== "string" || input.last.trim() === "")) {
      throw new DomainError(
        400,
        "InvalidArgument",
        "The last field is required for an Individual constituent.",
      );
    }
    if (type === "Organization" && (typeof input.name !== "string" || input.name.trim() === "")) {
      throw new DomainError(
        400,
        "InvalidArgument",
        "The name field is required for an Organization constituent.",
      );
    }
    checkLength(input, "first", 50);
    checkLength(input, "middle", 50);
    checkLength(input, "preferred_name", 50);
    checkLength(input, "last", 100);
    checkLength(input, "former_name", 100);
    let id: string;
    if (opts.seeded && input.id !== undefined) {
      id = String(input.id);
      if (this.constituents.has(id))
        throw new DomainError(409, "Conflict", `Constituent ${id} already exists.`);
      this.reserveId(id);
    } else {
      id = this.newId();
    }
    const fields: Record<string, unknown> = {};
    for (const key of PLAIN_EDIT_FIELDS) if (input[key] !== undefined) fields[key] = input[key];
    const stamp = this.stamp();
    this.addedSeq += 1;
    const constituent: Constituent = {
      id,
      type,
      lookup_id: typeof input.lookup_id === "string" ? input.lookup_id : id,
      fields,
      inactive: input.inactive === true,
      deceased: input.deceased === true,
      requests_no_email: input.requests_no_email === true,
      date_added: opts.seeded && typeof input.date_added === "string" ? input.date_added : stamp,
      date_modified: stamp,
      row_version: 0,
      added_seq: this.addedSeq,
    };
    this.touch(constituent);
    if (opts.seeded && typeof input.date_modified === "string")
      constituent.date_modified = input.date_modified;
    this.constituents.set(id, constituent);
    if (constituent.requests_no_email) this.openRequestsNoEmailCode(id, opts.seeded === true);
    const event: Record<string, string> = { id };
    if (opts.userId) event.added_by_id = opts.userId;
    if (!opts.seeded) this.emit({ type: CONSTITUENT_EVENT.add, data: event });
    if (input.address && typeof input.address === "object")
      this.addAddress(
        { type: "Home", ...input.address, constituent_id: id, preferred: true },
        { seeded: opts.seeded === true },
      );
    if (input.phone && typeof input.phone === "object")
      this.addPhone(
        { type: "Home", ...input.phone, constituent_id: id, primary: true },
        { seeded: opts.seeded === true },
      );
    let email: EmailAddress | undefined;
    if (input.email && typeof input.email === "object") {
      email = this.addEmail(
        { ...input.email, constituent_id: id, primary: true },
        { seeded: opts.seeded === true },
      );
    }
    return email ? { constituent, email } : { constituent };
  }

  updateConstituent(id: string, changes: Record<string, any>, opts: { userId?: string } = {}): Constituent {
    const c = this.requireConstituent(id);
    checkLength(changes, "first", 50);
    checkLength(changes, "middle", 50);
    checkLength(changes, "preferred_name", 50);
    checkLength(changes, "last", 100);
    checkLength(changes, "former_name", 100);
    if (c.type === "Individual" && changes.last !== undefined && String(changes.last).trim() === "") {
      throw new DomainError(
        400,
        "InvalidArgument",
        "The last field cannot be empty for an Individual constituent.",
      );
    }
    for (const key of PLAIN_EDIT_FIELDS) {
      if (changes[key] === undefined) continue;
      if (key === "lookup_id") c.lookup_id = String(changes[key]);
      else if (changes[key] === null)
        c.fields = Object.fromEntries(Object.entries(c.fields).filter(([k]) => k !== key));
      else c.fields[key] = changes[key];
    }
    if (typeof changes.inactive === "boolean") c.inactive = changes.inactive;
    if (typeof changes.deceased === "boolean") c.deceased = changes.deceased;
    if (typeof changes.requests_no_email === "boolean" && changes.requests_no_email !== c.requests_no_email) {
      c.requests_no_email = changes.requests_no_email;
      if (c.requests_no_email) this.openRequestsNoEmailCode(id, false);
      else this.closeRequestsNoEmailCode(id);
    }
    // A save in RE NXT rewrites the row, so every successful PATCH moves date_modified.
    this.touch(c);
    const data: Record<string, string> = { id };
    if (opts.userId) data.last_changed_by_id = opts.userId;
    this.emit({ type: CONSTITUENT_EVENT.change, data });
    return c;
  }

  deleteConstituent(id: string): void {
    this.requireConstituent(id);
    this.constituents.delete(id);
    for (const e of this.emailsOf(id)) this.emails.delete(e.id);
    for (const a of this.addressesOf(id)) this.addresses.delete(a.id);
    for (const p of this.phonesOf(id)) this.phones.delete(p.id);
    for (const [rid, r] of this.relationships) {
      if (r.constituent_id === id || r.relation_id === id) this.relationships.delete(rid);
    }
    for (const [sid, s] of this.solicitCodes) if (s.constituent_id === id) this.solicitCodes.delete(sid);
    for (const [gid, g] of this.gifts) if (g.constituent_id === id) this.gifts.delete(gid);
    for (const list of this.lists.values()) list.ids = list.ids.filter((x) => x !== id);
    // Consent history is kept: it is proof of what the person said, not part of the record.
    this.emit({ type: CONSTITUENT_EVENT.delete, data: { id } });
  }

  // ---------------------------------------------------------------- email addresses

  addEmail(input: Record<string, any>, opts: { seeded?: boolean } = {}): EmailAddress {
    const constituentId = String(input.constituent_id ?? "");
    const c = this.requireConstituent(constituentId);
    if (typeof input.address !== "string" || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(input.address.trim())) {
      throw new DomainError(400, "InvalidArgument", "The address field must be a valid email address.");
    }
    if (input.address.length > 255)
      throw new DomainError(400, "InvalidArgument", "The address field is too long.");
    const type = typeof input.type === "string" && input.type !== "" ? input.type : undefined;
    if (!type) throw new DomainError(400, "InvalidArgument", "The type field is required.");
    if (!this.config.emailTypes.includes(type)) {
      throw new DomainError(
        400,
        "InvalidArgument",
        `The type '${type}' is not in the Email Address Types table.`,
      );
    }
    const existing = this.emailsOf(constituentId);
    // The first address a constituent gets becomes primary, as in the RE NXT UI.
    const primary = input.primary === true || existing.length === 0;
    const stamp = this.stamp();
    let id: string;
    if (opts.seeded && input.id !== undefined) {
      id = String(input.id);
      this.reserveId(id);
    } else id = this.newId();
    const email: EmailAddress = {
      id,
      address: input.address.trim(),
      constituent_id: constituentId,
      date_added: stamp,
      date_modified: stamp,
      do_not_email: input.do_not_email === true,
      inactive: input.inactive === true,
      primary,
      type,
    };
    if (primary) this.unPrimaryOthers(constituentId, id);
    this.emails.set(id, email);
    this.touch(c);
    if (!opts.seeded)
      this.emit({ type: CONSTITUENT_EVENT.emailAdd, data: { id, constituent_id: constituentId } });
    return email;
  }

  private unPrimaryOthers(constituentId: string, keepId: string): void {
    for (const other of this.emailsOf(constituentId)) {
      if (other.id !== keepId && other.primary) {
        other.primary = false;
        other.date_modified = this.stamp();
        this.emit({
          type: CONSTITUENT_EVENT.emailChange,
          data: { id: other.id, constituent_id: constituentId },
        });
      }
    }
  }

  requireEmail(id: string): EmailAddress {
    const e = this.emails.get(id);
    if (!e) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    return e;
  }

  updateEmail(id: string, changes: Record<string, any>): EmailAddress {
    const e = this.requireEmail(id);
    // Validate everything first so a rejected PATCH changes nothing.
    if (changes.address !== undefined) {
      if (typeof changes.address !== "string" || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(changes.address.trim())) {
        throw new DomainError(400, "InvalidArgument", "The address field must be a valid email address.");
      }
    }
    if (
      typeof changes.type === "string" &&
      changes.type !== "" &&
      !this.config.emailTypes.includes(changes.type)
    ) {
      throw new DomainError(
        400,
        "InvalidArgument",
        `The type '${changes.type}' is not in the Email Address Types table.`,
      );
    }
    if (typeof changes.address === "string") e.address = changes.address.trim();
    if (typeof changes.do_not_email === "boolean") e.do_not_email = changes.do_not_email;
    if (typeof changes.inactive === "boolean") e.inactive = changes.inactive;
    if (typeof changes.type === "string" && changes.type !== "") e.type = changes.type;
    if (changes.primary === true && !e.primary) {
      e.primary = true;
      this.unPrimaryOthers(e.constituent_id, e.id);
    } else if (changes.primary === false) {
      e.primary = false;
    }
    e.date_modified = this.stamp();
    const c = this.constituents.get(e.constituent_id);
    if (c) this.touch(c);
    this.emit({ type: CONSTITUENT_EVENT.emailChange, data: { id, constituent_id: e.constituent_id } });
    return e;
  }

  deleteEmail(id: string): void {
    const e = this.requireEmail(id);
    this.emails.delete(id);
    // No other address is promoted: the constituent simply has no primary email until someone picks one.
    const c = this.constituents.get(e.constituent_id);
    if (c) this.touch(c);
    this.emit({ type: CONSTITUENT_EVENT.emailDelete, data: { id, constituent_id: e.constituent_id } });
  }

  // ---------------------------------------------------------------- relationships

  addRelationship(input: Record<string, any>, opts: { seeded?: boolean } = {}): Relationship {
    const constituentId = String(input.constituent_id ?? "");
    this.requireConstituent(constituentId);
    const relationId = String(input.relation_id ?? "");
    if (!relationId) {
      throw new DomainError(
        400,
        "InvalidArgument",
        "relation_id is required (non-constituent relations are not emulated).",
      );
    }
    this.requireConstituent(relationId);
    if (typeof input.type !== "string" || typeof input.reciprocal_type !== "string") {
      throw new DomainError(400, "InvalidArgument", "The type and reciprocal_type fields are required.");
    }
    const stamp = this.stamp();
    const id = this.newId();
    const reciprocalId = this.newId();
    const base = {
      is_organization_contact: input.is_organization_contact === true,
      is_primary_business: input.is_primary_business === true,
      is_spouse: input.is_spouse === true,
      date_added: stamp,
      date_modified: stamp,
    };
    const forward: Relationship = {
      ...base,
      id,
      constituent_id: constituentId,
      relation_id: relationId,
      type: input.type,
      reciprocal_type: input.reciprocal_type,
      reciprocal_relationship_id: reciprocalId,
      ...(typeof input.organization_contact_type === "string"
        ? { organization_contact_type: input.organization_contact_type }
        : {}),
      ...(typeof input.position === "string" ? { position: input.position } : {}),
      ...(typeof input.comment === "string" ? { comment: input.comment } : {}),
    };
    // RE NXT stores both directions; the reciprocal row is what the other constituent lists.
    const backward: Relationship = {
      ...base,
      id: reciprocalId,
      constituent_id: relationId,
      relation_id: constituentId,
      type: input.reciprocal_type,
      reciprocal_type: input.type,
      reciprocal_relationship_id: id,
      ...(typeof input.position === "string" ? { position: input.position } : {}),
    };
    this.relationships.set(id, forward);
    this.relationships.set(reciprocalId, backward);
    if (!opts.seeded) {
      this.emit({ type: CONSTITUENT_EVENT.relationshipAdd, data: { id, constituent_id: constituentId } });
    }
    return forward;
  }

  deleteRelationship(id: string): void {
    const r = this.relationships.get(id);
    if (!r) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    this.relationships.delete(id);
    this.relationships.delete(r.reciprocal_relationship_id);
    this.emit({ type: CONSTITUENT_EVENT.relationshipDelete, data: { id, constituent_id: r.constituent_id } });
  }

  relationshipsOf(constituentId: string): Relationship[] {
    return [...this.relationships.values()].filter((r) => r.constituent_id === constituentId);
  }

  // ---------------------------------------------------------------- consent

  addConsent(input: Record<string, any>, opts: { seeded?: boolean; userName: string }): ConsentRecord {
    const constituentId = String(input.constituent_id ?? "");
    const c = this.requireConstituent(constituentId);
    if (typeof input.channel !== "string" || !this.channels.includes(input.channel)) {
      throw new DomainError(
        400,
        "InvalidArgument",
        `The channel '${String(input.channel)}' is not in the Consent Channels table (${this.channels.join(", ")}).`,
      );
    }
    if (input.category !== undefined && input.category !== null) {
      const cat = this.categories.find((x) => x.description === input.category);
      if (!cat || cat.inactive) {
        throw new DomainError(
          400,
          "InvalidArgument",
          `The category '${String(input.category)}' is not an active entry in the Consent Categories table.`,
        );
      }
    }
    const response = input.constituent_consent_response;
    if (response !== "OptIn" && response !== "OptOut" && response !== "NoResponse") {
      throw new DomainError(
        400,
        "InvalidArgument",
        "constituent_consent_response is required and must be OptIn, OptOut or NoResponse.",
      );
    }
    if (typeof input.consent_date !== "string" || Number.isNaN(Date.parse(input.consent_date))) {
      throw new DomainError(400, "InvalidArgument", "consent_date is required and must be an ISO-8601 date.");
    }
    this.consentSeq += 1;
    const record: ConsentRecord = {
      id: opts.seeded && input.id !== undefined ? String(input.id) : this.newId(),
      constituent_id: constituentId,
      channel: input.channel,
      ...(typeof input.category === "string" ? { category: input.category } : {}),
      ...(typeof input.source === "string" ? { source: input.source } : {}),
      consent_date: input.consent_date,
      constituent_consent_response: response,
      ...(typeof input.consent_statement === "string" ? { consent_statement: input.consent_statement } : {}),
      ...(typeof input.privacy_notice === "string" ? { privacy_notice: input.privacy_notice } : {}),
      date_added: opts.seeded && typeof input.date_added === "string" ? input.date_added : this.stamp(),
      user_name: opts.seeded && typeof input.user_name === "string" ? input.user_name : opts.userName,
      seq: this.consentSeq,
    };
    if (opts.seeded && input.id !== undefined) this.reserveId(record.id);
    this.consents.push(record);
    // Consent lives in its own store; by default it does not move the constituent's date_modified.
    if (this.config.consentTouchesConstituent && !opts.seeded) this.touch(c);
    return record;
  }

  // ---------------------------------------------------------------- custom fields

  private customFieldCategory(name: unknown): CustomFieldCategory {
    const category = this.customFieldCategories.find((c) => c.name === name);
    if (!category)
      throw new DomainError(
        400,
        "InvalidArgument",
        `The category '${String(name)}' is not in the Custom Field Categories table.`,
      );
    return category;
  }

  /** A value of the category's type: a Boolean is true or false, a Number above 0, a Date ISO-8601. */
  private customFieldValue(category: CustomFieldCategory, value: unknown): unknown {
    const bad = (expected: string): DomainError =>
      new DomainError(
        400,
        "InvalidArgument",
        `The value for the custom field category '${category.name}' must be ${expected}.`,
      );
    switch (category.type) {
      case "Boolean":
        if (typeof value !== "boolean") throw bad("true or false");
        return value;
      case "Number":
      case "Currency":
        if (typeof value !== "number" || !(value > 0)) throw bad("a number greater than 0");
        return value;
      case "Date":
        if (typeof value !== "string" || Number.isNaN(Date.parse(value))) throw bad("an ISO-8601 date");
        return value;
      default:
        if (typeof value !== "string") throw bad("a string");
        return value;
    }
  }

  addCustomField(input: Record<string, any>, opts: { seeded?: boolean } = {}): CustomField {
    const parentId = String(input.parent_id ?? "");
    this.requireConstituent(parentId);
    const category = this.customFieldCategory(input.category);
    if (
      category.one_per_record === true &&
      [...this.customFields.values()].some((f) => f.parent_id === parentId && f.category === category.name)
    )
      throw new DomainError(
        400,
        "InvalidArgument",
        `The custom field category '${category.name}' allows one value per record.`,
      );
    checkLength(input, "comment", 50);
    const at = opts.seeded && typeof input.date_modified === "string" ? input.date_modified : this.stamp();
    const field: CustomField = {
      id: opts.seeded && input.id !== undefined ? String(input.id) : this.newId(),
      parent_id: parentId,
      category: category.name,
      type: category.type,
      ...(input.value !== undefined ? { value: this.customFieldValue(category, input.value) } : {}),
      ...(typeof input.comment === "string" ? { comment: input.comment } : {}),
      ...(typeof input.date === "string" ? { date: input.date } : {}),
      date_added: opts.seeded && typeof input.date_added === "string" ? input.date_added : at,
      date_modified: at,
    };
    if (opts.seeded && input.id !== undefined) this.reserveId(field.id);
    this.customFields.set(field.id, field);
    // Custom fields live in their own store: a change does not move the constituent's date_modified.
    return field;
  }

  updateCustomField(id: string, input: Record<string, any>): CustomField {
    const field = this.customFields.get(id);
    if (!field) throw new DomainError(404, "NotFound", `The custom field '${id}' was not found.`);
    const category = this.customFieldCategory(field.category);
    checkLength(input, "comment", 50);
    if ("value" in input) field.value = this.customFieldValue(category, input.value);
    if (typeof input.comment === "string") field.comment = input.comment;
    if (typeof input.date === "string") field.date = input.date;
    field.date_modified = this.stamp();
    return field;
  }

  deleteCustomField(id: string): void {
    if (!this.customFields.delete(id))
      throw new DomainError(404, "NotFound", `The custom field '${id}' was not found.`);
  }

  customFieldsOf(constituentId: string): CustomField[] {
    return [...this.customFields.values()].filter((f) => f.parent_id === constituentId);
  }

  customFieldRead(f: CustomField): Record<string, unknown> {
    return { ...f };
  }

  listConsents(
    constituentId: string,
    q: { mostRecentOnly: boolean; channels: string[]; categories: string[] },
  ): ConsentRecord[] {
    let rows = this.consents.filter((r) => r.constituent_id === constituentId);
    if (q.channels.length > 0) rows = rows.filter((r) => q.channels.includes(r.channel));
    if (q.categories.length > 0)
      rows = rows.filter((r) => r.category !== undefined && q.categories.includes(r.category));
    // Newest first: by consent_date, then by when it was recorded.
    rows = [...rows].sort((a, b) => Date.parse(b.consent_date) - Date.parse(a.consent_date) || b.seq - a.seq);
    if (q.mostRecentOnly) {
      const seen = new Set<string>();
      rows = rows.filter((r) => {
        const key = `${r.channel}\u0000${r.category ?? ""}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
    }
    return rows;
  }

  // ---------------------------------------------------------------- gifts

  /** Records a gift (the Gift API's add, as far as the giving summary needs it); moves no constituent date. */
  addGift(input: Record<string, any>, opts: { seeded?: boolean } = {}): Gift {
    const constituentId = String(input.constituent_id ?? "");
    this.requireConstituent(constituentId);
    const given = typeof input.date === "string" ? input.date.trim() : this.stamp();
    // SKY answers gift dates with an offset (`2005-04-10T00:00:00.0000000+00:00`); one given without reads as UTC.
    const ms = Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(given) || !given.includes("T") ? given : `${given}Z`);
    if (Number.isNaN(ms))
      throw new DomainError(400, "InvalidArgument", "The date field must be an ISO-8601 date-time.");
    const date = isoWithOffset(new Date(ms));
    const gift: Gift = {
      id: this.newId(),
      constituent_id: constituentId,
      date,
      amount: typeof input.amount === "number" ? input.amount : 0,
      type: typeof input.type === "string" ? input.type : "Donation",
    };
    this.gifts.set(gift.id, gift);
    if (!opts.seeded) this.emit({ type: "com.blackbaud.gift.add.v1", data: { id: gift.id } });
    return gift;
  }

  /** The constituent's latest gift by gift date (the newest id breaks a tie), if any. */
  latestGift(constituentId: string): Gift | undefined {
    let latest: Gift | undefined;
    for (const g of this.gifts.values()) {
      if (g.constituent_id !== constituentId) continue;
      const d = Date.parse(g.date) - (latest ? Date.parse(latest.date) : -Infinity);
      if (d > 0 || (d === 0 && latest !== undefined && Number(g.id) > Number(latest.id))) latest = g;
    }
    return latest;
  }

  // ---------------------------------------------------------------- solicit codes

  addSolicitCode(input: Record<string, any>, opts: { seeded?: boolean } = {}): ConstituentSolicitCode {
    const constituentId = String(input.constituent_id ?? "");
    const c = this.requireConstituent(constituentId);
    const entry = this.solicitCodeTable.find((s) => s.description === input.solicit_code);
    if (!entry || entry.inactive) {
      throw new DomainError(
        400,
        "InvalidArgument",
        `The solicit_code '${String(input.solicit_code)}' is not an active entry in the Solicit Codes table.`,
      );
    }
    for (const key of ["start_date", "end_date"] as const) {
      if (input[key] !== undefined && input[key] !== null && Number.isNaN(Date.parse(String(input[key])))) {
        throw new DomainError(400, "InvalidArgument", `${key} must be an ISO-8601 date.`);
      }
    }
    const code: ConstituentSolicitCode = {
      id: opts.seeded && input.id !== undefined ? String(input.id) : this.newId(),
      constituent_id: constituentId,
      solicit_code: entry.description,
      ...(typeof input.start_date === "string" ? { start_date: input.start_date } : {}),
      ...(typeof input.end_date === "string" ? { end_date: input.end_date } : {}),
    };
    if (opts.seeded && input.id !== undefined) this.reserveId(code.id);
    this.solicitCodes.set(code.id, code);
    if (!opts.seeded)
      this.emit({ type: CONSTITUENT_EVENT.solicitAdd, data: { id: code.id, constituent_id: constituentId } });
    this.syncRequestsNoEmail(c, opts.seeded === true);
    return code;
  }

  updateSolicitCode(id: string, changes: Record<string, any>): ConstituentSolicitCode {
    const code = this.solicitCodes.get(id);
    if (!code) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    for (const key of ["start_date", "end_date"] as const) {
      if (changes[key] === undefined) continue;
      if (changes[key] === null) {
        if (key === "start_date") delete code.start_date;
        else delete code.end_date;
      } else if (Number.isNaN(Date.parse(String(changes[key])))) {
        throw new DomainError(400, "InvalidArgument", `${key} must be an ISO-8601 date.`);
      } else code[key] = String(changes[key]);
    }
    this.emit({ type: CONSTITUENT_EVENT.solicitChange, data: { id, constituent_id: code.constituent_id } });
    const c = this.constituents.get(code.constituent_id);
    if (c) this.syncRequestsNoEmail(c, false);
    return code;
  }

  deleteSolicitCode(id: string): void {
    const code = this.solicitCodes.get(id);
    if (!code) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    this.solicitCodes.delete(id);
    this.emit({ type: CONSTITUENT_EVENT.solicitDelete, data: { id, constituent_id: code.constituent_id } });
    const c = this.constituents.get(code.constituent_id);
    if (c) this.syncRequestsNoEmail(c, false);
  }

  solicitCodesOf(constituentId: string): ConstituentSolicitCode[] {
    return [...this.solicitCodes.values()].filter((s) => s.constituent_id === constituentId);
  }

  private isActiveCode(code: ConstituentSolicitCode, at: number): boolean {
    if (code.start_date !== undefined && Date.parse(code.start_date) > at) return false;
    if (code.end_date !== undefined && Date.parse(code.end_date) <= at) return false;
    return true;
  }

  /** requests_no_email mirrors an active "Requests no email" solicit code, both ways. */
  private syncRequestsNoEmail(c: Constituent, seeded: boolean): void {
    const at = this.config.now().getTime();
    const active = this.solicitCodesOf(c.id).some(
      (s) => s.solicit_code === this.config.requestsNoEmailSolicitCode && this.isActiveCode(s, at),
    );
    if (active === c.requests_no_email) return;
    c.requests_no_email = active;
    if (seeded) return;
    this.touch(c);
    this.emit({ type: CONSTITUENT_EVENT.change, data: { id: c.id } });
  }

  private openRequestsNoEmailCode(constituentId: string, seeded: boolean): void {
    const at = this.config.now().getTime();
    const already = this.solicitCodesOf(constituentId).some(
      (s) => s.solicit_code === this.config.requestsNoEmailSolicitCode && this.isActiveCode(s, at),
    );
    if (already) return;
    if (!this.solicitCodeTable.some((s) => s.description === this.config.requestsNoEmailSolicitCode)) return;
    const code: ConstituentSolicitCode = {
      id: this.newId(),
      constituent_id: constituentId,
      solicit_code: this.config.requestsNoEmailSolicitCode,
      start_date: this.stamp(),
    };
    this.solicitCodes.set(code.id, code);
    if (!seeded)
      this.emit({ type: CONSTITUENT_EVENT.solicitAdd, data: { id: code.id, constituent_id: constituentId } });
  }

  private closeRequestsNoEmailCode(constituentId: string): void {
    const at = this.config.now().getTime();
    for (const s of this.solicitCodesOf(constituentId)) {
      if (s.solicit_code === this.config.requestsNoEmailSolicitCode && this.isActiveCode(s, at)) {
        // History is kept: the code is ended, not deleted.
        s.end_date = this.stamp();
        this.emit({
          type: CONSTITUENT_EVENT.solicitChange,
          data: { id: s.id, constituent_id: constituentId },
        });
      }
    }
  }

  // ---------------------------------------------------------------- lists

  createList(input: Record<string, any>, opts: { seeded?: boolean; userName: string }): ConstituentList {
    if (typeof input.name !== "string" || input.name.trim() === "") {
      throw new DomainError(400, "InvalidArgument", "The name field is required.");
    }
    const listType = input.list_type ?? "Constituent";
    if (!["Constituent", "Gift", "Action", "Opportunity"].includes(listType)) {
      throw new DomainError(
        400,
        "InvalidArgument",
        "list_type must be Constituent, Gift, Action or Opportunity.",
      );
    }
    const ids = Array.isArray(input.ids) ? input.ids.map(String) : [];
    if (ids.length > 100_000)
      throw new DomainError(400, "InvalidArgument", "A list is limited to 100,000 ids.");
    const list: ConstituentList = {
      id: opts.seeded && typeof input.id === "string" ? input.id : randomUUID(),
      name: input.name,
      description: typeof input.description === "string" ? input.description : "",
      list_type: listType,
      list_permissions:
        typeof input.list_permissions === "string" ? input.list_permissions : "OthersCanViewAndEdit",
      ids: [...new Set(ids)],
      date_modified: this.stamp(),
      last_modified_by_user_name: opts.userName,
    };
    this.lists.set(list.id, list);
    return list;
  }

  requireList(id: string): ConstituentList {
    const list = this.lists.get(id);
    if (!list) throw new DomainError(404, "NotFound", "The requested item could not be found.");
    return list;
  }

  appendToList(id: string, ids: string[], userName: string): ConstituentList {
    const list = this.requireList(id);
    if (ids.length > 100_000)
      throw new DomainError(400, "InvalidArgument", "At most 100,000 ids can be appended.");
    const set = new Set(list.ids);
    for (const x of ids) set.add(x);
    list.ids = [...set];
    list.date_modified = this.stamp();
    list.last_modified_by_user_name = userName;
    return list;
  }

  removeFromList(id: string, ids: string[], userName: string): ConstituentList {
    const list = this.requireList(id);
    const drop = new Set(ids.map(String));
    list.ids = list.ids.filter((x) => !drop.has(x));
    list.date_modified = this.stamp();
    list.last_modified_by_user_name = userName;
    return list;
  }

  // ---------------------------------------------------------------- read shapes

  emailRead(e: EmailAddress): Record<string, unknown> {
    return {
      id: e.id,
      address: e.address,
      constituent_id: e.constituent_id,
      date_added: e.date_added,
      date_modified: e.date_modified,
      do_not_email: e.do_not_email,
      inactive: e.inactive,
      primary: e.primary,
      type: e.type,
    };
  }

  constituentRead(c: Constituent): Record<string, unknown> {
    const f = c.fields;
    const out: Record<string, unknown> = { id: c.id, type: c.type, lookup_id: c.lookup_id };
    for (const [k, v] of Object.entries(f)) if (k !== "name") out[k] = v;
    out.name = c.type === "Organization" ? (f.name ?? "") : (f.name ?? displayName(f));
    const primary = this.primaryEmail(c.id);
    if (primary) out.email = this.emailRead(primary);
    // The preferred address and the primary phone ride on the constituent, as SKY returns them.
    const address = this.addressesOf(c.id).find((a) => a.preferred && !a.inactive);
    if (address) out.address = this.addressRead(address);
    const phone = this.phonesOf(c.id).find((p) => p.primary && !p.inactive);
    if (phone) out.phone = this.phoneRead(phone);
    out.inactive = c.inactive;
    out.deceased = c.deceased;
    out.requests_no_email = c.requests_no_email;
    out.gives_anonymously = f.gives_anonymously === true;
    out.date_added = c.date_added;
    out.date_modified = c.date_modified;
    return out;
  }

  consentRead(r: ConsentRecord): Record<string, unknown> {
    const { seq: _seq, ...rest } = r;
    return rest;
  }

  listRead(l: ConstituentList): Record<string, unknown> {
    return {
      id: l.id,
      name: l.name,
      description: l.description,
      record_count: l.ids.filter((x) => l.list_type !== "Constituent" || this.constituents.has(x)).length,
      date_modified: l.date_modified,
      last_modified_by_user_name: l.last_modified_by_user_name,
      list_type: l.list_type,
      is_public: l.list_permissions !== "OnlyOwnerCanAccess",
    };
  }

  relationshipRead(r: Relationship): Record<string, unknown> {
    const other = this.constituents.get(r.relation_id);
    const out: Record<string, unknown> = { ...r };
    if (other) {
      out.name = other.type === "Organization" ? other.fields.name : displayName(other.fields);
      if (other.type === "Individual") {
        if (typeof other.fields.first === "string") out.first_name = other.fields.first;
        if (typeof other.fields.last === "string") out.last_name = other.fields.last;
      }
    }
    return out;
  }

  snapshot(): Record<string, unknown> {
    return {
      constituents: [...this.constituents.values()].map((c) => ({
        ...this.constituentRead(c),
        row_version: c.row_version,
        email_addresses: this.emailsOf(c.id).map((e) => this.emailRead(e)),
        solicit_codes: this.solicitCodesOf(c.id),
        gifts: [...this.gifts.values()].filter((g) => g.constituent_id === c.id),
        relationships: this.relationshipsOf(c.id).map((r) => this.relationshipRead(r)),
      })),
      consents: this.consents.map((r) => this.consentRead(r)),
      custom_fields: [...this.customFields.values()].map((f) => this.customFieldRead(f)),
      custom_field_categories: this.customFieldCategories,
      lists: [...this.lists.values()].map((l) => ({ ...this.listRead(l), ids: l.ids })),
      consent_channels: this.channels,
      consent_categories: this.categories,
      solicit_code_table: this.solicitCodeTable,
      row_version: this.rowVersion,
    };
  }
}

function displayName(f: Record<string, unknown>): string {
  return [f.title, f.first, f.middle, f.last]
    .filter((x): x is string => typeof x === "string" && x !== "")
    .join(" ")
    .concat(typeof f.suffix === "string" && f.suffix !== "" ? ` ${f.suffix}` : "");
}

function checkLength(input: Record<string, any>, key: string, max: number): void {
  const v = input[key];
  if (v === undefined || v === null) return;
  if (typeof v !== "string")
    throw new DomainError(400, "InvalidArgument", `The ${key} field must be a string.`);
  if (v.length > max)
    throw new DomainError(400, "InvalidArgument", `The ${key} field cannot exceed ${max} characters.`);
}
