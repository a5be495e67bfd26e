/**
 * The Kindful connector. Kindful pushes no contact changes (its webhooks cover transactions only),
 * so reads follow its own change feed: contacts not linked yet and linked contacts whose sync
 * version moved, each linked once Concord has stored it. Group memberships are read per mapped
 * group. Writes are imports: Integration Email Opt-in for all email, a Yes/No custom field for a
 * topic, profile columns, groups as import columns.
 */
import { z } from "zod";
import type {
  Checkpoint,
  ConnectionSettings,
  ConnectorError,
  ConnectorLimits,
  ConnectorOperation,
  ConnectorResult,
  ConnectorRuntime,
  ConnectorSession,
  ExternalRecord,
  ReadPage,
  RecordsWithConsent,
  ConsentObservation,
} from "../connector";
import { err, ok } from "../../core/result";
import {
  applyConsentFirst,
  consentWriteRefusal,
  failureOf,
  optedOutSinceRead,
  succeeded,
  unsupported,
  type Outcome,
} from "../kit/apply-policy";
import { firstSeen } from "../kit/incremental-read";
import {
  createKindfulClient,
  IMPORT_ROWS_MAX,
  type ImportRequest,
  type KindfulClient,
  type KindfulContact,
} from "./client";
import {
  consentObservations,
  CUSTOM_FIELD,
  CUSTOM_FIELD_PREFIX,
  customFieldValue,
  deletedRecord,
  isYes,
  profileRow,
  sameFieldName,
  toExternalRecord,
} from "./mapping";

export const KindfulOptionsSchema = z.strictObject({
  /** Contacts per query page (Kindful's maximum is 50). */
  page_size: z.number().int().min(1).max(50).default(50),
});

/** Kindful publishes no rate limit (reference/apis.md §4): Concord keeps to a modest pace. */
export const KINDFUL_LIMITS: ConnectorLimits = {
  requests_per_second: 5,
  max_concurrency: 2,
  batch: { import_contacts: IMPORT_ROWS_MAX, membership_ids: IMPORT_ROWS_MAX, read_page: 50 },
};

const VENDOR = "Kindful";
const STREAM = "contacts";
/** The most times one incremental read lists a feed while it keeps bringing contacts not seen yet. */
const FEED_PASSES_MAX = 5;

/**
 * The topic fields' spellings a connection has learned, kept for as long as the connection is open
 * (its runtime): the engine reads in one session and writes in the next, and a write must use the
 * spelling the read found.
 */
const learnedSpellings = new WeakMap<ConnectorRuntime, Map<string, string>>();
function spellingsOf(runtime: ConnectorRuntime): Map<string, string> {
  let known = learnedSpellings.get(runtime);
  if (known === undefined) {
    known = new Map();
    learnedSpellings.set(runtime, known);
  }
  return known;
}

