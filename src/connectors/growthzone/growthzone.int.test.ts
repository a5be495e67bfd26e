/**
 * What the contract suite does not cover for GrowthZone: reads while contacts change, leave or
 * cannot be read under them.
 */
import { afterEach, expect, it } from "vitest";
import type { Checkpoint, ReadPage } from "../connector";
import { postControl } from "../emulator-kit/world";
import { GLOBAL_OBSERVED } from "../../core/consent/system-consent";
import { growthZoneManifest } from "./manifest";
import { startGrowthZoneEmulator, type StartedGrowthZoneEmulator } from "./emulator/growthzone-emulator";
import { createFakeClock } from "../../../test/support/fake-clock";

let emulator: StartedGrowthZoneEmulator | undefined;
afterEach(async () => {
  await emulator?.close();
});

/** A contact as the emulator seeds it: one primary address, its restriction, its last change. */
const person = (name: string, at = "2026-06-01T09:00:00", restriction = "None") => ({
  FirstName: name,
  LastName: "Example",
  ModifiedDate: at,
  Emails: [{ EmailAddress: `${name.toLowerCase()}@example.org`, IsDefault: true, Restriction: restriction }],
});

/** The emulator seeded with `contacts`, a session on it (page size as given) and the fake clock. */
async function world(
  contacts: ReturnType<typeof person>[],
  page_size?: number,
  options: { refuseDeltaOrder?: boolean; ignoreDeltaOrder?: boolean } = {},
) {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  emulator = await startGrowthZoneEmulator({ ratePerSecond: null, now: clock.now, ...options });
  const origin = emulator.baseUrl;
  const key = ((await postControl(origin, "/__emulator/token", {})) as { api_key: string }).api_key;
  const seeded = (await postControl(origin, "/__emulator/seed", { contacts })) as { contacts: number[] };
  const session = growthZoneManifest.connect(
    {
      connection_id: "growthzone-test",
      base_url: origin,
      ...(page_size !== undefined ? { page_size } : {}),
      limits: { requests_per_second: 1000 },
      credentials: { get: async () => ({ api_key: key }), save: async () => {} },
    },
    { now: clock.now, sleep: clock.sleep },
  );
  const act = (body: Record<string, unknown>) => postControl(origin, "/__emulator/act", body);
  /** Every page of a read from `from`, `after` run once each page is taken. */
  const read = async (from: Checkpoint | null, after?: (page: ReadPage, n: number) => Promise<void>) => {
    const pages: ReadPage[] = [];
    for await (const page of session.read(from)) {
      if (!page.ok) throw new Error(page.error.message);
      pages.push(page.value);
      await after?.(page.value, pages.length);
    }
    return pages;
  };
  return { clock, origin, ids: seeded.contacts.map(String), act, read, session };
}

const FROM: Checkpoint = {
  stream: "contacts",
  value: "2026-06-01T08:00:00.000Z",
  taken_at: "2026-06-01T08:00:00.000Z",
};
const at = (checkpoint: Checkpoint): number => Date.parse(checkpoint.value.split(" ")[0]!);

it("a delta read while a contact changes under it skips no one: the opt-out of the contact that moved up is read", async () => {
  const w = await world(
    [
      person("A", "2026-06-01T09:00:00"),
      person("K", "2026-06-01T10:00:00", "DoNotContact"),
      person("B", "2026-06-01T11:00:00"),
    ],
    1,
  );
  const [a, k] = w.ids;
  const pages = await w.read(FROM, async (page, n) => {
    // After A's page, A changes: in the order of change it moves behind K and B.
    if (n !== 1) return;
    expect(page.records.map((r) => r.external_id)).toEqual([a]);
    w.clock.advance(60_000);
    await w.act({ action: "update_contact", contact_id: a, changes: { LastName: "Lovelace" } });
  });
  const optOuts = pages.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
  expect(optOuts.map((o) => o.external_id)).toEqual([k]);
  // A is read again as she is now.
  const lastA = pages
    .flatMap((p) => p.records)
    .filter((r) => r.external_id === a)
    .at(-1);
  expect(lastA?.last_name).toBe("Lovelace");
});

