// The Mailchimp connector against its emulator: what it reads as consent, and what it never writes.
import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { ConnectorOperation, ConnectorSession, WebhookChange } from "../connector";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { registerMailchimpWebhook } from "./connector";
import { mailchimpManifest } from "./manifest";
import { handleMailchimpWebhook } from "./webhooks";
import { subscriberHash } from "./mapping";
import {
  startMailchimpTestAccount,
  TEST_AUDIENCE,
  type MailchimpTestAccount,
} from "../../../test/support/connectors/mailchimp";

const running: MailchimpTestAccount[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.close()));
});

async function account() {
  const a = await startMailchimpTestAccount({
    audience: {
      interest_categories: [{ title: "Topics", interests: [{ id: "int0000001", name: "Appeals" }] }],
    },
  });
  running.push(a);
  const session: ConnectorSession = mailchimpManifest.connect(a.settings, a.runtime);
  return { a, session };
}

const upsert = (
  items: { email: string; first_name?: string; external_id?: string }[],
  new_contacts: "subscribed" | "unsubscribed" | "pending_confirmation",
  list_ids: string[] = [],
): ConnectorOperation => ({
  kind: "upsert_contacts",
  op_id: `up-${new_contacts}`,
  consent_intent: { existing: "keep", new_contacts },
  items: items.map((i, n) => ({ item_id: `i${n}`, ...i })),
  list_ids,
});

/** The changes a Mailchimp webhook delivery of `fields` (fired 2026-05-30 09:00:00) announces. */
function delivered(fields: Record<string, string>): WebhookChange[] {
  const handled = handleMailchimpWebhook(
    {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      query: { key: "s3cret" },
      raw_body: new URLSearchParams({ fired_at: "2026-05-30 09:00:00", ...fields }).toString(),
    },
    "s3cret",
  );
  if (handled.kind !== "events") throw new Error(`expected events, got ${handled.kind}`);
  return handled.changes;
}

/** The person's opt-out of `scope`, made now on Concord's preference page and written to member `id`. */
function personsOptOut(
  a: MailchimpTestAccount,
  op_id: string,
  id: string,
  email: string,
  scope: Extract<ConnectorOperation, { kind: "record_opt_out" }>["scope"],
): ConnectorOperation {
  return {
    kind: "record_opt_out",
    op_id,
    external_id: id,
    email,
    scope,
    initiated_by: "contact",
    occurred_at: a.runtime.now().toISOString(),
    origin: { system: "blackbaud-renxt", connection: "re", mechanism: "preference_page" },
  };
}

/** An opt-in made on the preference page, by the person or (`account`) by someone for them. */
function anOptIn(
  a: MailchimpTestAccount,
  op_id: string,
  id: string,
  scope: Extract<ConnectorOperation, { kind: "record_opt_in" }>["scope"],
  actor: "contact" | "account",
): ConnectorOperation {
  return {
    kind: "record_opt_in",
    op_id,
    external_id: id,
    scope,
    occurred_at: a.runtime.now().toISOString(),
    origin: { system: "blackbaud-renxt", connection: "re", mechanism: "preference_page", actor },
  };
}

async function statusOf(a: MailchimpTestAccount, email: string): Promise<string | undefined> {
  const state = await a.control<{ audiences: { members: { email_address: string; status: string }[] }[] }>(
    "GET",
    "/__emulator/state",
  );
  return state.audiences[0]!.members.find((m) => m.email_address === email)?.status;
}