export function createKindfulSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
): ConnectorSession {
  const options = KindfulOptionsSchema.parse(settings.options ?? {});
  const client = createKindfulClient(settings, runtime, KINDFUL_LIMITS);
  const pageSize = Math.min(options.page_size, settings.page_size ?? options.page_size);
  const topicFields = [
    ...new Set(
      (settings.constructs ?? [])
        .filter((c) => c.type === CUSTOM_FIELD)
        .map((c) => c.name ?? c.id ?? "")
        .filter((n) => n !== ""),
    ),
  ];
  const nowIso = () => runtime.now().toISOString();
  /**
   * Each topic field's name as Kindful spells it, learned from the contacts read (it may differ
   * from the config's in case or spaces): a write under another spelling could land in a field of
   * its own, or nowhere, while the organisation's field stays unset.
   */
  const spellings = spellingsOf(runtime);
  const learnSpellings = (contacts: readonly KindfulContact[]): void => {
    for (const c of contacts)
      for (const key of Object.keys(c.custom_fields ?? {}))
        for (const field of topicFields) if (sameFieldName(key, field)) spellings.set(field, key);
  };
  const spelled = (field: string): string => spellings.get(field) ?? field;
  const fieldNames = { spelled, knows: (field: string) => spellings.has(field), learn: learnSpellings };

  const memberships = async (
    groupIds: readonly string[],
  ): Promise<ConnectorResult<Map<string, string[]>>> => {
    const members = new Map<string, string[]>();
    for (const groupId of groupIds) {
      for await (const page of client.query([{ by_group_id: [Number(groupId)] }], "read", pageSize)) {
        if (!page.ok) return page;
        for (const c of page.value) {
          const ids = members.get(String(c.id)) ?? [];
          if (!ids.includes(groupId)) ids.push(groupId);
          members.set(String(c.id), ids);
        }
      }
    }
    return ok(members);
  };

  async function* read(
    checkpoint: Checkpoint | null,
    readOptions: { full?: boolean; list_ids?: readonly string[] } = {},
  ): AsyncGenerator<ConnectorResult<ReadPage>> {
    const full = readOptions.full === true || checkpoint === null;
    let lists: Map<string, string[]> | undefined;
    if (readOptions.list_ids && readOptions.list_ids.length > 0) {
      const m = await memberships(readOptions.list_ids);
      if (!m.ok) {
        yield m;
        return;
      }
      lists = m.value;
    }
    const first = firstSeen();
    const started = nowIso();
    let firstPage = true;
    // Each page is handed out as Kindful answers it; its contacts are linked only once the engine
    // says the page is stored (`ReadPage.stored`): the engine fetches the next page while it stores
    // one, so being asked for it says nothing. Linking takes contacts out of the `not_linked` and
    // `changed` feeds: should a query token page the live result by position, the feed moves up
    // under the read and skips as many as were linked. So an incremental feed is listed again until
    // a pass brings no contact not seen yet (its last pass costs one call).
    const feeds: unknown[][] = full ? [[]] : [["not_linked"], ["changed"]];
    for (const terms of feeds) {
      for (let pass = 0, fresh = 1; fresh > 0 && pass < (full ? 1 : FEED_PASSES_MAX); pass += 1) {
        fresh = 0;
        for await (const got of client.query(terms, "read", pageSize)) {
          if (!got.ok) {
            yield got;
            return;
          }
          const contacts = got.value.filter((c) => first(String(c.id)));
          if (contacts.length === 0) continue;
          learnSpellings(contacts);
          fresh += contacts.length;
          const page: ReadPage = {
            records: contacts.map((c) =>
              toExternalRecord(c, topicFields, lists ? (lists.get(String(c.id)) ?? []) : undefined),
            ),
            consent: contacts.flatMap((c) => consentObservations(c, topicFields, nowIso())),
            checkpoint: { stream: STREAM, value: started, taken_at: nowIso() },
            stored: async () => {
              const linked = await client.link(
                contacts.map((c) => ({
                  id: c.id,
                  sync_version: c.sync_version ?? 0,
                  // Kindful's own time back; one it did not give is the time of the link.
                  updated_at: c.updated_at !== "" ? c.updated_at : nowIso(),
                })),
              );
              return linked.ok ? ok(undefined) : linked;
            },
          };
          if (lists && firstPage)
            page.memberships = {
              list_ids: [...(readOptions.list_ids ?? [])],
              members: Object.fromEntries(lists),
            };
          firstPage = false;
          yield ok(page);
        }
      }
    }
    if (firstPage) {
      // Nothing changed: one empty page still moves the checkpoint and gives the memberships.
      const page: ReadPage = {
        records: [],
        consent: [],
        checkpoint: { stream: STREAM, value: started, taken_at: nowIso() },
      };
      if (lists)
        page.memberships = {
          list_ids: [...(readOptions.list_ids ?? [])],
          members: Object.fromEntries(lists),
        };
      yield ok(page);
    }
  }

  const get = async (ids: readonly string[]): Promise<ConnectorResult<RecordsWithConsent>> => {
    const records: ExternalRecord[] = [];
    const consent: ConsentObservation[] = [];
    for (const id of [...new Set(ids)]) {
      const c = await client.getContact(id, "read");
      if (!c.ok) return c;
      if (!c.value) {
        records.push(deletedRecord(id, nowIso()));
        continue;
      }
      learnSpellings([c.value]);
      records.push(toExternalRecord(c.value, topicFields));
      consent.push(...consentObservations(c.value, topicFields, nowIso()));
    }
    return ok({ records, consent });
  };

  return {
    check: async () => {
      const groups = await client.groups();
      if (!groups.ok) return groups;
      return ok({ account_label: `Kindful (${groups.value.length} groups)` });
    },
    read: (checkpoint, o) => read(checkpoint, o),
    get,
    lists: async () => {
      const r = await client.groups();
      if (!r.ok) return r;
      return ok(
        r.value.map((g) => ({
          external_id: g.id,
          name: g.name,
          ...(g.count !== undefined ? { member_count: g.count } : {}),
        })),
      );
    },
    apply: (operations) =>
      applyConsentFirst(VENDOR, operations, async (op) => [
        { op_id: op.op_id, ...(await applyOne(client, op, runtime, topicFields, fieldNames)) },
      ]),
  };
}