it("a delta read that stops any number of pages after a moved-up contact was skipped leaves its opt-out ahead of the checkpoint", async () => {
  for (const stopAfter of [2, 3]) {
    const w = await world(
      [
        person("A", "2026-06-01T09:00:00"),
        person("K", "2026-06-01T10:00:00", "DoNotContact"),
        person("B", "2026-06-01T11:00:00"),
        person("C", "2026-06-01T11:30:00"),
      ],
      1,
    );
    const [a, k] = w.ids;
    const seen: ReadPage[] = [];
    // After A's page A changes and moves to the end: K moves into the first row, where a listing by
    // position would skip it; listed by time, the next page starts at it. The read stops once a
    // later page is stored (a spent budget, a restart).
    for await (const page of w.session.read(FROM)) {
      if (!page.ok) throw new Error(page.error.message);
      seen.push(page.value);
      if (seen.length === 1) {
        w.clock.advance(60_000);
        await w.act({ action: "update_contact", contact_id: a, changes: { LastName: "Lovelace" } });
      }
      if (seen.length === stopAfter) break;
    }
    const listed = seen.map((p) => p.records.map((r) => r.external_id));
    expect(listed[0]).toEqual([a]);
    expect(listed[1]).toEqual([k]);
    const next = await w.read(seen.at(-1)!.checkpoint);
    const optOuts = [...seen, ...next].flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
    expect(
      optOuts.map((o) => o.external_id),
      `stopped after page ${stopAfter}`,
    ).toContain(k);
    await emulator?.close();
    emulator = undefined;
  }
});

it("a delta read stopped part way (the day's budget spent) goes on from its last page, not from its start", async () => {
  const w = await world(
    ["P1", "P2", "P3", "P4", "P5", "P6"].map((name, i) =>
      person(
        name,
        `2026-06-01T${String(9 + i).padStart(2, "0")}:00:00`,
        name === "P6" ? "DoNotContact" : "None",
      ),
    ),
    2,
  );
  const [p1, p2, p3, p4, , p6] = w.ids;
  const first: ReadPage[] = [];
  for await (const page of w.session.read(FROM)) {
    if (!page.ok) throw new Error(page.error.message);
    first.push(page.value);
    if (first.length === 2) break;
  }
  // Each page lists from a second before the last change the page before ended on.
  expect(first.flatMap((p) => p.records.map((r) => r.external_id))).toEqual([p1, p2, p3]);
  // The next read lists from the second page's start (less the overlap): P1 is not read again.
  const next = await w.read(first.at(-1)!.checkpoint);
  const again = next.flatMap((p) => p.records.map((r) => r.external_id));
  expect(again).not.toContain(p1);
  expect(again).toEqual(expect.arrayContaining([p4, p6]));
  expect(
    next
      .flatMap((p) => p.consent)
      .filter((o) => o.kind === "opt_out")
      .map((o) => o.external_id),
  ).toEqual([p6]);
});

for (const refuseDeltaOrder of [false, true])
  it(`a delta read that stops after a page leaves no older change behind its checkpoint (${refuseDeltaOrder ? "a server refusing $orderby: the read keeps its start" : "asked oldest first"})`, async () => {
    // By contact id, A (changed at 11:00) comes before K (opted out at 10:00).
    const w = await world(
      [person("A", "2026-06-01T11:00:00"), person("K", "2026-06-01T10:00:00", "DoNotContact")],
      1,
      { refuseDeltaOrder },
    );
    const [, k] = w.ids;
    const seen: ReadPage[] = [];
    // The read stops once its first page is stored (a spent budget, a restart).
    for await (const page of w.session.read(FROM)) {
      if (!page.ok) throw new Error(page.error.message);
      seen.push(page.value);
      break;
    }
    const next = await w.read(seen[0]!.checkpoint);
    const optOuts = [...seen, ...next].flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
    expect(optOuts.map((o) => o.external_id)).toContain(k);
    if (refuseDeltaOrder) expect(at(seen[0]!.checkpoint)).toBe(at(FROM));
  });

