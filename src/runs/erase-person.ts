/**
 * Erasure (DESIGN.md §2 rule 8; `concord erase`): a person who asked to be forgotten is deleted in
 * every linked system as far as each allows, then in Concord — contact, addresses, snapshots,
 * baselines, ledger evidence (the chain still verifies), operation payloads — while a keyed hash of
 * each of their addresses stays in the suppression list, so no system's record brings them back.
 *
 * The suppression comes first, so nothing re-imports the person while the systems are worked
 * through. Concord's own copy goes last, once every system erased or kept the record: a system that
 * failed keeps its link, and running the erasure again retries it.
 */
import { domainToASCII, domainToUnicode } from "node:url";
import { sql, type RawBuilder } from "kysely";
import { normaliseEmail } from "../core/identity/normalise-email";
import type { ConcordConfig } from "../config/concord-config";
import type { OpenedConnection } from "../connections/open-connection";
import type { OperationOutcome } from "../connectors/connector";
import { eraseEvidence } from "../ledger/consent-ledger";
import { readSnapshotRecord } from "../pipeline/stored-snapshot";
import { addressHash, suppressionSalt } from "../pipeline/suppression-hash";
import { newId } from "../store/new-id";
import type { StoreSession } from "../store/ports";
import { canonicalJson } from "../core/canonical-json";
import { sha256Hex } from "../pipeline/content-hash";
import { errorMessage } from "../core/error-code";

export type ErasureDeps = {
  store: StoreSession;
  config: ConcordConfig;
  connections: ReadonlyMap<string, OpenedConnection>;
  now: () => Date;
};

/** What happened to the person's record in one system. */
export type SystemErasure = {
  connection_id: string;
  system: string;
  external_id: string;
  /**
   * `erased`: the system deleted it (its message says what the system still keeps); `kept`: the
   * config keeps this system's records (`compliance.erasure.keep_records_in`); `already_gone`: the
   * system no longer had it; `failed`: it could not be deleted now (run the erasure again);
   * `planned`: a dry run.
   */
  status: "erased" | "kept" | "already_gone" | "failed" | "planned";
  message: string;
};

export type ErasureReport = {
  erasure_id: string | null;
  dry_run: boolean;
  /** `completed`: every system erased or kept the record and Concord erased its copy. */
  status: "completed" | "incomplete" | "planned";
  /** Concord's contacts of the address (ids only). */
  contact_ids: string[];
  /** How many addresses (the person's, all of them) joined the suppression list. */
  addresses_suppressed: number;
  systems: SystemErasure[];
  /** What Concord erased of its own copy (counts), once every system is done. */
  erased_in_concord?: {
    contacts: number;
    evidence_blanked: number;
    snapshots: number;
    operations_scrubbed: number;
  };
};

export type ErasureRequest = {
  email: string;
  /** Who recorded the request (an operator's name or "api"). */
  requested_by: string;
  /** The person's request: a ticket, a letter's reference. */
  reference?: string;
  dry_run?: boolean;
  /**
   * Several contacts hold the address (two people sharing a mailbox, a person and their
   * organisation, duplicates of one person): every one of them is erased only when the request says
   * so, after a preview. Without it such an erasure is refused (`several_holders`).
   */
  all_holders?: boolean;
};

export type EraseResult =
  | { ok: true; report: ErasureReport }
  | { ok: false; code: "invalid_email"; message: string }
  | { ok: false; code: "several_holders"; message: string; contact_ids: string[] };

