// The Constant Contact connector against the emulator over real HTTP on 127.0.0.1.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Checkpoint, ConnectorOperation, ConnectorSession, ReadPage } from "../connector";
import { constantContactManifest } from "./manifest";
import { CONCORD_REASON_PREFIX } from "./mapping";
import { startTestAccount, type TestAccount } from "../../../test/support/connectors/constant-contact";

let account: TestAccount;
let session: ConnectorSession;

beforeEach(async () => {
  account = await startTestAccount({ activityPollsToComplete: 2 });
  session = constantContactManifest.connect(account.settings, account.runtime);
});
afterEach(async () => {
  await account.close();
});

async function readAll(
  s: ConnectorSession,
  checkpoint: Checkpoint | null,
  full = false,
): Promise<ReadPage[]> {
  const pages: ReadPage[] = [];
  for await (const page of s.read(checkpoint, { full })) {
    if (!page.ok) throw new Error(`${page.error.code}: ${page.error.message}`);
    pages.push(page.value);
  }
  return pages;
}

const lastCheckpoint = (pages: ReadPage[]): Checkpoint => pages[pages.length - 1]!.checkpoint;
const contactById = async (id: string): Promise<Record<string, any>> => {
  const got = await fetch(
    `${account.baseUrl}/v3/contacts/${id}?include=custom_fields,list_memberships,phone_numbers,street_addresses`,
    {
      headers: { authorization: `Bearer ${account.credentials.access_token}` },
    },
  );
  return (await got.json()) as Record<string, any>;
};
let n = 0;
const op = (label: string): string => `op_${label}_${n++}`;

/** The person's opt-out, phoned in to Raiser's Edge NXT, for a seeded contact. */
const phonedOptOut = (contact: {
  contact_id: string;
  email: string;
}): Extract<ConnectorOperation, { kind: "record_opt_out" }> => ({
  kind: "record_opt_out",
  op_id: op("out"),
  external_id: contact.contact_id,
  email: contact.email,
  scope: { kind: "account" },
  initiated_by: "contact",
  occurred_at: "2026-06-01T11:00:00.000Z",
  origin: { system: "blackbaud-renxt", connection: "re-main", mechanism: "phone_request" },
});

/** Deletes a contact in the account, as a user of Constant Contact does. */
const deleteInAccount = (id: string): Promise<Response> =>
  fetch(`${account.baseUrl}/v3/contacts/${id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${account.credentials.access_token}` },
  });

async function seedPeople(count: number, extra: Record<string, unknown> = {}) {
  const seeded = await account.seed({
    lists: [{ name: `List ${n++}` }],
    contacts: Array.from({ length: count }, (_, i) => ({
      email_address: { address: `person${n}-${i}@example.org`, permission_to_send: "implicit" },
      first_name: `First${i}`,
      last_name: `Last${i}`,
      job_title: "Volunteer",
      ...extra,
    })),
  });
  return seeded;
}

describe("check", () => {
  it("succeeds with the issued token", async () => {
    const r = await session.check();
    expect(r.ok, JSON.stringify(r)).toBe(true);
  });

  it("answers auth_invalid when the token and the refresh token are refused", async () => {
    const bad = {
      ...account.settings,
      credentials: {
        get: async () => ({
          client_id: "x",
          client_secret: "y",
          access_token: "nope",
          refresh_token: "nope",
        }),
        save: async () => {},
      },
    };
    const r = await constantContactManifest.connect(bad, account.runtime).check();
    expect(r).toMatchObject({ ok: false, error: { code: "auth_invalid" } });
  });

  it("refreshes an expired access token and saves the rotated refresh token", async () => {
    const before = account.credentials.refresh_token;
    account.credentials.access_token = "expired-token";
    const r = await session.check();
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(account.credentials.access_token).not.toBe("expired-token");
    expect(account.credentials.refresh_token).toBeDefined();
    expect(account.credentials.refresh_token).not.toBe(before);
  });
});