it("a delta that comes back out of order is read as unordered: a read stopped after it saw so keeps its start", async () => {
  // GrowthZone ignores the order asked for and lists by contact id, A (11:00), then L (09:00), then K (10:00).
  const w = await world(
    [
      person("A", "2026-06-01T11:00:00"),
      person("L", "2026-06-01T09:00:00"),
      person("K", "2026-06-01T10:00:00", "DoNotContact"),
    ],
    1,
    { ignoreDeltaOrder: true },
  );
  const [, , k] = w.ids;
  const seen: ReadPage[] = [];
  // The read stops once its second page (where the order showed) is stored.
  for await (const page of w.session.read(FROM)) {
    if (!page.ok) throw new Error(page.error.message);
    seen.push(page.value);
    if (seen.length === 2) break;
  }
  expect(at(seen[1]!.checkpoint)).toBe(at(FROM));
  const next = await w.read(seen[1]!.checkpoint);
  expect(
    next
      .flatMap((p) => p.consent)
      .filter((o) => o.kind === "opt_out")
      .map((o) => o.external_id),
  ).toEqual([k]);
});

it("a delta that refuses its order part way is read again by position from its first row: no one listed before is skipped", async () => {
  // By contact id K (opted out, 10:00) comes before A, B and D (all 09:00) and C (11:00).
  const w = await world(
    [
      person("K", "2026-06-01T10:00:00", "DoNotContact"),
      person("A", "2026-06-01T09:00:00"),
      person("B", "2026-06-01T09:00:00"),
      person("D", "2026-06-01T09:00:00"),
      person("C", "2026-06-01T11:00:00"),
    ],
    2,
  );
  const [k] = w.ids;
  // The first page (A and B, oldest first) is read; the next goes on within their second, past
  // the two. GrowthZone answers that ordered listing with 400, as it does for several causes.
  emulator!.kit.faults.push({
    status: 400,
    count: 1,
    path_prefix: "/api/contacts/delta",
    query_contains: "%24skip=2&%24orderby",
    latency_ms: 0,
    body: { Message: "The request is invalid." },
  });
  const pages = await w.read(FROM);
  expect(emulator!.kit.faults[0]?.count).toBe(0);
  expect(pages[0]!.records.map((r) => r.first_name)).toEqual(["A", "B"]);
  expect(
    pages
      .flatMap((p) => p.consent)
      .filter((o) => o.kind === "opt_out")
      .map((o) => o.external_id),
  ).toEqual([k]);
  expect(new Set(pages.flatMap((p) => p.records.map((r) => r.first_name)))).toEqual(
    new Set(["K", "A", "B", "D", "C"]),
  );
});

it("a delta whose contacts keep changing through its last pass keeps the old checkpoint once: the next read lists it again", async () => {
  const w = await world(
    ["A", "K", "B"].map((name, i) => person(name, `2026-06-01T${String(9 + i).padStart(2, "0")}:00:00`)),
    1,
  );
  const [a] = w.ids;
  let edits = 0;
  // A busy office: A changes after every page of every pass.
  const busy = async () => {
    w.clock.advance(1_000);
    await w.act({ action: "update_contact", contact_id: a, changes: { LastName: `Edit ${++edits}` } });
  };
  const last = (await w.read(FROM, busy)).at(-1)!.checkpoint;
  expect(at(last)).toBeLessThanOrEqual(at(FROM));
  // Once, not for ever: a second busy read moves on (a delta busy through every read would
  // otherwise list more each time); the full read reads what it skipped.
  const again = await w.read(last, busy);
  expect(at(again.at(-1)!.checkpoint)).toBeGreaterThan(at(FROM));
});