/** Erases the person who holds `email` (see the module comment). Never throws for vendor trouble. */
export async function erasePerson(deps: ErasureDeps, request: ErasureRequest): Promise<EraseResult> {
  const email = normaliseEmail(request.email);
  if (!email.ok)
    return {
      ok: false,
      code: "invalid_email",
      message: `"${request.email.slice(0, 100)}" is not an email address Concord can look up (${email.reason}); expected the address the person asked to be erased, such as ada@example.org`,
    };
  const { store } = deps;
  const contacts = await store.contacts.findByMatchKey(email.match_key);
  const contactIds = contacts.map((c) => c.id).sort();
  // Every address the person had is suppressed, not only the one they wrote from.
  const keys = new Set([email.match_key]);
  // And every form of them Concord may have written into its run history (as held, as matched).
  const addresses = new Set([email.address, email.match_key]);
  for (const c of contacts) if (c.primary_email !== null) addresses.add(c.primary_email);
  // What the erasure record keeps (the operator's reference, each system's message) names neither.
  const personal = new Set(addresses);
  for (const c of contacts)
    for (const name of [c.given_name, c.family_name, c.organization_name])
      if (name !== null && name.trim().length > 1) personal.add(name.trim());
  for (const id of contactIds)
    for (const e of await store.contacts.emails(id)) {
      keys.add(e.match_key);
      addresses.add(e.email);
      addresses.add(e.match_key);
    }
  const linked = (await Promise.all(contactIds.map((id) => store.links.forContact(id)))).flat();
  // And every address their records hold (a CRM record's other addresses, which Concord keeps only
  // in the record's snapshot): one of them made primary there later would otherwise bring the
  // record back as someone new.
  for (const l of linked)
    for (const e of readSnapshotRecord((await store.snapshots.get(l.connection_id, l.external_id))?.payload)
      ?.emails ?? []) {
      const held = normaliseEmail(e.address);
      if (!held.ok) continue;
      keys.add(held.match_key);
      addresses.add(held.address);
      addresses.add(held.match_key);
    }
  // A platform record at the address that no contact holds (it could be several people: in
  // review) is at the person's address all the same: it is erased with the rest.
  const links = [
    ...linked,
    ...(await unlinkedRecordsAt(store, keys)).filter(
      (u) => !linked.some((l) => l.connection_id === u.connection_id && l.external_id === u.external_id),
    ),
  ];
  const keep = new Set(deps.config.compliance.erasure.keep_records_in);
  const dryRun = request.dry_run === true;

  const systems: SystemErasure[] = [];
  const report: ErasureReport = {
    erasure_id: null,
    dry_run: dryRun,
    status: dryRun ? "planned" : "incomplete",
    contact_ids: contactIds,
    addresses_suppressed: keys.size,
    systems,
  };
  if (dryRun) {
    for (const link of links) {
      const opened = deps.connections.get(link.connection_id);
      systems.push({
        connection_id: link.connection_id,
        system: opened?.connection.system ?? "unknown",
        external_id: link.external_id,
        status: keep.has(link.connection_id) ? "kept" : "planned",
        message: keep.has(link.connection_id)
          ? "Kept: the config keeps this system's records (compliance.erasure.keep_records_in)."
          : `Would be deleted (${opened?.manifest.label ?? link.connection_id}).`,
      });
    }
    return { ok: true, report };
  }

  if (contactIds.length > 1 && request.all_holders !== true)
    return {
      ok: false,
      code: "several_holders",
      contact_ids: contactIds,
      message: `${contactIds.length} contacts hold this address (${contactIds.join(", ")}): an erasure deletes every one of them in every linked system, and cannot be undone. Nothing was erased. Preview it (dry run) and, if each of them is the person who asked, send it again with all_holders (concord erase --all-holders).`,
    };
  const salt = await suppressionSalt(store, true);
  if (salt === undefined) throw new Error("the suppression salt could not be stored");
  const hashes = [...keys].map((k) => addressHash(salt, k)).sort();
  const erasureId = newId("era", deps.now());
  report.erasure_id = erasureId;
  await store.transaction(async (tx) => {
    for (const hash of hashes)
      await tx.suppressions.add({ address_hash: hash, reason: "erasure", contact_id: contactIds[0] ?? null });
    // Sign-ups hold the address (waiting or done): they go now, and a waiting link stops working.
    await tx.db
      .deleteFrom("signups")
      .where("match_key", "in", [...keys])
      .execute();
    if (contactIds.length > 0)
      await tx.db.deleteFrom("signups").where("contact_id", "in", contactIds).execute();
    await tx.db
      .insertInto("erasures")
      .values({
        id: erasureId,
        address_hashes_json: JSON.stringify(hashes),
        contact_ids_json: JSON.stringify(contactIds),
        requested_by: request.requested_by.slice(0, 200),
        reference:
          request.reference === undefined ? null : withoutPerson(request.reference, personal).slice(0, 500),
        status: "incomplete",
        systems_json: "[]",
        requested_at: deps.now().toISOString(),
        completed_at: null,
      })
      .execute();
  });

  for (const link of links) systems.push(await eraseIn(deps, link, keep));

  if (systems.every((s) => s.status !== "failed")) {
    report.erased_in_concord = await eraseConcordCopy(store, erasureId, contactIds, links, [...addresses]);
    report.status = "completed";
  }
  await store.db
    .updateTable("erasures")
    .set({
      status: report.status,
      systems_json: JSON.stringify(
        systems.map((s) => ({ ...s, message: withoutPerson(s.message, personal) })),
      ),
      completed_at: report.status === "completed" ? deps.now().toISOString() : null,
    })
    .where("id", "=", erasureId)
    .execute();
  return { ok: true, report };
}