const failed = (e: ConnectorError): Outcome => failureOf(VENDOR, e);

/** Runs an import and reads its one row's result; a row Kindful refused fails the operation. */
async function importOne(
  client: KindfulClient,
  req: ImportRequest,
  priority: "consent" | "write",
): Promise<ConnectorResult<number>> {
  const job = await client.importRows(req, priority);
  if (!job.ok) return job;
  if (job.value.status !== "complete")
    return err({
      code: "vendor_unavailable",
      message: `Kindful import ${String(job.value.id)} ended ${job.value.status}.`,
    });
  const row = job.value.results?.[0];
  if (!row || row.contact_id === null || row.status === "error")
    return err({
      // An update that matched no contact: the contact is gone (QUIRKS.md: the row's error text).
      code: req.action_type === "update" && row?.contact_id === null ? "not_found" : "validation_failed",
      message: `Kindful refused the import row: ${row?.error ?? "no result for the row"}.`,
    });
  // An update that made a contact matched none: the one Concord meant is not the one changed (and
  // a new contact starts opted in), so the operation is not done.
  if (req.action_type === "update" && row.status === "created")
    return err({
      code: "not_found",
      message: `Kindful made a new contact (${row.contact_id}) from an update that matched none: the contact meant is gone.`,
    });
  // A create Kindful ignored because a contact matches it: that contact is the one meant, unchanged.
  if (req.action_type === "create" && row.status === "ignored") return ok(row.contact_id);
  // A create that updated a contact it matched wrote the new contact's columns over that one (its
  // Integration Email Opt-in included): not the create meant, and said so.
  if (req.action_type === "create" && row.status === "updated")
    return err({
      code: "conflict",
      message: `Kindful matched contact ${row.contact_id} to the new contact's address and updated it instead of leaving it as it was; the next read shows what it holds now, and Concord writes the consent it must keep again.`,
    });
  // Kindful drops an update older than the contact's latest change (clocks apart): not done, and
  // kept for the next run, never reported as applied.
  if (row.status === "ignored")
    return err({
      code: "vendor_unavailable",
      message: `Kindful ignored the update as older than contact ${row.contact_id}'s latest change (${row.error ?? "no reason given"}); it is retried.`,
    });
  // Only what Kindful names as done is done: a status Concord does not know is not taken as a write.
  const done = req.action_type === "create" ? "created" : "updated";
  if (row.status !== done)
    return err({
      code: "bad_response",
      message: `Kindful answered the import row with status "${row.status}", which Concord does not take as "${done}"; the write is kept and tried again.`,
    });
  return ok(row.contact_id);
}

/** The row every update carries: Kindful ignores an update older than the contact's latest change. */
const updateRow = (id: string, now: Date, extra: Record<string, unknown>) => ({
  id: Number(id),
  updated_at: now.toISOString(),
  ...extra,
});