describe("read", () => {
  it("reads every contact with lists and fields, and reports consent as observed", async () => {
    const seeded = await account.seed({
      lists: [{ name: "Newsletter" }],
      contacts: [
        {
          email_address: { address: "ada@example.org", permission_to_send: "implicit" },
          first_name: "Ada",
          last_name: "L",
          job_title: "Engineer",
        },
        {
          email_address: { address: "bob@example.org", permission_to_send: "pending_confirmation" },
          first_name: "Bob",
        },
      ],
    });
    const pages = await readAll(session, null);
    const records = pages.flatMap((p) => p.records);
    expect(records).toHaveLength(2);
    const ada = records.find((r) => r.emails[0]?.address === "ada@example.org")!;
    expect(ada).toMatchObject({
      external_id: seeded.contacts[0]!.contact_id,
      first_name: "Ada",
      fields: { job_title: "Engineer" },
      consent_state: [expect.objectContaining({ status: "opted_in", label: "permission to send: implicit" })],
    });
    const bob = records.find((r) => r.emails[0]?.address === "bob@example.org")!;
    expect(bob.consent_state).toEqual([
      expect.objectContaining({ status: "pending", label: "permission to send: pending_confirmation" }),
    ]);
    const consent = pages.flatMap((p) => p.consent);
    // pending_confirmation is no consent fact: only Ada's implied opt-in is reported.
    expect(consent).toHaveLength(1);
    expect(consent[0]).toMatchObject({
      kind: "opt_in",
      basis: "implied",
      actor: { kind: "account" },
      scope: { kind: "account" },
    });
  });

  it("pages through _links.next and moves the checkpoint only with the last page", async () => {
    await seedPeople(5);
    const small = constantContactManifest.connect({ ...account.settings, page_size: 2 }, account.runtime);
    const first = await readAll(small, null);
    expect(first.length).toBe(3);
    expect(first.flatMap((p) => p.records)).toHaveLength(5);
    expect(first[0]!.checkpoint.value).toBe("1970-01-01T00:00:00.000Z");
    expect(Date.parse(lastCheckpoint(first).value)).toBeGreaterThan(Date.parse("2026-01-01"));
  });

  it("reads a person's own unsubscribe incrementally as a contact opt-out, from every path", async () => {
    const untouched = (await seedPeople(1)).contacts[0]!;
    await account.runtime.sleep(10 * 60_000); // later than the overlap window
    const seeded = await seedPeople(3);
    const start = lastCheckpoint(await readAll(session, null));
    await account.runtime.sleep(10 * 60_000); // ten virtual minutes later, past the overlap
    const [a, b, c] = seeded.contacts;
    await account.act("unsubscribe", a!.email);
    await account.act("one_click_unsubscribe", b!.email);
    await account.act("spam_complaint", c!.email);
    const pages = await readAll(session, start);
    const records = pages.flatMap((p) => p.records);
    expect(new Set(records.map((r) => r.external_id)).size).toBe(records.length);
    const optOuts = pages.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
    expect(optOuts.map((o) => o.external_id).sort()).toEqual(seeded.contacts.map((x) => x.contact_id).sort());
    for (const o of optOuts) expect(o.actor).toEqual({ kind: "contact" });
    // The contact report ties the footer link and the one-click header to the campaign (it cannot
    // tell them apart); a spam complaint leaves no trace on the contact, so it stays global (QUIRKS.md).
    const how = (id: string) => optOuts.find((o) => o.external_id === id);
    expect(how(a!.contact_id)).toMatchObject({ mechanism: "unsubscribe_link", scope: { kind: "account" } });
    expect(how(b!.contact_id)).toMatchObject({ mechanism: "unsubscribe_link", scope: { kind: "account" } });
    expect(how(c!.contact_id)).toMatchObject({ mechanism: "unknown", scope: { kind: "global" } });
    expect(how(c!.contact_id)?.evidence.reason).toMatch(/spam complaint/);
    expect(records.map((r) => r.external_id)).not.toContain(untouched.contact_id);
    // Reading again from the new checkpoint re-reads only what lies inside the overlap window.
    await account.runtime.sleep(10 * 60_000);
    const again = await readAll(session, lastCheckpoint(pages));
    expect(
      again
        .flatMap((p) => p.records)
        .map((r) => r.external_id)
        .sort(),
    ).toEqual(seeded.contacts.map((x) => x.contact_id).sort());
  });

  it("a contact report this connection may not read stops no read: the opt-out is kept, its kind said unknown", async () => {
    const seeded = await seedPeople(3);
    const start = lastCheckpoint(await readAll(session, null));
    await account.runtime.sleep(10 * 60_000);
    const [a, b, c] = seeded.contacts;
    for (const x of [a, b, c]) await account.act("spam_complaint", x!.email);
    // Every contact report refused, as for a token without the user's privileges (403).
    await account.control("POST", "/__emulator/faults", {
      status: 403,
      count: 100,
      path_prefix: "/v3/reports/contact_reports/",
      body: [{ error_key: "unauthorized", error_message: "lack the necessary user privileges" }],
    });
    const pages = await readAll(session, start);
    const optOuts = pages.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
    expect(optOuts.map((o) => o.external_id).sort()).toEqual(seeded.contacts.map((x) => x.contact_id).sort());
    for (const o of optOuts) {
      expect(o).toMatchObject({ actor: { kind: "contact" }, mechanism: "unknown" });
      expect(o.evidence.reason).toMatch(/its contact report could not be read \(forbidden: /);
    }
    // The read completed: its checkpoint moved on.
    expect(Date.parse(lastCheckpoint(pages).value)).toBeGreaterThan(Date.parse(start.value));
  });

  it("a contact report down in passing holds back only the opt-outs that need it: the others are read, and the held ones by the next read", async () => {
    const seeded = await seedPeople(3);
    const start = lastCheckpoint(await readAll(session, null));
    await account.runtime.sleep(10 * 60_000);
    const [a, b, c] = seeded.contacts;
    // A and B complain (only the contact report tells a complaint from an unsubscribe link); the
    // account unsubscribes C, which needs no report.
    await account.act("spam_complaint", a!.email);
    await account.act("spam_complaint", b!.email);
    await account.control("POST", "/__emulator/act", { as: "admin", action: "unsubscribe", email: c!.email });
    // The reports service is down (more failures than the client retries).
    await account.control("POST", "/__emulator/faults", {
      status: 503,
      count: 100,
      path_prefix: "/v3/reports/contact_reports/",
    });
    const pages: ReadPage[] = [];
    let failure: { code: string; message: string } | undefined;
    for await (const page of session.read(start, {})) {
      if (page.ok) pages.push(page.value);
      else failure = page.error;
    }
    // C's opt-out is read now; A and B wait, record and consent, and the read says why.
    expect(
      pages
        .flatMap((p) => p.consent)
        .filter((o) => o.kind === "opt_out")
        .map((o) => o.external_id),
    ).toEqual([c!.contact_id]);
    expect(pages.flatMap((p) => p.records).map((r) => r.external_id)).not.toContain(a!.contact_id);
    expect(failure?.code).toBe("vendor_unavailable");
    expect(failure?.message).toMatch(/^2 contact\(s\) who opted out wait for the contact report/);
    // The checkpoint stays where the read began: the next read, with the report back, reads them.
    expect(lastCheckpoint(pages).value).toBe(start.value);
    await account.control("DELETE", "/__emulator/faults");
    const next = await readAll(session, lastCheckpoint(pages));
    const optOuts = next.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
    for (const x of [a, b])
      expect(optOuts.find((o) => o.external_id === x!.contact_id)).toMatchObject({
        mechanism: "unknown",
        scope: { kind: "global" },
      });
  });

  it("a contact that opts out behind the cursor of a long read is read by the next: the checkpoint never passes the read's start", async () => {
    const [a, b] = (await seedPeople(2)).contacts;
    const small = constantContactManifest.connect({ ...account.settings, page_size: 1 }, account.runtime);
    const pages: ReadPage[] = [];
    for await (const page of small.read(null, { full: true })) {
      if (!page.ok) throw new Error(page.error.message);
      pages.push(page.value);
      // A long read: after A's page, A unsubscribes by the footer link, and later B is edited.
      if (pages.length === 1) {
        expect(page.value.records.map((r) => r.external_id)).toEqual([a!.contact_id]);
        await account.runtime.sleep(10 * 60_000);
        await account.act("unsubscribe", a!.email);
        await account.runtime.sleep(10 * 60_000);
        await account.control("POST", "/__emulator/act", {
          as: "admin",
          action: "update",
          email: b!.email,
          fields: { job_title: "Trustee" },
        });
      }
    }
    expect(pages.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out")).toEqual([]);
    await account.runtime.sleep(60_000);
    const next = await readAll(small, lastCheckpoint(pages));
    const optOuts = next.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
    expect(optOuts.map((o) => o.external_id)).toEqual([a!.contact_id]);
  });

  it("marks deleted contacts deleted", async () => {
    const seeded = await seedPeople(1);
    await deleteInAccount(seeded.contacts[0]!.contact_id);
    const records = (await readAll(session, null)).flatMap((p) => p.records);
    expect(records[0]).toMatchObject({ external_id: seeded.contacts[0]!.contact_id, deleted: true });
  });

  it("gets records by id and lists lists", async () => {
    const seeded = await seedPeople(2);
    const got = await session.get([seeded.contacts[1]!.contact_id, "00000000-0000-4000-8000-000000000000"]);
    expect(got.ok && got.value.records.map((r) => r.external_id)).toEqual([seeded.contacts[1]!.contact_id]);
    const lists = await session.lists();
    expect(lists.ok && lists.value.map((l) => l.external_id)).toEqual(seeded.lists.map((l) => l.list_id));
  });
});

describe("apply: consent", () => {
  it("records an opt-out by GET + whole PUT, keeps every other field, and reads it back as our own", async () => {
    const seeded = await seedPeople(1);
    const id = seeded.contacts[0]!.contact_id;
    const optOut: ConnectorOperation = { ...phonedOptOut(seeded.contacts[0]!), reason: "Phoned the office" };
    expect(await session.apply([optOut])).toEqual([
      { op_id: optOut.op_id, status: "succeeded", external_id: id },
    ]);
    const stored = await contactById(id);
    expect(stored.first_name).toBe("First0");
    expect(stored.job_title).toBe("Volunteer");
    // The person's own request is written as theirs: the account cannot re-add them (rule 4).
    expect(stored.email_address).toMatchObject({
      permission_to_send: "unsubscribed",
      opt_out_source: "Contact",
    });
    expect(stored.email_address.opt_out_reason).toMatch(
      /^Concord: the person's request recorded in blackbaud-renxt/,
    );
    const again = await session.apply([{ ...optOut, op_id: op("out") }]);
    expect(again[0]).toMatchObject({ status: "succeeded", code: "already_applied" });
    const consent = (await readAll(session, null)).flatMap((p) => p.consent);
    expect(consent[0]).toMatchObject({ kind: "opt_out", actor: { kind: "contact" }, mechanism: "sync" });
    expect(consent[0]!.evidence.reason?.startsWith(CONCORD_REASON_PREFIX)).toBe(true);
  });

  it("the person's opt-out written to a deleted contact (with the account's source, the only way) is never undone as the account's", async () => {
    const seeded = await seedPeople(1);
    const id = seeded.contacts[0]!.contact_id;
    await deleteInAccount(id);
    const [out] = await session.apply([phonedOptOut(seeded.contacts[0]!)]);
    expect(out).toMatchObject({ status: "succeeded" });
    const before = (await account.requests()).length;
    const [optIn] = await session.apply([
      {
        kind: "record_opt_in",
        op_id: op("in"),
        external_id: id,
        scope: { kind: "account" },
        occurred_at: "2026-06-02T12:00:00.000Z",
        origin: { system: "growthzone", connection: "gz", mechanism: "admin_edit", actor: "account" },
      },
    ]);
    expect(optIn).toMatchObject({ status: "failed", code: "consent_requires_contact_action" });
    // It only read whose opt-out it was: nothing written.
    expect((await account.requests()).slice(before).filter((r) => r.method !== "GET")).toEqual([]);
  });

  it("records a topic's opt-out where a list stands for the topic by taking the person out of that list only", async () => {
    const seeded = await seedPeople(1);
    const id = seeded.contacts[0]!.contact_id;
    const [news, events] = (await account.seed({ lists: [{ name: "News topic" }, { name: "Events" }] }))
      .lists;
    await account.control("POST", "/__emulator/act", {
      as: "admin",
      action: "add_to_lists",
      email: seeded.contacts[0]!.email,
      list_ids: [news!.list_id, events!.list_id],
    });
    const leave: ConnectorOperation = {
      kind: "record_opt_out",
      op_id: op("topic"),
      external_id: id,
      email: seeded.contacts[0]!.email,
      scope: { kind: "construct", construct: { type: "list", id: news!.list_id, name: "News topic" } },
      initiated_by: "contact",
      occurred_at: "2026-06-01T11:00:00.000Z",
      origin: { system: "blackbaud-renxt", connection: "re-main", mechanism: "preference_page" },
    };
    expect(await session.apply([leave])).toEqual([
      { op_id: leave.op_id, status: "succeeded", external_id: id },
    ]);
    const stored = await contactById(id);
    expect(stored.list_memberships).toEqual([events!.list_id]);
    expect(stored.email_address.permission_to_send).toBe("implicit");
    expect((await session.apply([{ ...leave, op_id: op("topic") }]))[0]).toMatchObject({
      status: "succeeded",
      code: "already_applied",
    });
    const interest = await session.apply([
      {
        ...leave,
        op_id: op("topic"),
        scope: { kind: "construct", construct: { type: "interest", id: "x" } },
      },
    ]);
    expect(interest[0]).toMatchObject({ status: "failed", code: "validation_failed" });
  });

  it("adds new contacts only as subscribed: an upsert asked to start them any other way is refused", async () => {
    const out = await session.apply([
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "pending_confirmation" },
        op_id: op("intent"),
        list_ids: [],
        items: [{ item_id: "i1", email: "new@example.org" }],
      },
    ]);
    expect(out).toEqual([expect.objectContaining({ item_id: "i1", status: "failed", code: "unsupported" })]);
    expect((await account.requests()).filter((r) => r.path.startsWith("/v3/contacts"))).toEqual([]);
  });

  it("never opts in anyone who unsubscribed themselves, and a resubscribe request waits for the person (once)", async () => {
    const seeded = await seedPeople(1);
    const id = seeded.contacts[0]!.contact_id;
    await account.act("unsubscribe", seeded.contacts[0]!.email);
    const calls = (await account.requests()).length;
    const optIn = await session.apply([
      {
        kind: "record_opt_in",
        op_id: op("in"),
        external_id: id,
        scope: { kind: "account" },
        occurred_at: "2026-06-01T12:00:00.000Z",
        origin: { system: "x", connection: "y", mechanism: "admin_edit", actor: "account" },
      },
    ]);
    // The person unsubscribed themselves: the account's opt-in is refused, with no write at all (it
    // may only read whose opt-out it was).
    expect(optIn[0]).toMatchObject({ status: "failed", code: "consent_requires_contact_action" });
    expect((await account.requests()).slice(calls).filter((r) => r.method !== "GET")).toEqual([]);
    const first = await session.apply([
      {
        kind: "request_resubscribe",
        op_id: op("re"),
        external_id: id,
        list_ids: seeded.lists.map((l) => l.list_id),
      },
    ]);
    expect(first[0]).toMatchObject({ status: "pending_contact_action" });
    expect(first[0]!.code).toBeUndefined();
    expect((await contactById(id)).email_address.permission_to_send).toBe("unsubscribed");
    const second = await session.apply([
      {
        kind: "request_resubscribe",
        op_id: op("re"),
        external_id: id,
        list_ids: seeded.lists.map((l) => l.list_id),
      },
    ]);
    expect(second[0]).toMatchObject({ status: "pending_contact_action", code: "already_applied" });
  });

  it("runs consent operations before the others in one apply", async () => {
    const seeded = await seedPeople(2);
    const [a, b] = seeded.contacts;
    const before = (await account.requests()).length;
    const outcomes = await session.apply([
      { kind: "update_contact", op_id: op("u"), external_id: a!.contact_id, first_name: "Changed" },
      {
        kind: "record_opt_out",
        op_id: op("o"),
        external_id: b!.contact_id,
        email: b!.email,
        scope: { kind: "account" },
        initiated_by: "account",
        occurred_at: "2026-06-01T11:00:00.000Z",
        origin: { system: "s", connection: "c", mechanism: "admin_edit" },
      },
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["succeeded", "succeeded"]);
    const calls = (await account.requests()).slice(before).filter((r) => r.method === "PUT");
    expect(calls.map((c) => c.path)).toEqual([
      `/v3/contacts/${b!.contact_id}`,
      `/v3/contacts/${a!.contact_id}`,
    ]);
  });
});

describe("apply: contacts", () => {
  it("upserts through the JSON import and reports an outcome per item", async () => {
    const seeded = await seedPeople(1);
    const listId = seeded.lists[0]!.list_id;
    await account.act("unsubscribe", seeded.contacts[0]!.email);
    const outcomes = await session.apply([
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "subscribed" },
        op_id: op("up"),
        list_ids: [listId],
        items: [
          {
            item_id: "new",
            email: "new.person@example.org",
            first_name: "New",
            fields: { job_title: "Donor" },
          },
          { item_id: "bad", email: "not-an-address" },
          { item_id: "dup", email: "NEW.person@example.org" },
          { item_id: "gone", email: seeded.contacts[0]!.email, external_id: seeded.contacts[0]!.contact_id },
        ],
      },
    ]);
    const by = new Map(outcomes.map((o) => [o.item_id, o]));
    expect(by.get("new")).toMatchObject({ status: "succeeded" });
    expect(by.get("bad")).toMatchObject({ status: "failed", code: "validation_failed" });
    expect(by.get("dup")).toMatchObject({ status: "skipped", code: "duplicate_in_batch" });
    expect(by.get("gone")).toMatchObject({ status: "failed", code: "cannot_add_to_list" });
    const records = (await readAll(session, null)).flatMap((p) => p.records);
    const created = records.find((r) => r.emails[0]?.address === "new.person@example.org");
    expect(created?.list_ids).toEqual([listId]);
    expect(created?.first_name).toBe("New");
    expect(
      records.find((r) => r.external_id === seeded.contacts[0]!.contact_id)?.list_ids ?? [],
    ).not.toContain(listId);
    const paths = (await account.requests()).map((r) => `${r.method} ${r.path.split("?")[0]}`);
    expect(paths.filter((p) => p === "POST /v3/activities/contacts_json_import")).toHaveLength(1);
  });

  it("an address too long for the import goes one by one, and an unsubscribed one is put on no list, saying so", async () => {
    const long = `${"a".repeat(52)}@example.org`;
    const seeded = await account.seed({
      lists: [{ name: `List ${n++}` }],
      contacts: [{ email_address: { address: long, permission_to_send: "implicit" }, first_name: "Long" }],
    });
    const listId = seeded.lists[0]!.list_id;
    await account.act("unsubscribe", long);
    const puts = (await account.requests()).length;
    const outcomes = await session.apply([
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "subscribed" },
        op_id: op("up"),
        list_ids: [listId],
        items: [
          { item_id: "long", email: long, external_id: seeded.contacts[0]!.contact_id, first_name: "Longer" },
        ],
      },
    ]);
    expect(outcomes[0]).toMatchObject({ status: "failed", code: "cannot_add_to_list" });
    const contact = await contactById(seeded.contacts[0]!.contact_id);
    expect(contact.first_name).toBe("Longer");
    expect(contact.list_memberships ?? []).not.toContain(listId);
    expect(contact.email_address.permission_to_send).toBe("unsubscribed");
    expect((await account.requests()).slice(puts).filter((r) => r.method === "PUT")).toHaveLength(1);
  });

  it("upserts without lists one by one (the import needs a list) and returns the new ids", async () => {
    const outcomes = await session.apply([
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "subscribed" },
        op_id: op("up"),
        list_ids: [],
        items: [{ item_id: "a", email: "solo@example.org", first_name: "Solo" }],
      },
    ]);
    expect(outcomes[0]).toMatchObject({ status: "succeeded" });
    expect(outcomes[0]!.external_id).toMatch(/^[0-9a-f-]{36}$/);
    const again = await session.apply([
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "subscribed" },
        op_id: op("up"),
        list_ids: [],
        items: [{ item_id: "a", email: "solo@example.org", first_name: "Solo2" }],
      },
    ]);
    expect(again[0]).toMatchObject({ status: "succeeded", external_id: outcomes[0]!.external_id });
    expect((await contactById(outcomes[0]!.external_id!)).first_name).toBe("Solo2");
  });

  it("adds and removes list members in activities of at most 500 contacts", async () => {
    const seeded = await seedPeople(501);
    const ids = seeded.contacts.map((c) => c.contact_id);
    const listId = seeded.lists[0]!.list_id;
    const before = (await account.requests()).length;
    const added = await session.apply([
      { kind: "add_list_members", op_id: op("add"), list_ids: [listId], external_ids: ids },
    ]);
    expect(added).toEqual([{ op_id: added[0]!.op_id, status: "succeeded" }]);
    const posts = (await account.requests()).slice(before).filter((r) => r.method === "POST");
    expect(posts.map((p) => p.path)).toEqual([
      "/v3/activities/add_list_memberships",
      "/v3/activities/add_list_memberships",
    ]);
    expect((await contactById(ids[500]!)).list_memberships).toEqual([listId]);
    const removed = await session.apply([
      { kind: "remove_list_members", op_id: op("rm"), list_ids: [listId], external_ids: ids.slice(0, 3) },
    ]);
    expect(removed[0]!.status).toBe("succeeded");
    expect((await contactById(ids[0]!)).list_memberships).toEqual([]);
  });

  it("an activity that completes without putting every contact on the list fails the operation, saying how many", async () => {
    const seeded = await seedPeople(2);
    const [kept, left] = seeded.contacts;
    const listId = seeded.lists[0]!.list_id;
    // One of them unsubscribes before the activity runs: the account cannot put them on a list.
    await account.act("unsubscribe", left!.email);
    const [outcome] = await session.apply([
      {
        kind: "add_list_members",
        op_id: op("add"),
        list_ids: [listId],
        external_ids: [kept!.contact_id, left!.contact_id],
      },
    ]);
    expect(outcome).toMatchObject({ status: "failed", message: expect.stringContaining("changed 1 of 2") });
    expect((await contactById(kept!.contact_id)).list_memberships).toEqual([listId]);
  });

  it("a membership activity Constant Contact does not finish waits to be tried again, not refused for good", async () => {
    const seeded = await seedPeople(1);
    const listId = seeded.lists[0]!.list_id;
    // Constant Contact answers the activity as failed (its own outage while running it).
    await account.control("POST", "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/v3/activities/",
      methods: ["GET"],
      body: { activity_id: "activity-down", state: "failed", activity_errors: [] },
    });
    const [outcome] = await session.apply([
      {
        kind: "add_list_members",
        op_id: op("add"),
        list_ids: [listId],
        external_ids: [seeded.contacts[0]!.contact_id],
      },
    ]);
    expect(outcome).toMatchObject({
      status: "deferred",
      code: "vendor_unavailable",
      message: expect.stringContaining("activity-down ended failed"),
    });
  });

  it("updates a contact without touching consent or sub-resources, changes an email, creates a contact", async () => {
    const seeded = await seedPeople(2, {
      street_addresses: [{ kind: "home", street: "1 Main St", city: "Springfield" }],
    });
    const [a, b] = seeded.contacts;
    await account.act("unsubscribe", a!.email);
    const out = await session.apply([
      {
        kind: "update_contact",
        op_id: op("u"),
        external_id: a!.contact_id,
        last_name: "Lovelace",
        fields: { job_title: null },
      },
      {
        kind: "change_email",
        op_id: op("e"),
        external_id: a!.contact_id,
        old_email: a!.email,
        new_email: "moved@example.org",
      },
      {
        kind: "change_email",
        op_id: op("e"),
        external_id: b!.contact_id,
        old_email: b!.email,
        new_email: "moved@example.org",
      },
      {
        kind: "create_contact",
        op_id: op("c"),
        email: "fresh@example.org",
        first_name: "Fresh",
        kind_of_record: "individual",
      },
      {
        kind: "create_contact",
        op_id: op("c"),
        email: "fresh@example.org",
        first_name: "Again",
        kind_of_record: "individual",
      },
      {
        kind: "update_contact",
        op_id: op("u"),
        external_id: "00000000-0000-4000-8000-000000000000",
        first_name: "Nobody",
      },
    ]);
    expect(out.map((o) => [o.status, o.code])).toEqual([
      ["succeeded", undefined],
      ["succeeded", undefined],
      ["failed", "conflict"],
      ["succeeded", undefined],
      ["failed", "conflict"],
      ["failed", "not_found"],
    ]);
    const stored = await contactById(a!.contact_id);
    expect(stored).toMatchObject({
      first_name: "First0",
      last_name: "Lovelace",
      email_address: {
        address: "moved@example.org",
        permission_to_send: "unsubscribed",
        opt_out_source: "Contact",
      },
    });
    expect(stored.job_title ?? null).toBeNull();
    expect(stored.street_addresses).toEqual([expect.objectContaining({ kind: "home", street: "1 Main St" })]);
    expect(out[3]!.external_id).toMatch(/^[0-9a-f-]{36}$/);
    const created = await contactById(out[3]!.external_id!);
    expect(created.create_source).toBe("Account");
  });
});