async function eraseIn(
  deps: ErasureDeps,
  link: { connection_id: string; external_id: string },
  keep: ReadonlySet<string>,
): Promise<SystemErasure> {
  const opened = deps.connections.get(link.connection_id);
  const base = {
    connection_id: link.connection_id,
    system: opened?.connection.system ?? "unknown",
    external_id: link.external_id,
  };
  if (keep.has(link.connection_id))
    return {
      ...base,
      status: "kept",
      message:
        "Kept: the config keeps this system's records (compliance.erasure.keep_records_in). Its record of the person stays there; Concord refuses it from now on.",
    };
  if (!opened)
    return {
      ...base,
      status: "failed",
      message: `Connection ${link.connection_id} is not in the config: the record there could not be deleted. Add the connection back, or erase it in that system by hand.`,
    };
  const opId = `op_erase_${sha256Hex(canonicalJson({ erase: link })).slice(0, 24)}`;
  let outcome: OperationOutcome | undefined;
  try {
    [outcome] = await opened
      .session()
      .apply([{ kind: "erase_contact", op_id: opId, external_id: link.external_id }]);
  } catch (error) {
    outcome = {
      op_id: opId,
      status: "failed",
      code: "network_error",
      message: errorMessage(error),
    };
  }
  await opened.settled();
  if (outcome?.status === "succeeded")
    return {
      ...base,
      status: outcome.code === "already_applied" ? "already_gone" : "erased",
      message:
        outcome.code === "already_applied"
          ? `${opened.manifest.label} no longer had the record.`
          : (outcome.message ?? `Deleted in ${opened.manifest.label}.`),
    };
  return {
    ...base,
    status: "failed",
    message: `${opened.manifest.label} did not delete the record (${outcome?.code ?? "no answer"}${outcome?.message ? `: ${outcome.message}` : ""}). Run the erasure again once it can.`,
  };
}

/**
 * Records at one of `keys` that no contact is linked to: a platform record that could be several
 * people waits in the review queue (`ambiguous_identity`, with the address it holds; dismissed or
 * not), and any record read but never linked (a contact uploaded straight into a platform) leaves
 * its snapshot. Both hold the person's data in Concord and in the platform.
 */
async function unlinkedRecordsAt(
  store: StoreSession,
  keys: ReadonlySet<string>,
): Promise<{ connection_id: string; external_id: string }[]> {
  const found = new Map<string, { connection_id: string; external_id: string }>();
  const add = (connection_id: string, external_id: string) =>
    found.set(`${connection_id}\u0000${external_id}`, { connection_id, external_id });
  const atKey = (email: unknown): boolean => {
    const key = typeof email === "string" ? normaliseEmail(email) : undefined;
    return key?.ok === true && keys.has(key.match_key);
  };
  const review = await store.db
    .selectFrom("review_items")
    .select(["connection_id", "external_id", "detail_json"])
    .where("kind", "=", "ambiguous_identity")
    .where("contact_id", "is", null)
    .execute();
  for (const row of review) {
    if (row.connection_id === null || row.external_id === null) continue;
    if (atKey(parseJson<{ email?: unknown }>(row.detail_json)?.email))
      add(row.connection_id, row.external_id);
  }
  // A pass over the snapshots no link points to, narrowed by text, then read: a record is at the
  // address when one of its own emails is, not when a note quotes it.
  const payload = sql.ref("record_snapshots.payload_json");
  const contains = (needle: string) => lowerContains(store, payload, needle);
  const needles = searchNeedles([...keys].flatMap(domainForms));
  const unlinked = await store.db
    .selectFrom("record_snapshots")
    .select(["connection_id", "external_id", "payload_json"])
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("links")
            .select("links.contact_id")
            .whereRef("links.connection_id", "=", "record_snapshots.connection_id")
            .whereRef("links.external_id", "=", "record_snapshots.external_id"),
        ),
      ),
    )
    .where((eb) => eb.or(needles.map(contains)))
    .execute();
  for (const row of unlinked) {
    const emails = parseJson<{ emails?: unknown }>(row.payload_json)?.emails;
    if (Array.isArray(emails) && emails.some((e: { address?: unknown } | null) => atKey(e?.address)))
      add(row.connection_id, row.external_id);
  }
  return [...found.values()];
}

