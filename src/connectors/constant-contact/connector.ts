/**
 * The Constant Contact V3 connector: declares its limits and capabilities, reads contacts
 * incrementally (changes and opt-outs since a checkpoint, with an overlap), and applies operations
 * through bulk activities where they exist, consent operations first. It reports; it never decides
 * consent, never re-subscribes and never deletes.
 */
import type {
  CheckInfo,
  Checkpoint,
  ConnectionSettings,
  ConnectorError,
  ConnectorLimits,
  ConnectorOperation,
  ConnectorResult,
  ConnectorRuntime,
  ConnectorSession,
  ConsentObservation,
  ExternalList,
  ExternalRecord,
  OperationOutcome,
  ReadOptions,
  ReadPage,
  RecordsWithConsent,
} from "../connector";
import { z } from "zod";
import type { CallPriority } from "../http/rate-limiter";
import { emailKey, sameEmail } from "../../core/identity/normalise-email";
import { err, ok } from "../../core/result";
import { applyConsentFirst, isDeferrable, outcomeOfError, runByKind, stopsAll } from "../kit/apply-policy";
import { nextLinks } from "../kit/next-links";
import {
  awaitJob,
  createWatermark,
  firstSeen,
  overlapSecondsOption,
  readStart,
} from "../kit/incremental-read";
import { screenUpsertItems } from "../kit/upsert-items";
import { CONTACT_SUBRESOURCES, createConstantContactClient, type ConstantContactClient } from "./client";
import {
  IMPORT_EMAIL_MAX,
  changeEmailPut,
  chunk,
  chunkImport,
  contactToConsent,
  contactToRecord,
  matchOptOutActivity,
  needsOptOutActivity,
  contactWatermark,
  contentHash,
  createBody,
  createBodyFromItem,
  importRow,
  isPlausibleEmail,
  membershipBody,
  leaveListPut,
  optOutPut,
  updatePut,
  messageNamesAddress,
  wholeContactPut,
  writtenForThePerson,
} from "./mapping";
import { CcActivitySchema, errorItems, type CcActivity, type CcContact } from "./schemas";

export const CONSTANT_CONTACT_LIMITS: ConnectorLimits = {
  requests_per_second: 4,
  daily_quota: { calls: 10_000, reset: "utc_midnight" },
  // No concurrency rule is documented; the per-second limit is the real bound.
  max_concurrency: 4,
  batch: {
    import_contacts: 40_000,
    // "Maximum of 4 megabytes": read as 4,000,000 bytes, the stricter reading; bodies stay strictly below.
    import_bytes: 4_000_000,
    membership_ids: 500,
    membership_lists: 50,
    read_page: 500,
  },
};

/** `connections[].options` of a Constant Contact connection (the manifest declares this schema). */
export const ConstantContactOptionsSchema = z.strictObject({
  /** Contacts per read page (1–500). */
  page_size: z.number().int().min(1).max(500).optional(),
  /** How far before the checkpoint an incremental read starts, for late or out-of-order changes. */
  overlap_seconds: overlapSecondsOption(300),
});
export type ConstantContactOptions = z.infer<typeof ConstantContactOptionsSchema>;

/** Waits between polls of a bulk activity: first, doubling up to max, giving up after max_total. */
const ACTIVITY_POLL = { first_ms: 1000, max_ms: 30_000, max_total_ms: 2 * 60 * 60_000 };

const STREAM = "contacts";
/**
 * How far back the contact report is asked how a contact left. A read sees a new opt-out within a
 * poll or two, so this only bounds what a full read of an old account spends (QUIRKS.md).
 */
const OPT_OUT_LOOKBACK_MS = 30 * 86_400_000;
const EPOCH = "1970-01-01T00:00:00.000Z";
const TERMINAL = new Set(["completed", "cancelled", "failed", "timed_out"]);
const VENDOR = "Constant Contact";

/** A session with one Constant Contact account (the manifest's `connect`). */
export function createConstantContactSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
): ConnectorSession {
  return createSession(
    settings,
    runtime,
    CONSTANT_CONTACT_LIMITS,
    ConstantContactOptionsSchema.parse(settings.options ?? {}),
  );
}

function createSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  limits: ConnectorLimits,
  options: ConstantContactOptions,
): ConnectorSession {
  const client = createConstantContactClient(settings, runtime, limits);
  const pageSize = Math.min(
    500,
    Math.max(1, settings.page_size ?? options.page_size ?? limits.batch.read_page ?? 500),
  );
  const overlapMs = options.overlap_seconds * 1000;
  const poll = ACTIVITY_POLL;

  const check = async (): Promise<ConnectorResult<CheckInfo>> => {
    // GET /account/summary would name the account but needs the `account_read` scope, which
    // Concord does not otherwise ask for; a one-list page proves the token and the scope it uses.
    const r = await client.probe();
    if (!r.ok) return r;
    return ok({ account_label: `Constant Contact (${settings.connection_id})`, scopes: ["contact_data"] });
  };

  /**
   * A contact's consent observations. A contact's own opt-out that gave no reason is looked up in the
   * contact report once it is recent enough to be there (one consent-priority call): a campaign's
   * opt-out is the unsubscribe link, none at all may be a spam complaint (QUIRKS.md).
   */
  const consentOf = async (
    contact: CcContact,
    reportsDown?: ConnectorError,
  ): Promise<ConnectorResult<ConsentObservation[]>> => {
    if (!needsOptOutActivity(contact)) return ok(contactToConsent(contact));
    const date = contact.email_address?.opt_out_date;
    const since = runtime.now().getTime() - OPT_OUT_LOOKBACK_MS;
    if (date === undefined || Number.isNaN(Date.parse(date)) || Date.parse(date) < since)
      return ok(contactToConsent(contact));
    // The report failed for a contact before in this read: it is not asked again until the next.
    if (reportsDown !== undefined) return err(reportsDown);
    const activities = await client.optOutActivities(contact.contact_id);
    if (!activities.ok) {
      // A passing failure (a limit, an outage) is the caller's to hold: the read keeps the contact
      // for the next poll. Any other (a report this token may not read: 403; an answer no retry
      // would make readable) would hold it until it is older than the look-back: the opt-out is
      // kept, its kind unknown.
      if (isDeferrable(activities.error) && activities.error.code !== "bad_response") return activities;
      return ok(
        contactToConsent(
          contact,
          undefined,
          `its contact report could not be read (${activities.error.code}: ${activities.error.message.slice(0, 300)})`,
        ),
      );
    }
    return ok(contactToConsent(contact, matchOptOutActivity(date, activities.value ?? [])));
  };

  async function* read(
    checkpoint: Checkpoint | null,
    readOptions?: ReadOptions,
  ): AsyncIterable<ConnectorResult<ReadPage>> {
    const { full, since } = readStart(checkpoint, {
      ...(readOptions?.full !== undefined ? { full: readOptions.full } : {}),
      overlap_ms: overlapMs,
      epoch: EPOCH,
    });
    const base = { status: "all", include: CONTACT_SUBRESOURCES, limit: pageSize };
    // `updated_after` follows the contact's own updated_at, which an unsubscribe does not move
    // (QUIRKS.md), so an incremental read also asks for opt-outs since the same moment — first, so
    // a read that stops half-way has already seen them.
    const passes: Record<string, string | number>[] = full
      ? [base]
      : [
          { ...base, optout_after: since },
          { ...base, updated_after: since },
        ];
    const firstContact = firstSeen();
    const firstConsent = firstSeen();
    // A contact report that failed in passing (a limit, an outage): the contacts whose opt-out
    // needs it are held back, record and consent, for the next poll (the checkpoint does not move
    // past them), and every other contact's opt-out is still read now. The failure is reported
    // once the read is done.
    let reportsDown: ConnectorError | undefined;
    let held = 0;
    // Constant Contact documents no order for GET /contacts (QUIRKS.md); the next read starts no
    // later than this one began (a contact the cursor passed may opt out meanwhile).
    const watermark = createWatermark("unordered", checkpoint?.value ?? EPOCH, runtime.now().toISOString());
    for (let p = 0; p < passes.length; p++) {
      let from: Parameters<ConstantContactClient["contactsPage"]>[0] = { query: passes[p]! };
      const follow = nextLinks(VENDOR);
      for (;;) {
        // Opt-outs are consent work: their pass draws on the consent reserve and goes before reads.
        const page = await client.contactsPage(from, "optout_after" in passes[p]! ? "consent" : "read");
        if (!page.ok) {
          yield page;
          return;
        }
        const records: ExternalRecord[] = [];
        const consent: ConsentObservation[] = [];
        for (const contact of page.value.contacts) {
          if (!firstContact(contact.contact_id)) continue;
          const observed = await consentOf(contact, reportsDown);
          if (!observed.ok) {
            if (!isDeferrable(observed.error)) {
              yield observed;
              return;
            }
            reportsDown = observed.error;
            held += 1;
            continue;
          }
          records.push(contactToRecord(contact));
          for (const c of observed.value) {
            const key = contentHash([c.external_id, c.kind, c.occurred_at, c.actor, c.mechanism]);
            if (firstConsent(key)) consent.push(c);
          }
          watermark.see(contactWatermark(contact));
        }
        const next = page.value._links?.next?.href ?? null;
        const last = !next && p === passes.length - 1;
        yield ok({
          records,
          consent,
          checkpoint: {
            stream: STREAM,
            value: watermark.value(last && reportsDown === undefined, runtime.now().toISOString()),
            taken_at: runtime.now().toISOString(),
          },
        });
        if (!next) break;
        const followed = follow(next);
        if (!followed.ok) {
          yield followed;
          return;
        }
        from = { next: followed.value };
      }
    }
    if (reportsDown !== undefined)
      yield err({
        ...reportsDown,
        message: `${String(held)} contact(s) who opted out wait for the contact report, which tells how they left; every other contact was read. ${reportsDown.message}`,
      });
  }

  const get = async (ids: readonly string[]): Promise<ConnectorResult<RecordsWithConsent>> => {
    const records: ExternalRecord[] = [];
    const consent: ConsentObservation[] = [];
    for (const id of new Set(ids)) {
      const r = await client.getContact(id, "read");
      if (!r.ok) return r;
      if (!r.value) continue;
      records.push(contactToRecord(r.value));
      const observed = await consentOf(r.value);
      if (!observed.ok) return observed;
      consent.push(...observed.value);
    }
    return ok({ records, consent });
  };

  const lists = async (): Promise<ConnectorResult<ExternalList[]>> => {
    const out: ExternalList[] = [];
    let next: string | undefined;
    const follow = nextLinks(VENDOR);
    for (;;) {
      const r = await client.listsPage(next);
      if (!r.ok) return r;
      for (const l of r.value.lists) {
        if (l.deleted_at) continue;
        out.push({
          external_id: l.list_id,
          name: l.name,
          ...(l.membership_count !== undefined ? { member_count: l.membership_count } : {}),
        });
      }
      const href = r.value._links?.next?.href;
      if (!href) return ok(out);
      const followed = follow(href);
      if (!followed.ok) return followed;
      next = followed.value;
    }
  };

  // ------------------------------------------------------------------------------------------
  // apply

  /** Waits for a bulk activity to finish, with backoff through the runtime's clock. */
  const awaitActivity = (created: CcActivity): Promise<ConnectorResult<CcActivity>> =>
    awaitJob(runtime, created, poll, {
      ended: (a) => TERMINAL.has(a.state),
      reread: (a) => client.getActivity(a.activity_id, "write"),
      describe: (a) => `Bulk activity ${a.activity_id} (${a.state})`,
    });

  const opOutcome = (op: ConnectorOperation, fields: Omit<OperationOutcome, "op_id">): OperationOutcome => ({
    op_id: op.op_id,
    ...fields,
  });

  /** An outcome for a call that failed: transient and account-wide failures keep the work for later. */
  const fromError = (
    op: ConnectorOperation,
    e: ConnectorError,
    extra: { item_id?: string } = {},
  ): OperationOutcome => outcomeOfError(VENDOR, op.op_id, e, extra);

  /** The outcomes of one operation (one per item of a bulk upsert). */
  type Run = OperationOutcome[];

  const single = (op: ConnectorOperation, r: ConnectorResult<OperationOutcome>): Run =>
    r.ok ? [r.value] : [fromError(op, r.error)];

  const fetchContact = async (
    op: ConnectorOperation,
    id: string,
    priority: CallPriority,
  ): Promise<ConnectorResult<CcContact | OperationOutcome>> => {
    const r = await client.getContact(id, priority);
    if (!r.ok) return r;
    if (!r.value)
      return ok(
        opOutcome(op, {
          status: "failed",
          code: "not_found",
          message: `Contact ${id} does not exist in Constant Contact.`,
        }),
      );
    return ok(r.value);
  };
  const isOutcome = (v: CcContact | OperationOutcome): v is OperationOutcome => "op_id" in v;

  const recordOptOut = async (op: Extract<ConnectorOperation, { kind: "record_opt_out" }>): Promise<Run> => {
    const got = await fetchContact(op, op.external_id, "consent");
    if (!got.ok || isOutcome(got.value)) return single(op, got.ok ? ok(got.value as OperationOutcome) : got);
    const contact = got.value;
    if (op.scope.kind === "construct") {
      // A list that stands for a topic: the topic's opt-out is leaving that list (the account
      // stays subscribed to everything else). Constant Contact keeps no per-list opt-out record.
      if (op.scope.construct.type !== "list")
        return [
          opOutcome(op, {
            status: "failed",
            code: "validation_failed",
            message: `Constant Contact has no "${op.scope.construct.type}" to opt out of; a topic here is the whole account or a list.`,
          }),
        ];
      const listId = op.scope.construct.id;
      if (!(contact.list_memberships ?? []).includes(listId))
        return [opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id })];
      const put = await client.putContact(op.external_id, leaveListPut(contact, listId), "consent");
      return single(
        op,
        put.ok ? ok(opOutcome(op, { status: "succeeded", external_id: op.external_id })) : put,
      );
    }
    if (contact.email_address?.permission_to_send === "unsubscribed")
      return [opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id })];
    const put = await client.putContact(op.external_id, optOutPut(contact, op), "consent");
    if (!put.ok) return single(op, put);
    // A deleted contact is kept, and an import or a form revives it as it was: its opt-out is
    // recorded (which revives it, the account's only way), and it is deleted again as the account left it.
    if ((contact.deleted_at ?? null) !== null) {
      const again = await client.deleteContact(op.external_id);
      if (!again.ok || again.value.status >= 300)
        return [
          opOutcome(op, {
            status: "succeeded",
            external_id: op.external_id,
            message: `Unsubscribed; the contact, deleted in Constant Contact, could not be deleted again (${again.ok ? `HTTP ${again.value.status}` : again.error.message}).`,
          }),
        ];
    }
    return [opOutcome(op, { status: "succeeded", external_id: op.external_id })];
  };

  /**
   * Constant Contact lets only the person opt back in, except after the account's own opt-out
   * (`opt_out_source: Account`), which the account may undo. Concord asks only for that: the
   * account lifting its own opt-out. The answer is read back, since a refused opt-in answers 200.
   */
  const recordOptIn = async (op: Extract<ConnectorOperation, { kind: "record_opt_in" }>): Promise<Run> => {
    if (op.origin.actor !== "account" || op.scope.kind !== "account")
      return [
        opOutcome(op, {
          status: "failed",
          code: "consent_requires_contact_action",
          message:
            "Only the person can opt back in to Constant Contact (its resubscribe email or a sign-up form); use request_resubscribe.",
        }),
      ];
    const got = await fetchContact(op, op.external_id, "consent");
    if (!got.ok || isOutcome(got.value)) return single(op, got.ok ? ok(got.value as OperationOutcome) : got);
    const email = got.value.email_address;
    if (email?.permission_to_send !== "unsubscribed")
      return [opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id })];
    const theirs = {
      status: "failed" as const,
      code: "consent_requires_contact_action" as const,
      external_id: op.external_id,
      message:
        "The person unsubscribed themselves in Constant Contact: only they can opt back in (its resubscribe email or a sign-up form).",
    };
    // The person's request Concord wrote with the account's source (a deleted contact, which only
    // the account can revive) is still theirs: its reason says so.
    if (email.opt_out_source !== "Account" || writtenForThePerson(email.opt_out_reason))
      return [opOutcome(op, theirs)];
    const put = await client.putContact(
      op.external_id,
      wholeContactPut(got.value, { address: email.address, permission_to_send: "implicit" }),
      "consent",
    );
    if (!put.ok) return single(op, put);
    const after = await fetchContact(op, op.external_id, "consent");
    if (!after.ok || isOutcome(after.value))
      return single(op, after.ok ? ok(after.value as OperationOutcome) : after);
    return [
      after.value.email_address?.permission_to_send === "unsubscribed"
        ? opOutcome(op, theirs)
        : opOutcome(op, { status: "succeeded", external_id: op.external_id }),
    ];
  };

  const requestResubscribe = async (
    op: Extract<ConnectorOperation, { kind: "request_resubscribe" }>,
  ): Promise<Run> => {
    const r = await client.resubscribe(op.external_id, op.list_ids);
    if (!r.ok) return single(op, r);
    const message = errorItems(r.value.body)
      .map((e) => e.error_message ?? e.error_key)
      .join("; ");
    if (r.value.status === 409 || (r.value.status === 400 && /once|already/i.test(message)))
      return [
        opOutcome(op, {
          status: "pending_contact_action",
          code: "already_applied",
          external_id: op.external_id,
          message: `Constant Contact sends one resubscribe email per contact, ever, and it was already sent; only the person can act now (${message || r.value.status}).`,
        }),
      ];
    if (r.value.status === 400)
      return [
        opOutcome(op, {
          status: "failed",
          code: "validation_failed",
          message: message || "Constant Contact refused the resubscribe request.",
        }),
      ];
    return [
      opOutcome(op, {
        status: "pending_contact_action",
        external_id: op.external_id,
        message:
          "Constant Contact sent its confirmation email; the contact stays unsubscribed until they confirm.",
      }),
    ];
  };

  const updateContact = async (op: Extract<ConnectorOperation, { kind: "update_contact" }>): Promise<Run> => {
    const got = await fetchContact(op, op.external_id, "write");
    if (!got.ok || isOutcome(got.value)) return single(op, got.ok ? ok(got.value as OperationOutcome) : got);
    const put = await client.putContact(op.external_id, updatePut(got.value, op), "write");
    return single(op, put.ok ? ok(opOutcome(op, { status: "succeeded", external_id: op.external_id })) : put);
  };

  const changeEmail = async (op: Extract<ConnectorOperation, { kind: "change_email" }>): Promise<Run> => {
    if (!isPlausibleEmail(op.new_email))
      return [
        opOutcome(op, {
          status: "failed",
          code: "validation_failed",
          message: `"${op.new_email}" is not a usable email address.`,
        }),
      ];
    const got = await fetchContact(op, op.external_id, "write");
    if (!got.ok || isOutcome(got.value)) return single(op, got.ok ? ok(got.value as OperationOutcome) : got);
    const current = got.value.email_address?.address;
    if (current && sameEmail(current, op.new_email))
      return [opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id })];
    if (current && !sameEmail(current, op.old_email))
      return [
        opOutcome(op, {
          status: "failed",
          code: "conflict",
          message: `The contact's address is now ${current}, not ${op.old_email}; not changed.`,
        }),
      ];
    const put = await client.putContact(op.external_id, changeEmailPut(got.value, op.new_email), "write");
    return single(op, put.ok ? ok(opOutcome(op, { status: "succeeded", external_id: op.external_id })) : put);
  };

  /** The pair's list rules: a contact list created, renamed or deleted (its members' contacts stay). */
  const listChange = async (
    op: Extract<ConnectorOperation, { kind: "create_list" | "rename_list" | "delete_list" }>,
  ): Promise<Run> => {
    const r =
      op.kind === "create_list"
        ? await client.createList(op.name)
        : op.kind === "rename_list"
          ? await client.renameList(op.list_id, op.name)
          : await client.deleteList(op.list_id);
    if (!r.ok) return [fromError(op, r.error)];
    const { status, body } = r.value;
    if (status === 409)
      return [
        opOutcome(op, {
          status: "failed",
          code: "conflict",
          message: `Constant Contact already has a list named “${"name" in op ? op.name : ""}”.`,
        }),
      ];
    if (status === 404)
      return op.kind === "delete_list"
        ? [opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.list_id })]
        : [
            opOutcome(op, {
              status: "failed",
              code: "not_found",
              message: `List ${op.kind === "rename_list" ? op.list_id : ""} is gone.`,
            }),
          ];
    if (op.kind === "delete_list") {
      // Deleting a list is a bulk activity (202): done when the activity is.
      const activity = CcActivitySchema.safeParse(body);
      if (activity.success) {
        const ended = await awaitActivity(activity.data);
        if (!ended.ok) return [fromError(op, ended.error)];
        if (ended.value.state !== "completed")
          return [
            opOutcome(op, {
              status: "failed",
              code: "vendor_unavailable",
              message: `Deleting list ${op.list_id} ended ${ended.value.state}.`,
            }),
          ];
      }
    }
    const id = op.kind === "create_list" ? (body as { list_id?: string } | undefined)?.list_id : op.list_id;
    return [opOutcome(op, { status: "succeeded", ...(id !== undefined ? { external_id: id } : {}) })];
  };

  /**
   * Deleted in Constant Contact: a soft delete that keeps the unsubscribe, and the only delete its
   * API has (a deleted contact can be revived and keeps its address); gone already is done. An
   * erasure's outcome says so, and that the permanent removal is the account's, in its own screens.
   */
  const deleteContact = async (
    op: Extract<ConnectorOperation, { kind: "remove_contact" | "erase_contact" }>,
  ): Promise<Run> => {
    const r = await client.deleteContact(op.external_id);
    if (!r.ok) return [fromError(op, r.error)];
    return [
      opOutcome(op, {
        status: "succeeded",
        ...(r.value.status === 404 ? { code: "already_applied" as const } : {}),
        external_id: op.external_id,
        ...(op.kind === "erase_contact"
          ? {
              message:
                "Deleted. Constant Contact keeps a deleted contact (it can be revived) and its API has no permanent delete: remove it for good in the account (Contacts › Deleted).",
            }
          : {}),
      }),
    ];
  };

  const createContact = async (op: Extract<ConnectorOperation, { kind: "create_contact" }>): Promise<Run> => {
    if (!isPlausibleEmail(op.email))
      return [
        opOutcome(op, {
          status: "failed",
          code: "validation_failed",
          message: `"${op.email}" is not a usable email address.`,
        }),
      ];
    const r = await client.createContact(createBody(op), "write");
    if (!r.ok) return single(op, r);
    if (r.value.status === 409)
      return [
        opOutcome(op, {
          status: "failed",
          code: "conflict",
          message: "Constant Contact already holds this address (possibly as a deleted contact).",
        }),
      ];
    return [opOutcome(op, { status: "succeeded", external_id: createdId(r.value.body) })];
  };

  // --- upsert_contacts ------------------------------------------------------------------------

  type Upsert = Extract<ConnectorOperation, { kind: "upsert_contacts" }>;
  type Item = Upsert["items"][number];
  let unsubscribedEmails: Promise<ConnectorResult<Set<string>>> | undefined;

  /** Every unsubscribed address in the account, fetched once per apply and only when an import could not list someone. */
  const loadUnsubscribed = (): Promise<ConnectorResult<Set<string>>> => {
    unsubscribedEmails ??= (async () => {
      const found = new Set<string>();
      let from: Parameters<ConstantContactClient["contactsPage"]>[0] = {
        query: { status: "unsubscribed", limit: 500 },
      };
      const follow = nextLinks(VENDOR);
      for (;;) {
        const page = await client.contactsPage(from);
        if (!page.ok) return page;
        for (const c of page.value.contacts)
          if (c.email_address) found.add(emailKey(c.email_address.address));
        const next = page.value._links?.next?.href;
        if (!next) return ok(found);
        const followed = follow(next);
        if (!followed.ok) return followed;
        from = { next: followed.value };
      }
    })();
    const loaded = unsubscribedEmails;
    // A failed read is not kept: the next import that needs it reads again.
    void loaded.then((r) => {
      if (!r.ok && unsubscribedEmails === loaded) unsubscribedEmails = undefined;
    });
    return loaded;
  };

  /** One item through POST /contacts (or GET + PUT when it exists): for items the import cannot carry. */
  const upsertOne = async (op: Upsert, item: Item): Promise<ConnectorResult<OperationOutcome>> => {
    const done = (external_id: string): OperationOutcome =>
      opOutcome(op, { item_id: item.item_id, status: "succeeded", external_id });
    let id = item.external_id;
    if (!id) {
      const body = createBodyFromItem(item);
      if (op.list_ids.length > 0) body.list_memberships = op.list_ids.slice(0, 50);
      const created = await client.createContact(body, "write");
      if (!created.ok) return created;
      if (created.value.status !== 409) return ok(done(createdId(created.value.body)));
      const found = await client.contactsPage({
        query: { email: item.email.trim(), status: "all", limit: 1 },
      });
      if (!found.ok) return found;
      id = found.value.contacts[0]?.contact_id;
      if (!id)
        return ok(
          opOutcome(op, {
            item_id: item.item_id,
            status: "failed",
            code: "conflict",
            message: "Constant Contact reports the address exists but does not return it.",
          }),
        );
    }
    const got = await client.getContact(id, "write");
    if (!got.ok) return got;
    if (!got.value)
      return ok(
        opOutcome(op, {
          item_id: item.item_id,
          status: "failed",
          code: "not_found",
          message: `Contact ${id} does not exist.`,
        }),
      );
    const body = updatePut(got.value, {
      kind: "update_contact",
      op_id: op.op_id,
      external_id: id,
      ...(item.first_name !== undefined ? { first_name: item.first_name } : {}),
      ...(item.last_name !== undefined ? { last_name: item.last_name } : {}),
      ...(item.fields ? { fields: item.fields } : {}),
    });
    // An unsubscribed contact is put on no list (only their own resubscribe does that), as the
    // import refuses it: the profile is updated, and the item says the lists were not added.
    const unsubscribed = got.value.email_address?.permission_to_send === "unsubscribed";
    if (op.list_ids.length > 0 && !unsubscribed)
      body.list_memberships = [...new Set([...(got.value.list_memberships ?? []), ...op.list_ids])].slice(
        0,
        50,
      );
    const put = await client.putContact(id, body, "write");
    if (!put.ok) return put;
    if (op.list_ids.length > 0 && unsubscribed)
      return ok(
        opOutcome(op, {
          item_id: item.item_id,
          status: "failed",
          code: "cannot_add_to_list",
          message: "The person unsubscribed; Concord adds them to no list (only their own resubscribe can).",
        }),
      );
    return ok(done(id));
  };

  const upsertContacts = async (op: Upsert): Promise<Run> => {
    if (op.consent_intent.new_contacts !== "subscribed")
      // An import makes new contacts `implicit` (subscribed); any other start needs the person.
      return op.items.map((item) =>
        opOutcome(op, {
          item_id: item.item_id,
          status: "failed",
          code: "unsupported",
          message: `Constant Contact cannot add new contacts as ${op.consent_intent.new_contacts}: an import subscribes them, and only the person can confirm or opt in.`,
        }),
      );
    const outcome = new Map<string, OperationOutcome>();
    const setOutcome = (item: Item, o: Omit<OperationOutcome, "op_id" | "item_id">): void => {
      const prev = outcome.get(item.item_id);
      // An item imported for several list groups keeps its worst result.
      if (prev && prev.status !== "succeeded") return;
      outcome.set(item.item_id, { op_id: op.op_id, item_id: item.item_id, ...o });
    };
    const screened = screenUpsertItems(op.op_id, op.items, isPlausibleEmail);
    for (const o of screened.outcomes) outcome.set(o.item_id ?? "", o);
    const bulk: Item[] = [];
    const singles: Item[] = [];
    for (const item of screened.send) {
      // The import needs at least one list and takes addresses of at most 50 characters.
      if (op.list_ids.length > 0 && item.email.trim().length <= IMPORT_EMAIL_MAX) bulk.push(item);
      else singles.push(item);
    }

    let stop: ConnectorError | undefined;
    const deferRest = (items: readonly Item[], e: ConnectorError): void => {
      for (const item of items)
        if (!outcome.has(item.item_id))
          outcome.set(item.item_id, fromError(op, e, { item_id: item.item_id }));
    };

    const maxContacts = limits.batch.import_contacts ?? 40_000;
    const maxBytes = limits.batch.import_bytes ?? 4_000_000;
    const entries = bulk.map((item) => ({ row: importRow(item), item }));
    const started: { activity: CcActivity; items: Item[] }[] = [];
    for (const lists of chunk(op.list_ids, limits.batch.membership_lists ?? 50)) {
      for (const c of chunkImport(entries, lists, maxContacts, maxBytes)) {
        if (stop) break;
        const r = await client.startImport({ import_data: c.rows, list_ids: lists });
        if (!r.ok) {
          if (stopsAll(r.error)) stop = r.error;
          for (const item of c.items) setOutcome(item, fromError(op, r.error));
          continue;
        }
        started.push({ activity: r.value, items: c.items });
      }
    }
    for (const { activity, items } of started) {
      if (stop) {
        deferRest(items, stop);
        continue;
      }
      const done = await awaitActivity(activity);
      if (!done.ok) {
        if (stopsAll(done.error)) stop = done.error;
        for (const item of items) setOutcome(item, fromError(op, done.error));
        continue;
      }
      const a = done.value;
      if (a.state !== "completed") {
        for (const item of items)
          setOutcome(item, {
            status: "deferred",
            code: "vendor_unavailable",
            message: `Import activity ${a.activity_id} ended ${a.state}.`,
          });
        continue;
      }
      const errors = a.activity_errors ?? [];
      let cannotAdd = 0;
      for (const item of items) {
        const hit = errors.find((m) => messageNamesAddress(m, item.email));
        if (!hit) continue;
        const unsubscribed = /unsubscri|opt.?out|cannot be added/i.test(hit);
        if (unsubscribed) cannotAdd++;
        setOutcome(item, {
          status: "failed",
          code: unsubscribed ? "cannot_add_to_list" : "validation_failed",
          message: hit,
        });
      }
      if ((a.status?.cannot_add_to_list_count ?? 0) > cannotAdd) {
        const refusedHere = (a.status?.cannot_add_to_list_count ?? 0) - cannotAdd;
        const explained = (set: Set<string>): number =>
          items.filter((item) => !outcome.has(item.item_id) && set.has(emailKey(item.email))).length;
        let unsub = await loadUnsubscribed();
        // Read once an apply: a contact who unsubscribed since (or an earlier import revived)
        // is not in it. When it does not account for every refusal, it is read again, once.
        if (unsub.ok && explained(unsub.value) < refusedHere) {
          unsubscribedEmails = undefined;
          unsub = await loadUnsubscribed();
        }
        if (!unsub.ok) {
          if (stopsAll(unsub.error)) stop = unsub.error;
          // Some of these were refused and which cannot be told: none is reported imported (that
          // would claim a list membership and a link Constant Contact refused); all are tried again.
          for (const item of items)
            if (!outcome.has(item.item_id))
              setOutcome(item, {
                status: "deferred",
                code: unsub.error.code,
                message: `Constant Contact could not add ${refusedHere} of this import's contacts to the list (unsubscribed), and its unsubscribed contacts could not be read to tell which (${unsub.error.message}); the import is tried again.`,
                ...(unsub.error.retry_at ? { retry_at: unsub.error.retry_at } : {}),
              });
        } else {
          for (const item of items)
            if (!outcome.has(item.item_id) && unsub.value.has(emailKey(item.email)))
              setOutcome(item, {
                status: "failed",
                code: "cannot_add_to_list",
                message:
                  "The person unsubscribed; an import cannot add them to a list (only their own resubscribe can).",
              });
        }
      }
      for (const item of items)
        if (!outcome.has(item.item_id))
          setOutcome(item, {
            status: "succeeded",
            ...(item.external_id ? { external_id: item.external_id } : {}),
          });
    }

    for (const item of singles) {
      if (stop) break;
      const r = await upsertOne(op, item);
      if (r.ok) setOutcome(item, r.value);
      else {
        if (stopsAll(r.error)) stop = r.error;
        setOutcome(item, fromError(op, r.error));
      }
    }
    if (stop) deferRest(op.items, stop);
    return op.items.map((item) => outcome.get(item.item_id)!);
  };

  // --- memberships ----------------------------------------------------------------------------

  const memberships = async (
    op: Extract<ConnectorOperation, { kind: "add_list_members" | "remove_list_members" }>,
  ): Promise<Run> => {
    const kind = op.kind === "add_list_members" ? "add" : "remove";
    const ids = [...new Set(op.external_ids)];
    if (ids.length === 0 || op.list_ids.length === 0) return [opOutcome(op, { status: "succeeded" })];
    const started: { activity: CcActivity; sent: number }[] = [];
    for (const lists of chunk([...new Set(op.list_ids)], limits.batch.membership_lists ?? 50)) {
      for (const part of chunk(ids, limits.batch.membership_ids ?? 500)) {
        const r = await client.startMembership(kind, membershipBody(part, lists));
        // Activities already queued still run; the whole operation is retried, which is harmless.
        if (!r.ok) return single(op, r);
        started.push({ activity: r.value, sent: part.length });
      }
    }
    const problems: string[] = [];
    /** Activities Constant Contact did not finish (failed, cancelled, timed out): its outage. */
    const unfinished: string[] = [];
    /** Contacts left out by completed activities without error: the account's limits, not an outage. */
    const leftOut: string[] = [];
    for (const { activity, sent } of started) {
      const done = await awaitActivity(activity);
      if (!done.ok) return single(op, done);
      const completed = done.value.status?.items_completed_count;
      if (done.value.state !== "completed")
        unfinished.push(`activity ${done.value.activity_id} ended ${done.value.state}`);
      else if ((done.value.activity_errors ?? []).length > 0)
        problems.push(
          ...(done.value.activity_errors ?? []).map((m) => `activity ${done.value.activity_id}: ${m}`),
        );
      // A completed activity with no error may still have left contacts out: the account cannot
      // put an unsubscribed contact on a list, and an id it does not have is no contact.
      else if (completed !== undefined && completed < sent)
        leftOut.push(
          `activity ${done.value.activity_id} changed ${completed} of ${sent} contact(s) (an unsubscribed or deleted contact cannot be put on a list by the account)`,
        );
    }
    // An activity Constant Contact did not finish is tried again (the operation waits, as an
    // import's does); errors it reported, and a contact the account may not put on a list (only the
    // person can resubscribe there), are refused, so that nothing retries them every minute.
    if (unfinished.length > 0)
      return [
        opOutcome(op, {
          status: "deferred",
          code: "vendor_unavailable",
          message: `${unfinished.slice(0, 5).join("; ")}: Constant Contact did not finish the change; it is tried again.`,
        }),
      ];
    if (problems.length > 0 || leftOut.length > 0)
      return [
        opOutcome(op, {
          status: "failed",
          code: problems.length > 0 || kind === "remove" ? "vendor_unavailable" : "cannot_add_to_list",
          message: [...problems, ...leftOut].slice(0, 5).join("; "),
        }),
      ];
    return [opOutcome(op, { status: "succeeded" })];
  };

  const run = runByKind({
    record_opt_out: recordOptOut,
    record_opt_in: recordOptIn,
    request_resubscribe: requestResubscribe,
    upsert_contacts: upsertContacts,
    add_list_members: memberships,
    remove_list_members: memberships,
    update_contact: updateContact,
    change_email: changeEmail,
    create_contact: createContact,
    remove_contact: deleteContact,
    erase_contact: deleteContact,
    create_list: listChange,
    rename_list: listChange,
    delete_list: listChange,
  });

  const apply = (operations: readonly ConnectorOperation[]): Promise<OperationOutcome[]> => {
    unsubscribedEmails = undefined;
    return applyConsentFirst(VENDOR, operations, run);
  };

  return { check, read, get, lists, apply };
}

function createdId(body: unknown): string {
  return body && typeof body === "object" && "contact_id" in body && typeof body.contact_id === "string"
    ? body.contact_id
    : "";
}