describe("Mailchimp connector", () => {
  it("gives new members the status the consent intent says, and leaves a member it did not know as it is", async () => {
    const { a, session } = await account();
    await a.seed([
      { email: "left@example.org", status: "unsubscribed", unsubscribe: { by: "user" } },
      { email: "waiting@example.org", status: "pending" },
    ]);
    const lists = await session.lists();
    const tag = lists.ok ? lists.value.find((l) => l.name === "Contract list")!.external_id : "";
    const outcomes = await session.apply([
      upsert(
        [
          { email: "new@example.org", first_name: "New" },
          { email: "left@example.org", first_name: "Left" },
          { email: "waiting@example.org", first_name: "Waiting" },
        ],
        "subscribed",
        [tag],
      ),
      upsert([{ email: "asked@example.org" }], "pending_confirmation"),
      upsert([{ email: "quiet@example.org" }], "unsubscribed"),
    ]);
    expect(
      outcomes.map((o) => [o.status, o.code ?? null]),
      JSON.stringify(outcomes),
    ).toEqual([
      ["succeeded", null],
      ["skipped", "conflict"],
      ["skipped", "conflict"],
      ["succeeded", null],
      ["succeeded", null],
    ]);
    expect(outcomes[1]?.message).toContain("not read");
    expect(await statusOf(a, "new@example.org")).toBe("subscribed");
    // Members Concord had not read keep their status, fields and lists until a read links them.
    expect(await statusOf(a, "left@example.org")).toBe("unsubscribed");
    expect(await statusOf(a, "waiting@example.org")).toBe("pending");
    expect(await statusOf(a, "asked@example.org")).toBe("pending");
    expect(await statusOf(a, "quiet@example.org")).toBe("unsubscribed");
    // New members are linked by the read after a sync (batch answers name no contact id).
    expect(outcomes[0]!.external_id).toBeUndefined();
    const read = await session.get(["new@example.org", "left@example.org"]);
    expect(
      read.ok && read.value.records.map((r) => [r.emails[0]?.address, r.first_name ?? null, r.list_ids]),
    ).toEqual([
      ["new@example.org", "New", [tag]],
      ["left@example.org", null, []],
    ]);
    // Linked, an existing member's fields and lists are written; its status still never changes.
    const left = read.ok ? read.value.records[1]!.external_id : "";
    const linked = await session.apply([
      upsert([{ email: "left@example.org", first_name: "Left", external_id: left }], "subscribed", [tag]),
    ]);
    expect(linked.map((o) => o.status)).toEqual(["succeeded"]);
    expect(await statusOf(a, "left@example.org")).toBe("unsubscribed");
  });

  it("an upsert never brings back an archived member it did not know, nor ticks a group a member left", async () => {
    const { a, session } = await account();
    await a.seed([
      { email: "gone@example.org", status: "archived" },
      { email: "chose@example.org", status: "subscribed", interests: [] },
    ]);
    const outcomes = await session.apply([
      upsert([{ email: "gone@example.org" }, { email: "chose@example.org" }], "subscribed", [
        "interest:int0000001",
      ]),
    ]);
    expect(outcomes.map((o) => [o.status, o.code ?? null])).toEqual([
      ["skipped", "conflict"],
      ["skipped", "conflict"],
    ]);
    expect(await statusOf(a, "gone@example.org")).toBe("archived");
    const state = await a.control<{
      audiences: { members: { email_address: string; interests: Record<string, boolean> }[] }[];
    }>("GET", "/__emulator/state");
    const chose = state.audiences[0]!.members.find((m) => m.email_address === "chose@example.org");
    expect(chose?.interests["int0000001"] ?? false).toBe(false);
  });

  it("an address the tag batch did not tag fails its item, with Mailchimp's reason; the others succeed", async () => {
    const { a, session } = await account();
    const lists = await session.lists();
    const tag = lists.ok ? lists.value.find((l) => l.name === "Contract list")!.external_id : "";
    // Mailchimp answers the tag batch 200, naming one address it did not tag.
    await a.control("POST", "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: `/3.0/lists/${TEST_AUDIENCE}/segments/`,
      methods: ["POST"],
      body: {
        total_added: 1,
        errors: [
          { email_addresses: ["B@example.org"], error: "Email addresses are not subscribed to the list" },
        ],
      },
    });
    const outcomes = await session.apply([
      upsert([{ email: "a@example.org" }, { email: "b@example.org" }], "subscribed", [tag]),
    ]);
    expect(outcomes.map((o) => [o.item_id, o.status, o.code ?? null])).toEqual([
      ["i0", "succeeded", null],
      ["i1", "failed", "cannot_add_to_list"],
    ]);
    expect(outcomes[1]?.message).toContain("not subscribed to the list");
  });

  it("a member that changes during a read skips no one: every opt-out is read, the changed member comes again", async () => {
    const { a } = await account();
    const session = mailchimpManifest.connect({ ...a.settings, page_size: 1 }, a.runtime);
    await a.seed([
      { email: "a@example.org", status: "subscribed", last_changed: "2026-06-01T09:00:00+00:00" },
      {
        email: "k@example.org",
        status: "unsubscribed",
        unsubscribe: { by: "user" },
        last_changed: "2026-06-01T10:00:00+00:00",
      },
      { email: "b@example.org", status: "subscribed", last_changed: "2026-06-01T11:00:00+00:00" },
    ]);
    const from = {
      stream: "members",
      value: "2026-06-01T08:00:00.000Z",
      taken_at: "2026-06-01T08:00:00.000Z",
    };
    const seen: string[] = [];
    const optOuts: string[] = [];
    let pages = 0;
    for await (const page of session.read(from)) {
      if (!page.ok) throw new Error(page.error.message);
      for (const r of page.value.records) seen.push(`${r.emails[0]!.address} ${r.first_name ?? "-"}`);
      for (const c of page.value.consent) if (c.kind === "opt_out") optOuts.push(c.email);
      // After the first page, A changes: sorted by last change, A moves behind the others.
      if (pages++ === 0)
        await a.act({
          as: "contact",
          action: "update_profile",
          email: "a@example.org",
          merge_fields: { FNAME: "A" },
        });
    }
    expect(optOuts).toEqual(["k@example.org"]);
    expect(seen).toEqual(["a@example.org -", "k@example.org -", "b@example.org -", "a@example.org A"]);
  });

  it("credits a form's or a confirmation's trace to the person only for the subscription it led to", async () => {
    const { a, session } = await account();
    const signedUp = "2025-01-01T00:00:00.000Z";
    const form = { status: "subscribed" as const, source: "Hosted Signup Form", timestamp_signup: signedUp };
    const [first, later, back] = await a.seed([
      { email: "first@example.org", ...form, timestamp_opt: "2025-01-01T00:00:05.000Z" },
      // Subscribed again long after that signup: by the account or another integration, not the form.
      { email: "later@example.org", ...form, timestamp_opt: "2026-05-30T00:00:00.000Z" },
      {
        email: "back@example.org",
        status: "unsubscribed",
        source: "Hosted Signup Form",
        timestamp_signup: signedUp,
        unsubscribe: { by: "user" },
      },
    ]);
    // Concord asks Mailchimp to send the confirmation; the person answers it.
    const asked = await session.apply([
      { kind: "request_resubscribe", op_id: "re-back", external_id: back!.contact_id, list_ids: [] },
    ]);
    expect(asked[0]).toMatchObject({ status: "pending_contact_action" });
    await a.act({ as: "contact", action: "confirm_resubscribe", email: "back@example.org" });
    const got = await session.get([first!.contact_id, later!.contact_id, back!.contact_id]);
    if (!got.ok) throw new Error(got.error.message);
    const by = (id: string) => got.value.consent.find((c) => c.external_id === id)!;
    expect(by(first!.contact_id)).toMatchObject({
      kind: "opt_in",
      actor: { kind: "contact" },
      basis: "express",
      // The sign-up it confirms: an opt-out recorded in between makes it the account's.
      of_signup_at: signedUp,
    });
    expect(by(later!.contact_id)).toMatchObject({
      kind: "opt_in",
      mechanism: "unknown",
      actor: { kind: "account" },
      basis: "implied",
    });
    expect(by(back!.contact_id)).toMatchObject({
      kind: "opt_in",
      actor: { kind: "contact" },
      basis: "express",
    });
  });

  it("a member Concord adds pending carries the time it asked, so her confirmation answers that sign-up and no opt-out made since", async () => {
    const { a, session } = await account();
    const asked = a.runtime.now().toISOString();
    const [added] = await session.apply([upsert([{ email: "asked@example.org" }], "pending_confirmation")]);
    expect(added).toMatchObject({ status: "succeeded" });
    // Bulk adds return no ids: the member is found by its address, as a read links it.
    const hash = createHash("md5").update("asked@example.org").digest("hex");
    const member = (await a.api("GET", `/lists/${TEST_AUDIENCE}/members/${hash}`)).body;
    expect(member).toMatchObject({ status: "pending", timestamp_signup: asked });
    // She confirms days later (Mailchimp's email is still in her inbox).
    await a.runtime.sleep(3 * 86_400_000);
    await a.act({ as: "contact", action: "confirm", email: "asked@example.org" });
    const got = await session.get([String(member.contact_id)]);
    if (!got.ok) throw new Error(got.error.message);
    // Hers, answering the sign-up Concord asked for then: an opt-out of hers recorded in between
    // (in any system) stands over it, which only the sign-up's time lets the ledger tell.
    expect(got.value.consent[0]).toMatchObject({
      kind: "opt_in",
      mechanism: "double_opt_in_confirmation",
      actor: { kind: "contact" },
      of_signup_at: asked,
    });
  });

  it("a form sign-up without an opt-in time is dated by its signup, which no later edit moves; without either time it is the account's", async () => {
    const { a, session } = await account();
    const signedUp = "2025-01-01T00:00:00.000Z";
    const form = { status: "subscribed" as const, source: "Hosted Signup Form", timestamp_opt: "" };
    const [dated, undated] = await a.seed([
      { email: "dated@example.org", ...form, timestamp_signup: signedUp },
      { email: "undated@example.org", ...form },
    ]);
    const optIns = async () => {
      const got = await session.get([dated!.contact_id, undated!.contact_id]);
      if (!got.ok) throw new Error(got.error.message);
      return [dated!.contact_id, undated!.contact_id].map((id) =>
        got.value.consent.find((c) => c.external_id === id),
      );
    };
    const [before, accounts] = await optIns();
    expect(before).toMatchObject({ kind: "opt_in", actor: { kind: "contact" }, occurred_at: signedUp });
    expect(accounts).toMatchObject({ kind: "opt_in", mechanism: "unknown", actor: { kind: "account" } });
    // Concord's own profile write moves last_changed, not the person's act.
    await a.runtime.sleep(86_400_000);
    const [edit] = await session.apply([
      { kind: "update_contact", op_id: "u1", external_id: dated!.contact_id, first_name: "Dee" },
    ]);
    expect(edit).toMatchObject({ status: "succeeded" });
    const [after] = await optIns();
    expect(after?.occurred_at).toBe(signedUp);
  });

  it("a confirmation of a member added through the API, which has no signup time, says so: any opt-out before it can stand over it", async () => {
    const { a, session } = await account();
    // Another integration adds her pending through the API: Mailchimp keeps no signup time.
    const added = await a.api("POST", `/lists/${TEST_AUDIENCE}/members`, {
      email_address: "api@example.org",
      status: "pending",
    });
    expect(added.body).toMatchObject({ status: "pending", timestamp_signup: "" });
    await a.runtime.sleep(86_400_000);
    await a.act({ as: "contact", action: "confirm", email: "api@example.org" });
    const confirmedAt = a.runtime.now().toISOString();
    const read = async () => {
      const got = await session.get([String(added.body.contact_id)]);
      if (!got.ok) throw new Error(got.error.message);
      return got.value.consent[0];
    };
    expect(await read()).toMatchObject({
      kind: "opt_in",
      mechanism: "double_opt_in_confirmation",
      actor: { kind: "contact" },
      occurred_at: confirmedAt,
      of_signup_at: null,
    });
    // Months later an account user archives her and adds her back: the confirmation's IP stays on
    // the member and the opt-in time moves. Only the ledger can tell (an opt-out of hers made
    // elsewhere may precede it), so the observation still carries the undated sign-up.
    await a.runtime.sleep(90 * 86_400_000);
    const hash = createHash("md5").update("api@example.org").digest("hex");
    expect((await a.api("DELETE", `/lists/${TEST_AUDIENCE}/members/${hash}`)).status).toBe(204);
    const again = await a.api("PUT", `/lists/${TEST_AUDIENCE}/members/${hash}`, {
      email_address: "api@example.org",
      status_if_new: "subscribed",
      status: "subscribed",
    });
    expect(again.body).toMatchObject({ status: "subscribed", ip_opt: expect.stringMatching(/\S/) });
    expect(await read()).toMatchObject({
      kind: "opt_in",
      actor: { kind: "contact" },
      occurred_at: a.runtime.now().toISOString(),
      of_signup_at: null,
    });
  });

  it("a spam complaint a webhook announced stands for a member that reads only cleaned", async () => {
    const { a, session } = await account();
    const [m] = await a.seed([{ email: "abuse@example.org", status: "cleaned" }]);
    const changes = delivered({ type: "cleaned", "data[id]": m!.contact_id, "data[reason]": "abuse" });
    const got = await session.get([m!.contact_id], { announced: new Map([[m!.contact_id, changes]]) });
    if (!got.ok) throw new Error(got.error.message);
    expect(got.value.consent.map((c) => [c.kind, c.mechanism, c.actor.kind, c.occurred_at])).toEqual([
      ["deliverability", "unknown", "platform", expect.any(String)],
      ["opt_out", "spam_complaint", "contact", "2026-05-30T09:00:00.000Z"],
    ]);
  });

  it("an opt-out a delivery announced of another audience's member is not this audience's", async () => {
    const { a, session } = await account();
    const [here] = await a.seed([{ email: "both@example.org", status: "subscribed" }]);
    const gone = createHash("md5").update("gone@example.org").digest("hex");
    // A webhook left on an audience the connection kept in step before delivers its people's acts.
    const elsewhere = (email: string) =>
      delivered({
        type: "unsubscribe",
        "data[action]": "unsub",
        "data[email]": email,
        "data[list_id]": "bbbbbbbbbb",
      });
    const got = await session.get([here!.contact_id, gone], {
      announced: new Map([
        [here!.contact_id, elsewhere("both@example.org")],
        [gone, elsewhere("gone@example.org")],
      ]),
    });
    if (!got.ok) throw new Error(got.error.message);
    expect(got.value.consent.map((c) => [c.email, c.kind])).toEqual([["both@example.org", "opt_in"]]);
    // This audience's own delivery still stands for the member it can no longer read.
    const own = await session.get([gone], {
      announced: new Map([
        [
          gone,
          delivered({
            type: "unsubscribe",
            "data[action]": "unsub",
            "data[email]": "gone@example.org",
            "data[list_id]": TEST_AUDIENCE,
          }),
        ],
      ]),
    });
    expect(own.ok && own.value.consent.map((c) => [c.email, c.kind, c.record_gone])).toEqual([
      ["gone@example.org", "opt_out", true],
    ]);
  });

  it("a spam complaint a webhook announced stands for a member that reads unsubscribed without saying so, once", async () => {
    const { a, session } = await account();
    const [quiet, said] = await a.seed([
      { email: "quiet@example.org", status: "unsubscribed", unsubscribe: { by: "user", reason: "Too many" } },
      {
        email: "said@example.org",
        status: "unsubscribed",
        unsubscribe: { by: "user", via: "spam_complaint" },
      },
    ]);
    const announced = (id: string) =>
      delivered({ type: "unsubscribe", "data[id]": id, "data[action]": "unsub", "data[reason]": "abuse" });
    const got = await session.get([quiet!.contact_id, said!.contact_id], {
      announced: new Map([
        [quiet!.contact_id, announced(quiet!.contact_id)],
        [said!.contact_id, announced(said!.contact_id)],
      ]),
    });
    if (!got.ok) throw new Error(got.error.message);
    const mechanisms = (id: string) =>
      got.value.consent.filter((c) => c.external_id === id).map((c) => c.mechanism);
    expect(mechanisms(quiet!.contact_id)).toEqual(["unknown", "spam_complaint"]);
    // Its own reason already says so: the delivery adds nothing.
    expect(mechanisms(said!.contact_id)).toEqual(["spam_complaint"]);
  });

  it("reads how a member left: a spam complaint, an admin, the person; cleaned is deliverability", async () => {
    const { a, session } = await account();
    const [self, spam, admin, bounced] = await a.seed(
      ["self", "spam", "admin", "bounced"].map((k) => ({ email: `${k}@example.org`, status: "subscribed" })),
    );
    await a.act({
      as: "contact",
      action: "unsubscribe",
      email: "self@example.org",
      // The person's own words: quoting Mailchimp's wording for an admin does not make it the admin's.
      reason: "Too many emails. I was added by an admin without asking, via the API I suppose",
    });
    await a.act({ as: "contact", action: "spam_complaint", email: "spam@example.org" });
    await a.act({ as: "admin", action: "unsubscribe", email: "admin@example.org" });
    await a.act({ as: "system", action: "bounce", email: "bounced@example.org" });
    const got = await session.get([
      self!.contact_id,
      spam!.contact_id,
      admin!.contact_id,
      bounced!.contact_id,
    ]);
    if (!got.ok) throw new Error(got.error.message);
    const by = (id: string) => got.value.consent.find((c) => c.external_id === id)!;
    expect(by(self!.contact_id)).toMatchObject({
      kind: "opt_out",
      mechanism: "unknown",
      actor: { kind: "contact" },
      evidence: { reason: expect.stringMatching(/^Too many emails/) },
    });
    expect(by(spam!.contact_id)).toMatchObject({
      kind: "opt_out",
      mechanism: "spam_complaint",
      actor: { kind: "contact" },
    });
    expect(by(admin!.contact_id)).toMatchObject({
      kind: "opt_out",
      mechanism: "admin_edit",
      actor: { kind: "account" },
    });
    expect(by(bounced!.contact_id)).toMatchObject({ kind: "deliverability", deliverability: "cleaned" });
    const facts = got.value.records.find((r) => r.external_id === bounced!.contact_id)!.consent_state;
    expect(facts[0]).toMatchObject({ status: "none", label: "audience status: cleaned" });
  });

  it("an opt-out for an archived member is written and the member archived again: bringing it back brings it back unsubscribed", async () => {
    const { a, session } = await account();
    const [m] = await a.seed([{ email: "arch@example.org", status: "subscribed" }]);
    await a.act({ as: "admin", action: "archive", email: "arch@example.org" });
    const out = await session.apply([
      personsOptOut(a, "o-arch", m!.id, "arch@example.org", { kind: "account" }),
    ]);
    expect(out[0]).toMatchObject({ status: "succeeded", message: expect.stringContaining("archived again") });
    expect(await statusOf(a, "arch@example.org")).toBe("archived");
    // Any later write that brings the member back (here a field update) finds it unsubscribed.
    const update = await session.apply([
      { kind: "update_contact", op_id: "u-arch", external_id: m!.id, first_name: "Arch" },
    ]);
    expect(update[0]?.status).toBe("succeeded");
    expect(await statusOf(a, "arch@example.org")).toBe("unsubscribed");
  });

  it("reads and opts out of a tag past the 50 a member answer carries", async () => {
    const many = Array.from({ length: 55 }, (_, i) => `Tag ${i + 1}`);
    const a = await startMailchimpTestAccount({ audience: { tags: [...many, "Contract list"] } });
    running.push(a);
    const session = mailchimpManifest.connect(a.settings, a.runtime);
    const [m] = await a.seed([
      { email: "t@example.org", status: "subscribed", tags: [...many, "Contract list"] },
    ]);
    const lists = await session.lists();
    const tag = lists.ok ? lists.value.find((l) => l.name === "Contract list")!.external_id : "";
    const answer = await a.api("GET", `/lists/${TEST_AUDIENCE}/members/${m!.id}`);
    expect((answer.body as { tags: unknown[]; tags_count: number }).tags).toHaveLength(50);
    // Concord names a member by its contact id; the tag's write takes the subscriber hash alone.
    const read = await session.get([m!.contact_id]);
    expect(read.ok && read.value.records[0]!.list_ids).toContain(tag);
    const out = await session.apply([
      personsOptOut(a, "o-tag", m!.contact_id, "t@example.org", {
        kind: "construct",
        construct: { type: "tag", id: tag },
      }),
    ]);
    expect(out[0]).toMatchObject({ status: "succeeded" });
    expect(out[0]!.code).toBeUndefined();
    const after = await session.get([m!.contact_id]);
    expect(after.ok && after.value.records[0]!.list_ids).not.toContain(tag);
    expect(after.ok && after.value.records[0]!.list_ids).toHaveLength(55);
    // A tag as a list: its membership written for the member named by its contact id.
    for (const kind of ["add_list_members", "remove_list_members"] as const) {
      const [written] = await session.apply([
        { kind, op_id: `m-${kind}`, list_ids: [tag], external_ids: [m!.contact_id] },
      ]);
      expect(written).toMatchObject({ status: "succeeded" });
      const now = await session.get([m!.contact_id]);
      expect(now.ok && now.value.records[0]?.list_ids?.includes(tag)).toBe(kind === "add_list_members");
    }
  });

  it("taking a member out archives it, and says so only when it is out: a pending member Mailchimp will not archive fails", async () => {
    const { a, session } = await account();
    const people = ["sub", "gone", "bounced", "waiting"];
    const members = await a.seed([
      { email: "sub@example.org", status: "subscribed" },
      { email: "gone@example.org", status: "archived" },
      { email: "bounced@example.org", status: "cleaned" },
      { email: "waiting@example.org", status: "pending" },
    ]);
    const out = await session.apply(
      members.map((m, i) => ({
        kind: "remove_contact" as const,
        op_id: `rm-${people[i]}`,
        external_id: m.contact_id,
        email: `${people[i]}@example.org`,
        reason: "the CRM record ended",
      })),
    );
    expect(out.map((o) => [o.status, o.code ?? null])).toEqual([
      ["succeeded", null],
      ["succeeded", "already_applied"],
      ["succeeded", "already_applied"],
      ["failed", "conflict"],
    ]);
    expect(out[3]!.message).toContain("confirmation email");
    expect(await statusOf(a, "sub@example.org")).toBe("archived");
    expect(await statusOf(a, "waiting@example.org")).toBe("pending");
  });

  it("a group's opt-out for an archived member unticks the group and leaves the member archived, not subscribed", async () => {
    const { a, session } = await account();
    const [m] = await a.seed([{ email: "ga@example.org", status: "subscribed", interests: ["Appeals"] }]);
    await a.act({ as: "admin", action: "archive", email: "ga@example.org" });
    const out = await session.apply([
      personsOptOut(a, "o-ga", m!.id, "ga@example.org", {
        kind: "construct",
        construct: { type: "interest", id: "interest:int0000001" },
      }),
    ]);
    expect(out[0]).toMatchObject({ status: "succeeded", message: expect.stringContaining("archived again") });
    expect(await statusOf(a, "ga@example.org")).toBe("archived");
    const after = await session.get([m!.id]);
    expect(after.ok && after.value.records[0]).toMatchObject({ inactive: true, list_ids: [] });
  });

  it("a 403 without a JSON body (Mailchimp under exceptional load) is waited out; one with its problem document is not", async () => {
    const { a, session } = await account();
    const [m, n] = await a.seed([
      { email: "busy@example.org", status: "subscribed" },
      { email: "barred@example.org", status: "subscribed" },
    ]);
    const member = (email: string) =>
      `/3.0/lists/${TEST_AUDIENCE}/members/${createHash("md5").update(email).digest("hex")}`;
    await a.control("POST", "/__emulator/faults", {
      status: 403,
      count: 1,
      path_prefix: member("busy@example.org"),
      methods: ["PATCH"],
      body: "",
    });
    const global = { kind: "account" as const };
    expect(
      (await session.apply([personsOptOut(a, "o-busy", m!.id, "busy@example.org", global)]))[0],
    ).toMatchObject({ status: "succeeded" });
    expect(await statusOf(a, "busy@example.org")).toBe("unsubscribed");
    // A refusal Mailchimp explains is no matter of load: it fails at once, saying so.
    await a.control("POST", "/__emulator/faults", {
      status: 403,
      count: 1,
      path_prefix: member("barred@example.org"),
      methods: ["PATCH"],
      body: {
        type: "about:blank",
        title: "Forbidden",
        status: 403,
        detail: "You lack the necessary permissions.",
      },
    });
    expect(
      (await session.apply([personsOptOut(a, "o-barred", n!.id, "barred@example.org", global)]))[0],
    ).toMatchObject({ status: "failed", code: "forbidden" });
  });

  it("a group's opt-out that cannot archive the member again fails, saying it is back in the audience", async () => {
    const { a, session } = await account();
    const [m] = await a.seed([{ email: "gb@example.org", status: "subscribed", interests: ["Appeals"] }]);
    await a.act({ as: "admin", action: "archive", email: "gb@example.org" });
    await a.control("POST", "/__emulator/faults", {
      status: 400,
      count: 1,
      path_prefix: `/3.0/lists/${TEST_AUDIENCE}/members/`,
      methods: ["DELETE"],
    });
    const out = await session.apply([
      personsOptOut(a, "o-gb", m!.id, "gb@example.org", {
        kind: "construct",
        construct: { type: "interest", id: "interest:int0000001" },
      }),
    ]);
    expect(out[0]).toMatchObject({
      status: "failed",
      message: expect.stringContaining("Archive it in Mailchimp"),
    });
    expect(await statusOf(a, "gb@example.org")).toBe("subscribed");
  });

  it("opts out of a group (interest) standing for a topic, and writes a person's own opt-in to it only", async () => {
    const { a, session } = await account();
    const [m] = await a.seed([{ email: "g@example.org", status: "subscribed", interests: ["Appeals"] }]);
    const scope = { kind: "construct" as const, construct: { type: "interest", id: "interest:int0000001" } };
    const out = await session.apply([personsOptOut(a, "o1", m!.id, "g@example.org", scope)]);
    expect(out[0]?.status).toBe("succeeded");
    const after = await session.get([m!.id]);
    expect(after.ok && after.value.records[0]!.list_ids).toEqual([]);
    expect(await statusOf(a, "g@example.org")).toBe("subscribed");
    const optIn = (actor: "contact" | "account") =>
      session.apply([anOptIn(a, `in-${actor}`, m!.id, scope, actor)]);
    expect((await optIn("account"))[0]).toMatchObject({
      status: "failed",
      code: "consent_requires_contact_action",
    });
    expect((await optIn("contact"))[0]?.status).toBe("succeeded");
  });

  it("check refuses a topic naming a GDPR marketing permission the audience does not have, naming the ones it has", async () => {
    const a = await startMailchimpTestAccount({ audience: { marketing_permissions: true } });
    running.push(a);
    const checked = (name: string) =>
      mailchimpManifest
        .connect({ ...a.settings, constructs: [{ type: "marketing_permission", name }] }, a.runtime)
        .check();
    // No member yet: nothing shows the audience's permissions, and nothing is refused.
    expect((await checked("Direct Mail")).ok).toBe(true);
    await a.seed([{ email: "first@example.org", status: "subscribed" }]);
    expect((await checked("email")).ok).toBe(true);
    const refused = await checked("Direct Mail");
    expect(refused.ok).toBe(false);
    if (!refused.ok)
      expect(refused.error.message).toBe(
        "topics[].constructs: The Mailchimp audience has no GDPR marketing permission named “Direct Mail”; its permissions are “Email”, “Customized Online Advertising”.",
      );
  });

  it("withdraws a GDPR marketing permission standing for a topic, named by its text, and gives it again for the person's own opt-in only", async () => {
    const a = await startMailchimpTestAccount({ audience: { marketing_permissions: true } });
    running.push(a);
    const session = mailchimpManifest.connect(a.settings, a.runtime);
    const [m] = await a.seed([
      { email: "gdpr@example.org", status: "subscribed", marketing_permissions: ["Email"] },
    ]);
    const permission = async () => {
      const r = await session.get([m!.id]);
      if (!r.ok) throw new Error(r.error.message);
      return r.value.records[0]!.consent_state.filter((f) => f.source === "marketing_permissions");
    };
    // Each permission reads as a fact a topic can name by its text; not given is no consent.
    expect(await permission()).toEqual([
      expect.objectContaining({
        scope: { kind: "construct", construct: { type: "marketing_permission", id: "Email", name: "Email" } },
        status: "opted_in",
        requires_consent: true,
      }),
      expect.objectContaining({
        scope: {
          kind: "construct",
          construct: {
            type: "marketing_permission",
            id: "Customized Online Advertising",
            name: "Customized Online Advertising",
          },
        },
        status: "none",
        requires_consent: true,
      }),
    ]);
    const scope = { kind: "construct" as const, construct: { type: "marketing_permission", id: "email" } };
    const out = await session.apply([personsOptOut(a, "p1", m!.id, "gdpr@example.org", scope)]);
    expect(out[0]).toMatchObject({ status: "succeeded" });
    expect((await permission())[0]).toMatchObject({ status: "none" });
    // The member stays subscribed: only the permission is withdrawn.
    expect(await statusOf(a, "gdpr@example.org")).toBe("subscribed");
    const again = await session.apply([personsOptOut(a, "p2", m!.id, "gdpr@example.org", scope)]);
    expect(again[0]).toMatchObject({ status: "succeeded", code: "already_applied" });

    const optIn = (actor: "contact" | "account") =>
      session.apply([anOptIn(a, `pin-${actor}`, m!.id, scope, actor)]);
    expect((await optIn("account"))[0]).toMatchObject({
      status: "failed",
      code: "consent_requires_contact_action",
    });
    expect((await permission())[0]).toMatchObject({ status: "none" });
    expect((await optIn("contact"))[0]?.status).toBe("succeeded");
    expect((await permission())[0]).toMatchObject({ status: "opted_in" });
    // An archived member is not brought back to the audience for one purpose's consent.
    await session.apply([personsOptOut(a, "p4", m!.id, "gdpr@example.org", scope)]);
    await a.act({ as: "admin", action: "archive", email: "gdpr@example.org" });
    expect((await optIn("contact"))[0]).toMatchObject({ status: "failed", code: "conflict" });
    expect(await statusOf(a, "gdpr@example.org")).toBe("archived");

    // A permission the audience does not have fails, naming the ones it has.
    const unknown = await session.apply([
      personsOptOut(a, "p3", m!.id, "gdpr@example.org", {
        kind: "construct",
        construct: { type: "marketing_permission", id: "Direct Mail" },
      }),
    ]);
    expect(unknown[0]).toMatchObject({
      status: "failed",
      code: "validation_failed",
      message: expect.stringContaining(
        "no GDPR marketing permission named “Direct Mail”; its permissions are “Email”, “Customized Online Advertising”",
      ),
    });
  });

  it("changes an address once: a retry after the change answers already applied, by the same contact id", async () => {
    const { a, session } = await account();
    const [m] = await a.seed([{ email: "old@example.org", status: "subscribed" }]);
    const change: ConnectorOperation = {
      kind: "change_email",
      op_id: "ce",
      external_id: m!.contact_id,
      old_email: "old@example.org",
      new_email: "new@example.org",
    };
    expect((await session.apply([change]))[0]).toMatchObject({
      status: "succeeded",
      external_id: m!.contact_id,
    });
    expect((await session.apply([change]))[0]).toMatchObject({
      status: "succeeded",
      code: "already_applied",
    });
    const got = await session.get([m!.contact_id]);
    expect(got.ok && got.value.records.map((r) => [r.external_id, r.emails[0]?.address])).toEqual([
      [m!.contact_id, "new@example.org"],
    ]);
  });

  it("says what is missing when a connection has neither an API key nor a token", async () => {
    const { a } = await account();
    const none = await mailchimpManifest
      .connect({ ...a.settings, credentials: { get: async () => ({}), save: async () => {} } }, a.runtime)
      .check();
    expect(none).toMatchObject({ ok: false, error: { code: "auth_missing" } });
    if (!none.ok) expect(none.error.message).toMatch(/api_key.*access_token with dc/);
  });

  it("asks an audience with several to name one, and names them", async () => {
    const { a } = await account();
    await a.control("POST", "/__emulator/seed", { audience: { id: "bbbbbbbbbb", name: "Events" } });
    const unnamed = await mailchimpManifest.connect(a.settings, a.runtime).check();
    expect(unnamed).toMatchObject({ ok: false, error: { code: "validation_failed" } });
    if (!unnamed.ok) expect(unnamed.error.message).toMatch(/options\.audience.*“Events” \(bbbbbbbbbb\)/);
    const named = await mailchimpManifest
      .connect({ ...a.settings, options: { audience: "Events", overlap_seconds: 300 } }, a.runtime)
      .check();
    expect(named).toMatchObject({ ok: true, value: { account_label: expect.stringContaining("Events") } });
  });
});

