// `explainContact` on SQLite and PostgreSQL: the decision per pair connection with its rule and
// deciding event, the timeline with provenance, what each system shows, review items and operations.
import { afterEach, beforeEach, expect, it } from "vitest";
import { ConcordConfigShapeSchema, type ConcordConfig } from "../config/concord-config";
import type { Contact, Store } from "../store/ports";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import type { ConsentEventDraft } from "../ledger/consent-event-id";
import { appendConsentEvents, eraseEvidence } from "../ledger/consent-ledger";
import {
  explainContact,
  formatExplanation,
  type ConnectionState,
  type ExplainResult,
  type Explanation,
} from "./explain-contact";
import { appealsTopic, reCcPair } from "../../test/support/world-config";

const NOW = "2026-06-01T12:00:00.000Z";

const config: ConcordConfig = ConcordConfigShapeSchema.parse({
  connections: [
    { id: "re-nxt", system: "blackbaud-renxt" },
    { id: "cc-main", system: "constant-contact" },
    { id: "cc-appeals", system: "constant-contact" },
  ],
  topics: [appealsTopic()],
  pairs: [reCcPair()],
});

const base = (contact_id: string, occurred_at: string) => ({
  contact_id,
  channel: "email" as const,
  occurred_at,
  observed_at: new Date(Date.parse(occurred_at) + 60_000).toISOString(),
});

/** A Constant Contact footer unsubscribe in cc-main: a global opt-out by the person. */
const footerUnsubscribe = (contact_id: string, at: string): ConsentEventDraft => ({
  ...base(contact_id, at),
  kind: "opt_out",
  scope: { kind: "global" },
  source: { system: "constant-contact", connection: "cc-main" },
  mechanism: "unsubscribe_link",
  actor: { kind: "contact" },
  evidence: { source_record_id: "cc-contact-1", ip: "203.0.113.7", user_agent: "Mail/1.0" },
});

const appealsUnsubscribe = (contact_id: string, at: string): ConsentEventDraft => ({
  ...base(contact_id, at),
  kind: "opt_out",
  scope: { kind: "topic", topic: "appeals" },
  source: { system: "constant-contact", connection: "cc-appeals" },
  mechanism: "unsubscribe_link",
  actor: { kind: "contact" },
  evidence: { source_record_id: "cc-appeals-1" },
});

/** An admin clears "Requests No Email" in Raiser's Edge: a resubscribe request, not an opt-in. */
const adminCleared = (contact_id: string, at: string): ConsentEventDraft => ({
  ...base(contact_id, at),
  kind: "resubscribe_requested",
  scope: { kind: "global" },
  source: { system: "blackbaud-renxt", connection: "re-nxt" },
  mechanism: "admin_edit",
  actor: { kind: "account", user: "gift.officer" },
  evidence: { source_record_id: "280", reason: "Requests No Email cleared" },
});

/** The person's own confirmation of Constant Contact's resubscribe email. */
const ownConfirmation = (contact_id: string, at: string): ConsentEventDraft => ({
  ...base(contact_id, at),
  kind: "opt_in",
  basis: "express",
  scope: { kind: "global" },
  source: { system: "constant-contact", connection: "cc-main" },
  mechanism: "resubscribe_confirmation",
  actor: { kind: "contact" },
  evidence: { source_record_id: "cc-contact-1", form_wording: "Yes, email me again" },
});

const found = (r: ExplainResult): Extract<ExplainResult, { kind: "found" }> => {
  if (r.kind !== "found") throw new Error(`expected found, got ${JSON.stringify(r)}`);
  return r;
};

const only = (r: ExplainResult): Explanation => {
  const f = found(r);
  expect(f.people).toHaveLength(1);
  return f.people[0]!;
};

const line = (p: Explanation, connection: string, scope = "all email"): ConnectionState => {
  const s = p.pairs[0]?.connections.find((c) => c.connection_id === connection && c.scope_label === scope);
  if (!s) throw new Error(`no state for ${connection} ${scope}`);
  return s;
};