/**
 * An address in each form its domain may be written in: the match key's (ASCII, IDNA) and the
 * Unicode one a system may show (`bücher.example` and `xn--bcher-kva.example`).
 */
function domainForms(address: string): string[] {
  const at = address.lastIndexOf("@");
  if (at < 0) return [address];
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  const forms = new Set([address]);
  for (const form of [domainToUnicode(domain), domainToASCII(domain)])
    if (form !== "") forms.add(`${local}@${form}`);
  return [...forms];
}

/**
 * What a text search narrows rows by, for each lower-cased text: SQLite's lower() folds ASCII
 * letters only (and PostgreSQL's depends on the database's locale), so a text with other letters
 * is cut to its longest ASCII run, which matches in any case. The rows found are checked in full
 * by the caller.
 */
function searchNeedles(texts: readonly string[]): string[] {
  const needles = new Set<string>();
  for (const text of texts) {
    const lowered = text.toLowerCase();
    // eslint-disable-next-line no-control-regex
    const runs = lowered.split(/[^\x00-\x7f]+/).sort((a, b) => b.length - a.length);
    const longest = runs[0] ?? "";
    needles.add(longest === lowered || longest.length < 4 ? lowered : longest);
  }
  return [...needles];
}

/** Whether a text column, lower-cased, contains `needle` (lower case already). */
const lowerContains = (store: StoreSession, column: RawBuilder<unknown>, needle: string) =>
  store.dialect === "postgres"
    ? sql<boolean>`strpos(lower(${column}), ${needle}) > 0`
    : sql<boolean>`instr(lower(${column}), ${needle}) > 0`;