it("a contact the delta lists whose detail answers 404 is not taken as deleted: it is left for a later read", async () => {
  const w = await world([person("A"), person("B")]);
  const [a, b] = w.ids;
  await postControl(w.origin, "/__emulator/faults", {
    status: 404,
    count: 5,
    path_prefix: `/api/contacts/${a}`,
    methods: ["GET"],
  });
  const first = await w.read(FROM);
  const records = first.flatMap((p) => p.records);
  expect(records.map((r) => [r.external_id, r.deleted === true])).toEqual([[b, false]]);
});

it("a contact the delta lists whose detail answered 404 once is read by the next read: the checkpoint waits for it once", async () => {
  // B changed after A: a checkpoint moved to B's change would be past A.
  const w = await world([
    person("A", "2026-06-01T09:00:00", "DoNotContact"),
    person("B", "2026-06-01T10:00:00"),
  ]);
  const [a] = w.ids;
  await postControl(w.origin, "/__emulator/faults", {
    status: 404,
    count: 1,
    path_prefix: `/api/contacts/${a}`,
    methods: ["GET"],
  });
  const first = await w.read(FROM);
  expect(first.flatMap((p) => p.records).map((r) => r.external_id)).not.toContain(a);
  const next = await w.read(first.at(-1)!.checkpoint);
  expect(
    next
      .flatMap((p) => p.consent)
      .filter((o) => o.kind === "opt_out")
      .map((o) => o.external_id),
  ).toEqual([a]);
});

it("a listing whose every contact's detail answers 404 fails the read, saying so, instead of reading no one", async () => {
  const w = await world([person("A"), person("B"), person("C")]);
  await postControl(w.origin, "/__emulator/faults", {
    status: 404,
    count: 100,
    path_prefix: "/api/contacts/10",
    methods: ["GET"],
  });
  await expect(w.read(FROM)).rejects.toThrow(
    /404 for the detail \(GET \/api\/contacts\/\{id\}\) of every one of 3 contacts/,
  );
});

it("a full read while a contact is deleted skips no one: the opt-out of the contact that moved up is read", async () => {
  const w = await world([person("A"), person("K", undefined, "DoNotContact"), person("B"), person("C")], 1);
  const [a, k] = w.ids;
  const pages = await w.read(null, async (_page, n) => {
    // A is deleted once her page is read: every contact after her moves up one place.
    if (n === 1) await w.act({ action: "delete_contact", contact_id: a });
  });
  const optOuts = pages.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
  expect(optOuts.map((o) => o.external_id)).toEqual([k]);
  // Each contact once.
  const ids = pages.flatMap((p) => p.records.map((r) => r.external_id));
  expect(new Set(ids).size).toBe(ids.length);
});

it("an opt-in planned over no restriction leaves one made since in place; one planned over it lifts it", async () => {
  const w = await world([person("Ann", "2026-06-01T09:00:00", "TransactionalOnly")]);
  const id = w.ids[0]!;
  const optIn = (read_opted_out: boolean) =>
    w.session.apply([
      {
        kind: "record_opt_in",
        op_id: `in_${read_opted_out}`,
        external_id: id,
        scope: GLOBAL_OBSERVED,
        occurred_at: w.clock.now().toISOString(),
        read_opted_out,
        origin: { system: "mailchimp", connection: "mc", mechanism: "signup_form", actor: "contact" },
      },
    ]);
  const restriction = () => emulator?.contacts.get(Number(id))?.Emails[0]?.Restriction;
  expect((await optIn(false))[0]).toMatchObject({ status: "skipped", code: "conflict" });
  expect(restriction()).toBe("TransactionalOnly");
  expect((await optIn(true))[0]).toMatchObject({ status: "succeeded" });
  expect(restriction()).toBe("None");
});