describeOnBackends("explainContact", (backend) => {
  let t: TestStore;
  let store: Store;
  let ada: Contact;

  beforeEach(async () => {
    t = await backend.create({ clock: () => new Date(NOW) });
    store = t.store;
    ada = await store.contacts.create({
      type: "person",
      given_name: "Ada",
      family_name: "Lovelace",
      primary_email: "ada@example.org",
      email_match_key: "ada@example.org",
    });
    await store.contacts.addEmail(ada.id, "ada@example.org", "ada@example.org");
    await store.contacts.addEmail(ada.id, "ada@old.example.org", "ada@old.example.org");
    await store.links.create({ connection_id: "re-nxt", external_id: "280", contact_id: ada.id });
    await store.links.create({ connection_id: "cc-main", external_id: "cc-contact-1", contact_id: ada.id });
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const append = async (...drafts: ConsentEventDraft[]) => {
    const results = await appendConsentEvents(store, drafts);
    return results.map((r) => {
      if (r.kind !== "appended") throw new Error(JSON.stringify(r));
      return r.event;
    });
  };

  it("a footer unsubscribe in cc-main: not sendable by global_opt_out, decided by that event, with its provenance", async () => {
    const [unsub] = await append(footerUnsubscribe(ada.id, "2026-03-01T10:00:00.000Z"));
    await store.snapshots.put({
      connection_id: "cc-main",
      external_id: "cc-contact-1",
      content_hash: "h1",
      payload: {
        external_id: "cc-contact-1",
        kind: "individual",
        emails: [{ address: "ada@example.org", primary: true }],
        first_name: "Ada",
        last_name: "Lovelace",
        fields: { job_title: "Analyst" },
        consent_state: [
          {
            channel: "email",
            scope: { kind: "account" },
            status: "opted_out",
            source: "permission_to_send",
            label: "permission to send: unsubscribed (opted out by the contact)",
            role: "state",
          },
        ],
        list_ids: ["list-1"],
        updated_at: "2026-03-01T10:00:00.000Z",
      },
    });
    await store.snapshots.put({
      connection_id: "re-nxt",
      external_id: "280",
      content_hash: "h2",
      payload: {
        external_id: "280",
        kind: "individual",
        emails: [{ address: "ada@example.org", primary: true }],
        fields: { lookup_id: "L-280" },
        consent_state: [
          {
            channel: "email",
            scope: { kind: "global" },
            status: "opted_out",
            source: "requests_no_email",
            label: "Requests No Email: yes",
            role: "state",
            unversioned: true,
          },
          {
            channel: "email",
            scope: { kind: "global" },
            status: "opted_out",
            source: "emailaddress:1.do_not_email",
            label: "Do not email on ada@example.org: yes",
            role: "state",
            unversioned: true,
          },
          {
            channel: "email",
            scope: { kind: "construct", construct: { type: "consent_category", id: "Appeals" } },
            status: "opted_out",
            source: "consent_record",
            label: 'Email consent, category "Appeals": OptOut',
            role: "state",
          },
        ],
        updated_at: "2026-03-02T10:00:00.000Z",
      },
    });

    const result = await explainContact(store, config, "  Ada@Example.org ");
    const p = only(result);
    expect(found(result)).toMatchObject({ email: "ada@example.org", as_of: NOW, shared_address_note: null });
    expect(p.matched_by).toBe("primary_email");
    expect(p.contact).toMatchObject({
      id: ada.id,
      name: "Ada Lovelace",
      primary_email: "ada@example.org",
      other_emails: ["ada@old.example.org"],
    });

    const main = line(p, "cc-main");
    expect(main).toMatchObject({
      role: "platform",
      system: "constant-contact",
      sendable: false,
      status: "opted_out",
      rule: "global_opt_out",
      decided_by: { event_id: unsub!.event.id },
      pending_resubscribe: null,
    });
    expect(main.decided_by?.description).toBe(
      "2026-03-01 10:00:00Z opt-out of all email in cc-main (Constant Contact, by the contact, unsubscribe link)",
    );
    expect(main.open_opt_outs.map((o) => o.event_id)).toEqual([unsub!.event.id]);
    // A global opt-out covers the appeals account and the CRM's scopes too.
    expect(line(p, "cc-appeals", "topic appeals")).toMatchObject({ sendable: false, rule: "global_opt_out" });
    expect(line(p, "re-nxt", "topic appeals")).toMatchObject({
      role: "crm",
      construct: "consent category “Appeals”",
    });

    expect(p.timeline).toHaveLength(1);
    expect(p.timeline[0]).toMatchObject({
      event_id: unsub!.event.id,
      kind: "opt_out",
      scope: { kind: "global" },
      occurred_at: "2026-03-01T10:00:00.000Z",
      observed_at: "2026-03-01T10:01:00.000Z",
      recorded_at: NOW,
      source: { system: "constant-contact", connection: "cc-main", system_label: "Constant Contact" },
      mechanism: "unsubscribe_link",
      actor: { kind: "contact" },
      initiated_by: "contact",
      evidence_erased_at: null,
      ledger: { seq: unsub!.seq, hash: unsub!.hash, hash_prefix: unsub!.hash.slice(0, 12) },
      counted: true,
    });
    expect(p.timeline[0]?.evidence_summary).toContain("IP 203.0.113.7");

    const cc = p.links.find((l) => l.connection_id === "cc-main");
    expect(cc?.snapshot?.shows).toMatchObject({
      kind: "record",
      consent: [
        {
          source: "permission_to_send",
          status: "opted_out",
          role: "state",
          scope_label: "the whole account",
          label: "permission to send: unsubscribed (opted out by the contact)",
        },
      ],
      list_ids: ["list-1"],
    });
    const re = p.links.find((l) => l.connection_id === "re-nxt");
    expect(re?.system_label).toBe("Raiser's Edge NXT");
    expect(re?.snapshot?.shows).toMatchObject({
      kind: "record",
      emails: [{ address: "ada@example.org", primary: true }],
    });

    const text = formatExplanation(result);
    expect(text).toMatch(/cc-main \(all email\)\s+NOT SENDABLE {2}rule global_opt_out — decided by evt_/);
    expect(text).toContain(unsub!.event.id);
    expect(text).toContain(`ledger seq ${unsub!.seq}, hash ${unsub!.hash.slice(0, 12)}`);
    expect(text).toContain("Requests No Email: yes");
    expect(text).toContain('Email consent, category "Appeals": OptOut');
    expect(text).toContain("Do not email on ada@example.org: yes");
    expect(text).toContain("email ada@example.org (primary)");
    expect(text).toContain("permission to send: unsubscribed");
    // State comes before the history, the history before the systems.
    expect(text.indexOf("Current state")).toBeLessThan(text.indexOf("Timeline"));
    expect(text.indexOf("Timeline")).toBeLessThan(text.indexOf("What each system shows"));
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it("an appeals opt-out: cc-appeals not sendable (topic_opt_out), cc-main still sendable; SMS stays apart", async () => {
    const [out] = await append(appealsUnsubscribe(ada.id, "2026-04-01T09:00:00.000Z"), {
      ...footerUnsubscribe(ada.id, "2026-04-02T09:00:00.000Z"),
      channel: "sms",
      mechanism: "written_request",
    });
    const p = only(await explainContact(store, config, "ada@example.org"));
    // An SMS opt-out is in the timeline, named as such, and leaves email decisions alone.
    expect(p.timeline.map((e) => e.description)).toContain(
      "2026-04-02 09:00:00Z opt-out of all SMS in cc-main (Constant Contact, by the contact, written request)",
    );
    expect(line(p, "cc-appeals", "topic appeals")).toMatchObject({
      sendable: false,
      rule: "topic_opt_out",
      decided_by: { event_id: out!.event.id },
    });
    expect(line(p, "cc-main")).toMatchObject({ sendable: true, status: "no_preference", rule: "no_opt_out" });
    expect(line(p, "re-nxt", "topic appeals")).toMatchObject({ sendable: false, rule: "topic_opt_out" });
    expect(p.scopes.map((s) => [s.scope_label, s.sendable])).toEqual([
      ["all email", true],
      ["topic appeals", false],
    ]);
  });

  it("an admin's resubscribe request after the opt-out: still not sendable, waiting for the person to confirm", async () => {
    const [, request] = await append(
      footerUnsubscribe(ada.id, "2026-03-01T10:00:00.000Z"),
      adminCleared(ada.id, "2026-04-10T08:00:00.000Z"),
    );
    const result = await explainContact(store, config, "ada@example.org");
    const main = line(only(result), "cc-main");
    expect(main).toMatchObject({
      sendable: false,
      rule: "global_opt_out",
      pending_resubscribe: { event_id: request!.event.id, requested_at: "2026-04-10T08:00:00.000Z" },
    });
    expect(main.rule_explanation).toContain("Only the person's own later opt-in");
    const text = formatExplanation(result);
    expect(text).toContain(
      `waiting for the person to confirm: resubscribe requested 2026-04-10 08:00:00Z (${request!.event.id})`,
    );
    expect(text).toContain(
      "resubscribe request for all email in re-nxt (Raiser's Edge NXT, by the account (gift.officer), admin edit)",
    );
  });

  it("the person's own opt-in after the opt-out: sendable by lifted_by_contact_opt_in; --as-of before it shows the opt-out", async () => {
    const [, , optIn] = await append(
      footerUnsubscribe(ada.id, "2026-03-01T10:00:00.000Z"),
      adminCleared(ada.id, "2026-04-10T08:00:00.000Z"),
      ownConfirmation(ada.id, "2026-04-12T18:30:00.000Z"),
    );
    const now = only(await explainContact(store, config, "ada@example.org"));
    expect(line(now, "cc-main")).toMatchObject({
      sendable: true,
      status: "opted_in",
      rule: "lifted_by_contact_opt_in",
      decided_by: { event_id: optIn!.event.id },
      pending_resubscribe: null,
      open_opt_outs: [],
    });
    expect(now.timeline.map((e) => e.kind)).toEqual(["opt_out", "resubscribe_requested", "opt_in"]);

    const before = await explainContact(store, config, "ada@example.org", { as_of: "2026-04-11" });
    const then = only(before);
    expect(found(before)).toMatchObject({ as_of: "2026-04-11T23:59:59.999Z", as_of_requested: true });
    expect(line(then, "cc-main")).toMatchObject({ sendable: false, rule: "global_opt_out" });
    expect(then.timeline.map((e) => e.counted)).toEqual([true, true, false]);
    expect(formatExplanation(before)).toContain("[after as-of: not counted]");
  });

  it("finds the contact by an older, secondary address and says so", async () => {
    const result = await explainContact(store, config, "ADA@old.example.org");
    const p = only(result);
    expect(p.contact.id).toBe(ada.id);
    expect(p.matched_by).toBe("secondary_email");
    expect(formatExplanation(result)).toContain("found by an older or secondary address");
  });

  it("not found, and an invalid address, are values with their own kinds", async () => {
    expect(await explainContact(store, config, "nobody@example.org")).toMatchObject({
      kind: "not_found",
      email: "nobody@example.org",
    });
    expect(await explainContact(store, config, "not an address")).toMatchObject({
      kind: "invalid_email",
      reason: "contains_whitespace",
    });
    expect(await explainContact(store, config, "ada@example.org", { as_of: "yesterday" })).toMatchObject({
      kind: "invalid_as_of",
    });
  });

  it("an organisation and a person sharing an address are both explained, with a note", async () => {
    const org = await store.contacts.create({
      type: "organization",
      organization_name: "Analytical Engines Ltd",
      primary_email: "ada@example.org",
      email_match_key: "ada@example.org",
    });
    const result = found(await explainContact(store, config, "ada@example.org"));
    expect(result.people.map((p) => p.contact.id).sort()).toEqual([ada.id, org.id].sort());
    expect(result.shared_address_note).toContain("an organisation and a person");
    expect(formatExplanation(result)).toContain("Analytical Engines Ltd — organisation");
  });

  it("says when evidence was erased, and shows an unrecognised snapshot raw", async () => {
    await append(footerUnsubscribe(ada.id, "2026-03-01T10:00:00.000Z"));
    await eraseEvidence(store, ada.id);
    await store.snapshots.put({
      connection_id: "cc-main",
      external_id: "cc-contact-1",
      content_hash: "h3",
      payload: { something: "else" },
    });
    const result = await explainContact(store, config, "ada@example.org");
    const p = only(result);
    expect(p.timeline[0]?.evidence_summary).toMatch(/^evidence erased on /);
    expect(p.links.find((l) => l.connection_id === "cc-main")?.snapshot?.shows).toMatchObject({
      kind: "unparsed",
      raw: { something: "else" },
    });
    const text = formatExplanation(result);
    expect(text).toContain("evidence: evidence erased on");
    expect(text).toContain("unrecognised record");
  });

  it("lists the contact's open review items and recent operations with their outcome", async () => {
    const other = await store.contacts.create({ type: "person", given_name: "Grace" });
    await store.reviewItems.open({
      key: "k1",
      kind: "ambiguous_identity",
      contact_id: null,
      connection_id: "cc-main",
      external_id: "cc-x",
      detail: { reason: "several_contacts_share_email", candidate_contact_ids: [ada.id, other.id] },
    });
    await store.reviewItems.open({
      key: "k2",
      kind: "conflict",
      contact_id: other.id,
      detail: { reason: "not about Ada" },
    });
    const run = await store.runs.create({ kind: "sync", pair_id: "re-cc" });
    const plan = await store.plans.save({ run_id: run.id, pair_id: "re-cc", plan: {}, counts: {} });
    await store.operations.insertMany([
      {
        id: "op_single_ada",
        plan_id: plan.id,
        kind: "record_opt_out",
        target_connection: "re-nxt",
        contact_id: ada.id,
        payload: {
          contact_ids: [ada.id],
          reason: { code: "opt_out_to_crm", message: "An opt-out from cc-main the CRM does not show yet." },
        },
      },
      {
        id: "op_bulk_import",
        plan_id: plan.id,
        kind: "upsert_contacts",
        target_connection: "cc-main",
        contact_id: null,
        payload: { contact_ids: [other.id, ada.id], reason: { code: "new_contacts", message: "New." } },
      },
      {
        id: "op_other_grace",
        plan_id: plan.id,
        kind: "upsert_contacts",
        target_connection: "cc-main",
        contact_id: null,
        payload: { contact_ids: [other.id], reason: { code: "new_contacts", message: "New." } },
      },
    ]);
    await store.outcomes.record({ operation_id: "op_single_ada", status: "succeeded", detail: {} });
    await store.operations.setStatus("op_single_ada", "succeeded");

    const result = await explainContact(store, config, "ada@example.org");
    const p = only(result);
    expect(p.review_items).toHaveLength(1);
    expect(p.review_items[0]).toMatchObject({ kind: "ambiguous_identity", connection_id: "cc-main" });
    expect(p.review_items[0]?.summary).toContain("several_contacts_share_email");
    expect(p.recent_operations.map((o) => o.id).sort()).toEqual(["op_bulk_import", "op_single_ada"]);
    expect(p.recent_operations.find((o) => o.id === "op_single_ada")).toMatchObject({
      status: "succeeded",
      reason_code: "opt_out_to_crm",
      last_outcome: { attempt: 1, status: "succeeded" },
    });
    expect(p.recent_operations.find((o) => o.id === "op_bulk_import")).toMatchObject({
      status: "pending",
      contact_count: 2,
      last_outcome: null,
    });
    const text = formatExplanation(result);
    expect(text).toContain("Open review items");
    expect(text).toContain("record_opt_out on re-nxt: succeeded; attempt 1: succeeded");
  });
});