function parseJson<T>(text: string): Partial<T> | undefined {
  try {
    const value = JSON.parse(text) as Partial<T> | null;
    return value !== null && typeof value === "object" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Concord's own copy: everything personal about the contacts, in one transaction. */
async function eraseConcordCopy(
  store: StoreSession,
  erasureId: string,
  contactIds: readonly string[],
  links: readonly { connection_id: string; external_id: string }[],
  addresses: readonly string[],
): Promise<NonNullable<ErasureReport["erased_in_concord"]>> {
  return store.transaction(async (tx) => {
    let contacts = 0;
    let evidence = 0;
    let snapshots = 0;
    let scrubbed = 0;
    for (const link of links) {
      await tx.db
        .deleteFrom("review_items")
        .where("connection_id", "=", link.connection_id)
        .where("external_id", "=", link.external_id)
        .execute();
      const r = await tx.db
        .deleteFrom("record_snapshots")
        .where("connection_id", "=", link.connection_id)
        .where("external_id", "=", link.external_id)
        .executeTakeFirst();
      snapshots += Number(r.numDeletedRows);
      await tx.links.remove(link.connection_id, link.external_id);
    }
    for (const id of contactIds) {
      evidence += (await eraseEvidence(tx, id, { erasure_id: erasureId })).erased;
      if (await tx.contacts.erase(id)) contacts += 1;
      await tx.db.deleteFrom("baselines").where("contact_id", "=", id).execute();
      await tx.db.deleteFrom("platform_rejections").where("contact_id", "=", id).execute();
      await tx.db.deleteFrom("plan_marks").where("contact_id", "=", id).execute();
      await tx.db.deleteFrom("review_items").where("contact_id", "=", id).execute();
      // Operations name the person's address and fields: the person's own lose their payload; a
      // bulk one loses the person's item.
      const own = await tx.db
        .updateTable("operations")
        .set({ payload_json: canonicalJson({ erased: true }) })
        .where("contact_id", "=", id)
        .executeTakeFirst();
      scrubbed += Number(own.numUpdatedRows);
      const ownIds = tx.db.selectFrom("operations").select("id").where("contact_id", "=", id);
      await tx.db
        .updateTable("outcomes")
        .set({ detail_json: "{}" })
        .where("operation_id", "in", ownIds)
        .execute();
      const bulk = await tx.db
        .selectFrom("operations")
        .select(["id", "payload_json"])
        .where("contact_id", "is", null)
        .where("payload_json", "like", `%"${id}"%`)
        .execute();
      for (const op of bulk) {
        // What the system answered for the person's item (a refusal quotes the address) goes too.
        await scrubAddresses(tx, "outcomes", "detail_json", addresses, ["operation_id", op.id]);
        const payload = JSON.parse(op.payload_json) as {
          contact_ids?: string[];
          operation?: { items?: { item_id?: string }[]; external_ids?: string[] };
        };
        const operation = payload.operation;
        const contactIds = payload.contact_ids ?? [];
        const at = contactIds.indexOf(id);
        if (operation === undefined) continue;
        // A list change names each contact's platform id at the contact's place (a Mailchimp member
        // id is derived from the address); an import names the person in an item of their own.
        if (Array.isArray(operation.external_ids) && at >= 0)
          operation.external_ids = operation.external_ids.filter((_, i) => i !== at);
        if (Array.isArray(operation.items)) operation.items = operation.items.filter((i) => i.item_id !== id);
        payload.contact_ids = contactIds.filter((c) => c !== id);
        await tx.db
          .updateTable("operations")
          .set({ payload_json: JSON.stringify(payload) })
          .where("id", "=", op.id)
          .execute();
        scrubbed += 1;
      }
    }
    // Run history quotes addresses: a reconciliation's differences, a plan's reasons (an address
    // change names both). Each occurrence becomes "[erased]"; the rest of the history stays.
    await scrubAddresses(tx, "runs", "summary_json", addresses);
    await scrubAddresses(tx, "plans", "plan_json", addresses);
    // A webhook delivery that announced an opt-out keeps the address it was for until its retention ends.
    await scrubAddresses(tx, "webhook_inbox", "changes_json", addresses);
    return { contacts, evidence_blanked: evidence, snapshots, operations_scrubbed: scrubbed };
  });
}

/**
 * `text` with each of the person's addresses and names, in any case and as whole words, read
 * `[erased]`: what the erasure's own record may keep of what an operator or a system wrote.
 */
function withoutPerson(text: string, personal: ReadonlySet<string>): string {
  let out = text;
  // Longest first, so an address goes whole before a name inside it is matched.
  for (const part of [...personal].sort((a, b) => b.length - a.length)) {
    if (part === "") continue;
    const escaped = part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    out = out.replace(new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "giu"), "[erased]");
  }
  return out;
}

/**
 * Replaces each of `addresses`, in any case, with "[erased]" in a text column (JSON, where an
 * address is a plain string: addresses hold no quote or backslash), in the rows that contain one. A
 * pass over the table: erasures are rare and run beside no pair's run.
 */
async function scrubAddresses(
  tx: StoreSession,
  table: "runs" | "plans" | "outcomes" | "webhook_inbox",
  column: "summary_json" | "plan_json" | "detail_json" | "changes_json",
  addresses: readonly string[],
  only?: [column: "operation_id", value: string],
): Promise<void> {
  // Each system quotes the address in its own spelling: matched and replaced in any case, with
  // its domain in either form.
  const lowered = [...new Set(addresses.flatMap(domainForms).map((a) => a.toLowerCase()))].filter(
    (a) => a !== "" && !/["\\]/.test(a),
  );
  if (lowered.length === 0) return;
  const target = sql.ref(`${table}.${column}`);
  const contains = (needle: string) => lowerContains(tx, target, needle);
  const keys = table === "outcomes" ? ["operation_id", "attempt"] : ["id"];
  const rows = await sql<Record<string, string | number> & { text: string }>`select ${sql.join(
    keys.map((k) => sql.ref(k)),
  )}, ${target} as text from ${sql.table(table)} where (${sql.join(searchNeedles(lowered).map(contains), sql` or `)})${
    only === undefined ? sql`` : sql` and ${sql.ref(only[0])} = ${only[1]}`
  }`.execute(tx.db);
  const pattern = new RegExp(
    lowered
      .sort((a, b) => b.length - a.length)
      .map((a) => a.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join("|"),
    "giu",
  );
  for (const row of rows.rows)
    await sql`update ${sql.table(table)} set ${sql.ref(column)} = ${row.text.replace(pattern, "[erased]")} where ${sql.join(
      keys.map((k) => sql`${sql.ref(k)} = ${row[k]}`),
      sql` and `,
    )}`.execute(tx.db);
}