async function applyOne(
  client: KindfulClient,
  op: ConnectorOperation,
  runtime: ConnectorRuntime,
  topicFields: readonly string[],
  fieldNames: {
    spelled: (field: string) => string;
    knows: (field: string) => boolean;
    learn: (contacts: readonly KindfulContact[]) => void;
  },
): Promise<Outcome> {
  const { spelled } = fieldNames;
  switch (op.kind) {
    case "record_opt_out":
    case "record_opt_in": {
      const optOut = op.kind === "record_opt_out";
      const refused = consentWriteRefusal(op, {
        construct_types: [CUSTOM_FIELD],
        where:
          "Kindful keeps consent for all email (Integration Email Opt-in) or in a Yes/No custom field, not by account or group.",
        restores: "Concord sets Integration Email Opt-in back to Yes only for the person's own.",
      });
      if (refused) return refused;
      const field =
        op.scope.kind === "construct" ? (op.scope.construct.name ?? op.scope.construct.id) : undefined;
      // An opt-out is written at once (setting it twice is harmless), on the documented import
      // alone: whether the contact is gone is the import row's to say. An opt-in is written only
      // where the contact does not show it already.
      if (optOut && field !== undefined && !fieldNames.knows(field)) {
        // No read since the connection opened showed how Kindful spells the field: the contact
        // may. Whatever it answers, the opt-out is written (under the config's spelling at worst).
        const current = await client.getContact(op.external_id, "consent");
        if (current.ok && current.value) fieldNames.learn([current.value]);
      }
      if (!optOut) {
        const current = await client.getContact(op.external_id, "consent");
        if (!current.ok) return failed(current.error);
        if (current.value) fieldNames.learn([current.value]);
        if (!current.value)
          return {
            status: "failed",
            code: "not_found",
            message: `Kindful contact ${op.external_id} does not exist.`,
          };
        // An answer without what the check reads shows nothing: "not there" would read as opted
        // in, and the opt-in would be reported done while the opt-out stays in Kindful.
        const unread =
          field === undefined
            ? current.value.email_opt_in === undefined
            : current.value.custom_fields === undefined;
        if (unread)
          return failed({
            code: "bad_response",
            message: `Kindful's answer for contact ${op.external_id} carried no ${field === undefined ? "Integration Email Opt-in" : `custom fields (the topic's "${field}")`}, so Concord cannot tell whether an opt-out was made there since it read it; the opt-in is kept and written once an answer shows it`,
          });
        const shownIn =
          field === undefined
            ? current.value.email_opt_in !== "No"
            : !isYes(customFieldValue(current.value, field));
        if (shownIn) return succeeded(op.external_id, "already_applied");
        const since = optedOutSinceRead(
          VENDOR,
          op,
          true,
          field === undefined ? "Integration Email Opt-in is No" : `custom field "${field}" is Yes`,
        );
        if (since) return since;
      }
      const change =
        field === undefined
          ? { email_opt_in: optOut ? "No" : "Yes" }
          : { custom_fields: { [spelled(field)]: optOut ? "Yes" : "No" } };
      const r = await importOne(
        client,
        { action_type: "update", match_by: "id", data: [updateRow(op.external_id, runtime.now(), change)] },
        "consent",
      );
      return r.ok ? succeeded(op.external_id) : failed(r.error);
    }
    case "update_contact": {
      // A topic's opt-out field is consent, written only by consent operations: a profile field
      // mapped onto it (however its name is written) would clear an opt-out as a field update.
      const topicField = Object.keys(op.fields ?? {}).find(
        (name) =>
          name.startsWith(CUSTOM_FIELD_PREFIX) &&
          topicFields.some((t) => sameFieldName(t, name.slice(CUSTOM_FIELD_PREFIX.length))),
      );
      if (topicField !== undefined)
        return {
          status: "failed",
          code: "validation_failed",
          message: `${topicField} is a topic's opt-out field in Kindful: only consent is written to it, never a profile update.`,
        };
      const { row, rejected } = profileRow(op);
      if (rejected.length > 0)
        return {
          status: "failed",
          code: "validation_failed",
          message: `Kindful has no writable contact column for: ${rejected.join(", ")}.`,
        };
      if (Object.keys(row).length === 0) return succeeded(op.external_id, "already_applied");
      const r = await importOne(
        client,
        { action_type: "update", match_by: "id", data: [updateRow(op.external_id, runtime.now(), row)] },
        "write",
      );
      return r.ok ? succeeded(op.external_id) : failed(r.error);
    }
    case "change_email": {
      const r = await importOne(
        client,
        {
          action_type: "update",
          match_by: "id",
          data: [updateRow(op.external_id, runtime.now(), { email: op.new_email.trim() })],
        },
        "write",
      );
      return r.ok ? succeeded(op.external_id) : failed(r.error);
    }
    case "create_contact": {
      // A retry after a lost answer must not make a second contact: look the address up first.
      const found = await client.emailExists(op.email.trim(), "write");
      if (!found.ok) return failed(found.error);
      const ids = found.value.ids;
      if (ids.length === 1) return succeeded(String(ids[0]), "already_applied");
      if (ids.length > 1)
        return {
          status: "failed",
          code: "conflict",
          message: `${ids.length} Kindful contacts already have ${op.email}; Concord will not guess which one.`,
        };
      if (found.value.exist)
        return {
          status: "failed",
          code: "conflict",
          message: `Kindful says a contact already has ${op.email} but names none; Concord does not make a second one (a full read links the one there).`,
        };
      const r = await importOne(
        client,
        {
          action_type: "create",
          match_by: "email",
          data: [
            {
              email: op.email.trim(),
              first_name: op.first_name ?? null,
              last_name: op.last_name ?? null,
              // Made from a platform contact who may be emailed: the integration's opt-in is Yes.
              email_opt_in: "Yes",
            },
          ],
        },
        "write",
      );
      return r.ok ? succeeded(String(r.value)) : failed(r.error);
    }
    case "add_list_members":
    case "remove_list_members": {
      const groups = await client.groups();
      if (!groups.ok) return failed(groups.error);
      const names = op.list_ids.map((id) => groups.value.find((g) => g.id === id)?.name);
      const missing = op.list_ids.filter((_, i) => names[i] === undefined);
      if (missing.length > 0)
        return {
          status: "failed",
          code: "not_found",
          message: `Kindful has no group ${missing.join(", ")}.`,
        };
      const flag = op.kind === "add_list_members" ? "yes" : "no";
      const ids = [...new Set(op.external_ids)];
      // Each row is the import's own: a row Kindful refused or ignored is a membership not changed.
      const refused: string[] = [];
      for (let i = 0; i < ids.length; i += IMPORT_ROWS_MAX) {
        const batch = ids.slice(i, i + IMPORT_ROWS_MAX);
        const job = await client.importRows(
          {
            action_type: "update",
            match_by: "id",
            groups: names as string[],
            data: batch.map((id) =>
              updateRow(id, runtime.now(), Object.fromEntries((names as string[]).map((n) => [n, flag]))),
            ),
          },
          "write",
        );
        if (!job.ok) return failed(job.error);
        if (job.value.status !== "complete")
          return failed({
            code: "vendor_unavailable",
            message: `Kindful import ${String(job.value.id)} ended ${job.value.status}; ${refused.length + batch.length} of ${ids.length} contact(s) may not have ${op.kind === "add_list_members" ? "joined" : "left"} the group.`,
          });
        const rows = new Map((job.value.results ?? []).map((r) => [r.row, r]));
        batch.forEach((id, k) => {
          const r = rows.get(k);
          if (!r || r.contact_id === null || r.status === "error" || r.status === "ignored")
            refused.push(`${id} (${r?.error ?? r?.status ?? "no result for the row"})`);
          // An update that made a contact matched none: the contact meant is gone, and its
          // membership did not change (the new contact Kindful made is none of Concord's).
          else if (r.status === "created") refused.push(`${id} (gone: Kindful made contact ${r.contact_id})`);
          // Only an update Kindful names as done changed the membership.
          else if (r.status !== "updated") refused.push(`${id} (answered "${r.status}")`);
        });
      }
      if (refused.length > 0)
        return {
          status: "failed",
          code: "validation_failed",
          message: `Kindful did not ${op.kind === "add_list_members" ? "add" : "remove"} ${refused.length} of ${ids.length} contact(s): ${refused.slice(0, 10).join(", ")}${refused.length > 10 ? ", …" : ""}; the others were changed.`,
        };
      return succeeded();
    }
    case "upsert_contacts":
      return unsupported(
        "Concord creates Kindful contacts one by one (create_contact), after an address lookup.",
      );
    case "create_list":
    case "rename_list":
    case "delete_list":
      return unsupported(
        "Concord follows Kindful's groups and never changes them; groups are managed in Kindful.",
      );
    case "remove_contact":
      return unsupported("Concord never deletes CRM records; a contact ends in Kindful itself.");
    case "erase_contact":
      return unsupported(
        "Kindful's API has no contact deletion: delete the contact in Kindful (Contacts → the contact → Delete). Concord keeps the suppression.",
      );
    case "request_resubscribe":
      return {
        status: "pending_contact_action",
        code: "consent_requires_contact_action",
        message: "Kindful sends no confirmation email: the person must opt in again themselves.",
      };
  }
}