it("an address made primary takes the old primary's stricter restriction: staff's Do Not Contact follows the person", async () => {
  const w = await world([
    {
      ...person("Bea"),
      Emails: [
        { EmailAddress: "bea@example.org", IsDefault: true, Restriction: "DoNotContact" },
        { EmailAddress: "bea@work.example.org", IsDefault: false, Restriction: "None" },
      ],
    },
  ]);
  const id = w.ids[0]!;
  const [out] = await w.session.apply([
    {
      kind: "change_email",
      op_id: "ce1",
      external_id: id,
      old_email: "bea@example.org",
      new_email: "bea@work.example.org",
    },
  ]);
  expect(out).toMatchObject({ status: "succeeded" });
  const emails = emulator?.contacts
    .get(Number(id))
    ?.Emails.map((e) => [e.EmailAddress, e.IsDefault, e.Restriction]);
  expect(emails).toEqual([
    ["bea@example.org", false, "DoNotContact"],
    ["bea@work.example.org", true, "DoNotContact"],
  ]);
  // Read again, the person is still restricted on the address email goes to.
  const got = await w.session.get([id]);
  if (!got.ok) throw new Error(got.error.message);
  expect(got.value.records[0]?.consent_state).toContainEqual(
    expect.objectContaining({ scope: GLOBAL_OBSERVED, status: "opted_out" }),
  );
});