describe("registering Concord's webhook", () => {
  it("subscribes the receiver with the secret in its URL, one webhook for people's acts and one for the account's, once, and says why when Mailchimp cannot reach it", async () => {
    const { a } = await account();
    const receiver = createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/mc`;
      // An earlier Concord's single webhook for both sources: replaced by the two.
      await a.api("POST", `/lists/${TEST_AUDIENCE}/webhooks`, {
        url: `${url}?key=s3cret`,
        sources: { user: true, admin: true, api: false },
      });
      const first = await registerMailchimpWebhook(a.settings, a.runtime, url, "s3cret");
      expect(first).toMatchObject({ ok: true, value: { created: 2, kept: 0 } });
      const again = await registerMailchimpWebhook(a.settings, a.runtime, url, "s3cret");
      expect(again).toMatchObject({ ok: true, value: { created: 0, kept: 2 } });
      const hooks = await a.api("GET", `/lists/${TEST_AUDIENCE}/webhooks`);
      expect(
        hooks.body.webhooks.map((w: { url: string; sources: Record<string, boolean> }) => [w.url, w.sources]),
      ).toEqual([
        [`${url}?key=s3cret&by=user`, { user: true, admin: false, api: false }],
        [`${url}?key=s3cret&by=admin`, { user: false, admin: true, api: false }],
      ]);
      // The secret rotated: the two are made with the new one, and those with the old removed.
      expect(await registerMailchimpWebhook(a.settings, a.runtime, url, "n3w-secret")).toMatchObject({
        ok: true,
        value: { created: 2, kept: 0, removed: 2 },
      });
      expect(
        (await a.api("GET", `/lists/${TEST_AUDIENCE}/webhooks`)).body.webhooks.map(
          (w: { url: string }) => w.url,
        ),
      ).toEqual([`${url}?key=n3w-secret&by=user`, `${url}?key=n3w-secret&by=admin`]);
      const unreachable = await registerMailchimpWebhook(
        a.settings,
        a.runtime,
        "http://127.0.0.1:9/none",
        "s3cret",
      );
      expect(unreachable).toMatchObject({ ok: false, error: { code: "validation_failed" } });
      if (!unreachable.ok) expect(unreachable.error.message).toMatch(/couldn't verify the URL/);
    } finally {
      receiver.close();
    }
  });

  it("removes the receiver's webhooks from an audience the connection kept in step before, and no one else's", async () => {
    const { a } = await account();
    const receiver = createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/mc`;
      await a.control("POST", "/__emulator/seed", { audience: { id: "bbbbbbbbbb", name: "Events" } });
      const onEvents = { ...a.settings, options: { audience: "Events", overlap_seconds: 300 } };
      const onMain = { ...a.settings, options: { audience: TEST_AUDIENCE, overlap_seconds: 300 } };
      // The connection kept Events in step; another integration has a webhook there too.
      expect(await registerMailchimpWebhook(onEvents, a.runtime, url, "old")).toMatchObject({
        ok: true,
        value: { created: 2, removed: 0 },
      });
      const theirs = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/their-hook`;
      await a.api("POST", `/lists/bbbbbbbbbb/webhooks`, { url: theirs, sources: { user: true } });
      // Now it keeps the main audience in step.
      expect(await registerMailchimpWebhook(onMain, a.runtime, url, "s3cret")).toMatchObject({
        ok: true,
        value: { created: 2, kept: 0, removed: 2 },
      });
      const left = await a.api("GET", `/lists/bbbbbbbbbb/webhooks`);
      expect(left.body.webhooks.map((w: { url: string }) => w.url)).toEqual([theirs]);
      expect(await registerMailchimpWebhook(onMain, a.runtime, url, "s3cret")).toMatchObject({
        ok: true,
        value: { created: 0, kept: 2, removed: 0 },
      });
    } finally {
      receiver.close();
    }
  });
});

describe("Mailchimp webhooks", () => {
  const request = (method: string, query: Record<string, string>, body = "") => ({
    method,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    query,
    raw_body: body,
  });

  it("answers the validator's GET, refuses a wrong key, and turns a delivery into a re-read hint", () => {
    expect(handleMailchimpWebhook(request("GET", { key: "s3cret" }), "s3cret")).toMatchObject({
      kind: "handshake",
      status: 200,
    });
    expect(handleMailchimpWebhook(request("POST", { key: "nope" }), "s3cret")).toMatchObject({
      kind: "rejected",
      status: 401,
    });
    const body = new URLSearchParams({
      type: "unsubscribe",
      fired_at: "2026-03-02 12:00:00",
      "data[id]": "8b5a6a28fc840441be692d74a81ccd1a",
      "data[action]": "unsub",
      "data[reason]": "abuse",
    }).toString();
    const handled = handleMailchimpWebhook(request("POST", { key: "s3cret" }, body), "s3cret");
    expect(handled).toMatchObject({
      kind: "events",
      changes: [
        {
          type: "unsubscribe",
          external_id: "8b5a6a28fc840441be692d74a81ccd1a",
          occurred_at: "2026-03-02T12:00:00.000Z",
          change: "consent_changed",
        },
      ],
    });
    const email = new URLSearchParams({
      type: "upemail",
      fired_at: "2026-03-02 12:00:00",
      "data[new_id]": "new",
      "data[old_email]": "a@x.org",
      "data[new_email]": "b@x.org",
    }).toString();
    // The member is found by the subscriber hash of its address, whatever the delivery's ids are.
    expect(handleMailchimpWebhook(request("POST", { key: "s3cret" }, email), "s3cret")).toMatchObject({
      changes: [{ external_id: subscriberHash("b@x.org"), change: "email_changed" }],
    });
    const named = new URLSearchParams({
      type: "unsubscribe",
      fired_at: "2026-03-02 12:00:00",
      "data[id]": "8a25ff1d98",
      "data[email]": "Ann@Example.org",
      "data[action]": "unsub",
    }).toString();
    // The opt-out keeps the address it was for: a member deleted for good before the re-read is
    // found by no read.
    expect(handleMailchimpWebhook(request("POST", { key: "s3cret" }, named), "s3cret")).toMatchObject({
      changes: [
        {
          external_id: subscriberHash("ann@example.org"),
          change: "consent_changed",
          opt_out: { email: "Ann@Example.org" },
        },
      ],
    });
    expect(handleMailchimpWebhook(request("POST", { key: "s3cret" }, "junk"), "s3cret")).toMatchObject({
      kind: "rejected",
      status: 400,
    });
  });
});