describe("read: next links a vendor should never give", () => {
  const firstPage = (href: string) => ({
    status: 200,
    count: 1000,
    path_prefix: "/v3/contacts",
    body: { contacts: [], _links: { next: { href } } },
  });

  it("stops at a next link seen before instead of looping", async () => {
    await account.control("POST", "/__emulator/faults", firstPage("/v3/contacts?cursor=again"));
    const pages: string[] = [];
    for await (const page of session.read(null, { full: true })) {
      if (page.ok) pages.push("page");
      else pages.push(`${page.error.code}: ${page.error.message}`);
    }
    expect(pages.at(-1)).toBe(
      "bad_response: Constant Contact gave the same next-page link twice; the read stops instead of looping.",
    );
    expect(pages.length).toBeLessThanOrEqual(3);
  });

  it("never follows a next link to another host with the token", async () => {
    await account.control(
      "POST",
      "/__emulator/faults",
      firstPage("https://evil.example/v3/contacts?cursor=1"),
    );
    const errors: string[] = [];
    for await (const page of session.read(null, { full: true }))
      if (!page.ok) errors.push(page.error.message);
    expect(errors).toEqual([expect.stringContaining("https://evil.example is outside")]);
  });
});

describe("apply: limits and failures", () => {
  it("reads the unsubscribed contacts again when the list it holds does not account for every refusal", async () => {
    const seeded = await seedPeople(1);
    const listId = seeded.lists[0]!.list_id;
    const gone = seeded.contacts[0]!;
    await account.act("unsubscribe", gone.email);
    // The first read of the unsubscribed list misses her (as one made before she unsubscribed would).
    await account.control("POST", "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/v3/contacts",
      methods: ["GET"],
      body: { contacts: [], _links: {} },
    });
    const out = await session.apply([
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "subscribed" },
        op_id: op("stale"),
        list_ids: [listId],
        items: [
          { item_id: "new", email: "fresh.person@example.org" },
          { item_id: "gone", email: gone.email, external_id: gone.contact_id },
        ],
      },
    ]);
    const by = new Map(out.map((o) => [o.item_id, o]));
    expect(by.get("gone")).toMatchObject({ status: "failed", code: "cannot_add_to_list" });
    expect(by.get("new")).toMatchObject({ status: "succeeded" });
  });

  it("reports no import as done while the unsubscribed contacts it could not list cannot be read", async () => {
    const seeded = await seedPeople(1);
    const listId = seeded.lists[0]!.list_id;
    const gone = seeded.contacts[0]!;
    await account.act("unsubscribe", gone.email);
    const upsert = (id: string) => ({
      kind: "upsert_contacts" as const,
      consent_intent: { existing: "keep" as const, new_contacts: "subscribed" as const },
      op_id: op(id),
      list_ids: [listId],
      items: [
        { item_id: "new", email: "new.person@example.org" },
        { item_id: "gone", email: gone.email, external_id: gone.contact_id },
      ],
    });
    // The unsubscribed list (GET /contacts?status=unsubscribed) cannot be read.
    await account.control("POST", "/__emulator/faults", {
      status: 503,
      count: 50,
      path_prefix: "/v3/contacts",
      methods: ["GET"],
    });
    const first = new Map((await session.apply([upsert("up1")])).map((o) => [o.item_id, o]));
    expect(first.get("gone")).toMatchObject({ status: "deferred", code: "vendor_unavailable" });
    expect(first.get("gone")?.message).toContain("could not add 1 of this import's contacts");
    expect(first.get("new")).toMatchObject({ status: "deferred" });
    // Once the list can be read, the same apply session tells them apart.
    await account.control("DELETE", "/__emulator/faults");
    const again = new Map((await session.apply([upsert("up2")])).map((o) => [o.item_id, o]));
    expect(again.get("gone")).toMatchObject({ status: "failed", code: "cannot_add_to_list" });
    expect(again.get("new")).toMatchObject({ status: "succeeded" });
  });

  it("waits out a throttle (no Retry-After) and succeeds", async () => {
    const seeded = await seedPeople(1);
    await account.control("POST", "/__emulator/faults", {
      status: 429,
      count: 2,
      path_prefix: "/v3/contacts",
      body: [{ error_key: "throttled", error_message: "Too Many Requests" }],
    });
    const out = await session.apply([
      {
        kind: "update_contact",
        op_id: op("u"),
        external_id: seeded.contacts[0]!.contact_id,
        first_name: "Later",
      },
    ]);
    expect(out[0]).toMatchObject({ status: "succeeded" });
    expect(account.slept()).toBeGreaterThanOrEqual(2000);
  });

  it("defers every remaining operation to 00:00 UTC when the daily quota is spent", async () => {
    const seeded = await seedPeople(2);
    await account.control("POST", "/__emulator/faults", {
      status: 429,
      count: 1,
      path_prefix: "/v3/",
      body: [{ error_key: "quota_exceeded", error_message: "Limit Exceeded" }],
    });
    const out = await session.apply([
      {
        kind: "update_contact",
        op_id: op("u"),
        external_id: seeded.contacts[0]!.contact_id,
        first_name: "A",
      },
      {
        kind: "upsert_contacts",
        consent_intent: { existing: "keep", new_contacts: "subscribed" },
        op_id: op("up"),
        list_ids: [seeded.lists[0]!.list_id],
        items: [
          { item_id: "x", email: "x@example.org" },
          { item_id: "y", email: "y@example.org" },
        ],
      },
      {
        kind: "add_list_members",
        op_id: op("add"),
        list_ids: [seeded.lists[0]!.list_id],
        external_ids: [seeded.contacts[1]!.contact_id],
      },
    ]);
    expect(out).toHaveLength(4);
    for (const o of out) {
      expect(o).toMatchObject({
        status: "deferred",
        code: "quota_exceeded",
        retry_at: "2026-06-02T00:00:00.000Z",
      });
      expect(o.message).toMatch(/daily request quota/);
    }
  });

  it("answers auth_invalid for everything after the tokens are revoked, and loses nothing", async () => {
    const seeded = await seedPeople(1);
    await account.control("POST", "/__emulator/oauth/revoke", {});
    const out = await session.apply([
      {
        kind: "record_opt_out",
        op_id: op("o"),
        external_id: seeded.contacts[0]!.contact_id,
        email: seeded.contacts[0]!.email,
        scope: { kind: "account" },
        initiated_by: "contact",
        occurred_at: "2026-06-01T11:00:00.000Z",
        origin: { system: "s", connection: "c", mechanism: "unsubscribe_link" },
      },
      {
        kind: "update_contact",
        op_id: op("u"),
        external_id: seeded.contacts[0]!.contact_id,
        first_name: "Never",
      },
    ]);
    expect(out.map((o) => [o.status, o.code])).toEqual([
      ["deferred", "auth_invalid"],
      ["deferred", "auth_invalid"],
    ]);
  });
});