it("a batch of topic opt-outs reads its list's members once, not once an opt-out, and marks each", async () => {
  const w = await world([person("A"), person("B"), person("C"), person("D")], 1);
  const seeded = (await postControl(w.origin, "/__emulator/seed", {
    groups: [{ alias: "news", Name: "Newsletter", Members: w.ids.map(Number) }],
  })) as { groups: { GroupId: number }[] };
  const listId = String(seeded.groups[0]!.GroupId);
  const before = emulator!.kit.requests.length;
  const outcomes = await w.session.apply(
    w.ids.slice(0, 3).map((id) => ({
      kind: "record_opt_out" as const,
      op_id: `out_${id}`,
      external_id: id,
      email: "x@example.org",
      scope: { kind: "construct" as const, construct: { type: "list", id: listId } },
      initiated_by: "contact" as const,
      occurred_at: "2026-06-01T12:00:00.000Z",
      origin: { system: "constant-contact", connection: "cc", mechanism: "unsubscribe_link" as const },
    })),
  );
  expect(outcomes.map((o) => o.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
  const calls = emulator!.kit.requests.slice(before).map((r) => `${r.method} ${r.path.split("?")[0] ?? ""}`);
  // One listing of the list's members (a page of up to 100), then a write each.
  expect(calls.filter((c) => c.startsWith("GET "))).toEqual([`GET /api/groups/${listId}/members`]);
  expect(calls.filter((c) => c.startsWith("PUT "))).toHaveLength(3);
  const group = emulator!.groups.get(Number(listId))!;
  expect(w.ids.map((id) => group.Members.get(Number(id))?.DoNotContact)).toEqual([true, true, true, false]);
});

it("an opt-out GrowthZone accepts but answers with the restriction unchanged is not done, and says so", async () => {
  const w = await world([person("A")]);
  const contact = emulator!.contacts.get(Number(w.ids[0]!))!;
  const emailId = contact.Emails[0]!.ContactEmailAddressId;
  // GrowthZone ignoring a field it does not know: 200, the address as it was.
  await postControl(w.origin, "/__emulator/faults", {
    status: 200,
    count: 1,
    path_prefix: `/api/contacts/${w.ids[0]!}/emails/${emailId}`,
    methods: ["PUT"],
    body: {
      ContactEmailAddressId: emailId,
      EmailAddress: "a@example.org",
      IsDefault: true,
      Restriction: "None",
    },
  });
  const [outcome] = await w.session.apply([
    {
      kind: "record_opt_out",
      op_id: "out-ignored",
      external_id: w.ids[0]!,
      email: "a@example.org",
      scope: { kind: "global" },
      initiated_by: "contact",
      occurred_at: "2026-06-01T12:00:00.000Z",
      origin: { system: "constant-contact", connection: "cc", mechanism: "unsubscribe_link" },
    },
  ]);
  expect(outcome).toMatchObject({
    status: "failed",
    code: "validation_failed",
    message: expect.stringContaining('answered with Restriction "None", not "TransactionalOnly"'),
  });
  expect(contact.Emails[0]!.Restriction).toBe("None");
});

it("a consent write whose answer does not show the field is read back, and not done while the record does not show it", async () => {
  const w = await world([person("A"), person("B")]);
  const seeded = (await postControl(w.origin, "/__emulator/seed", {
    groups: [{ alias: "news", Name: "Newsletter", Members: w.ids.map(Number) }],
  })) as { groups: { GroupId: number }[] };
  const listId = String(seeded.groups[0]!.GroupId);
  const [a, b] = w.ids as [string, string];
  const contact = emulator!.contacts.get(Number(a))!;
  const emailId = contact.Emails[0]!.ContactEmailAddressId;
  const optOut = (id: string, scope: "global" | "list") => ({
    kind: "record_opt_out" as const,
    op_id: `out-${scope}-${id}`,
    external_id: id,
    email: "x@example.org",
    scope:
      scope === "global"
        ? { kind: "global" as const }
        : { kind: "construct" as const, construct: { type: "list", id: listId } },
    initiated_by: "contact" as const,
    occurred_at: "2026-06-01T12:00:00.000Z",
    origin: { system: "constant-contact", connection: "cc", mechanism: "unsubscribe_link" as const },
  });
  // GrowthZone answering 200 with a body that names neither field, and not taking the write.
  const ignore = (path: string) =>
    postControl(w.origin, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: path,
      methods: ["PUT"],
      body: {},
    });
  await ignore(`/api/contacts/${a}/emails/${emailId}`);
  await ignore(`/api/groups/${listId}/members/${b}`);
  const [address, list] = await w.session.apply([optOut(a, "global"), optOut(b, "list")]);
  expect(address).toMatchObject({
    status: "failed",
    code: "validation_failed",
    message: expect.stringContaining('read back with Restriction "None", not "TransactionalOnly"'),
  });
  expect(list).toMatchObject({
    status: "failed",
    code: "validation_failed",
    message: expect.stringContaining("read back with DoNotContact false, not true"),
  });
  expect(contact.Emails[0]!.Restriction).toBe("None");
  // Tried again with GrowthZone taking it: done.
  const [again] = await w.session.apply([optOut(a, "global")]);
  expect(again).toMatchObject({ status: "succeeded" });
  expect(contact.Emails[0]!.Restriction).toBe("TransactionalOnly");
});

it("a re-read of a contact whose detail answers 404 leaves it out: only the delta says who is deleted", async () => {
  const w = await world([person("A"), person("B")]);
  await postControl(w.origin, "/__emulator/faults", {
    status: 404,
    count: 1,
    path_prefix: `/api/contacts/${w.ids[0]!}`,
    methods: ["GET"],
    body: { Message: "No contact was found." },
  });
  const got = await w.session.get([w.ids[0]!, w.ids[1]!]);
  if (!got.ok) throw new Error(got.error.message);
  expect(got.value.records.map((r) => [r.external_id, r.deleted === true])).toEqual([[w.ids[1]!, false]]);
});

it("a delta with a contact changed during its first pass settles on the next: the checkpoint moves on, no hold spent", async () => {
  const w = await world(
    ["A", "K", "B"].map((name, i) => person(name, `2026-06-01T${String(9 + i).padStart(2, "0")}:00:00`)),
    1,
  );
  const [a] = w.ids;
  let edited = false;
  // A changes once, after the first page of the first pass; then the office is quiet.
  const once = async () => {
    if (edited) return;
    edited = true;
    w.clock.advance(1_000);
    await w.act({ action: "update_contact", contact_id: a, changes: { LastName: "Edited" } });
    w.clock.advance(5_000);
  };
  const pages = await w.read(FROM, once);
  const last = pages.at(-1)!.checkpoint;
  expect(at(last)).toBeGreaterThan(at(FROM));
  expect(last.value).not.toContain("held");
  expect(pages.flatMap((p) => p.records).some((r) => r.external_id === a && r.last_name === "Edited")).toBe(
    true,
  );
});
