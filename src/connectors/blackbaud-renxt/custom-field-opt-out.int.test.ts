/**
 * A Yes/No constituent custom field standing for a topic (an organisation's own opt-out checkbox):
 * the connector reads it as a consent fact, finds changes that move no modification date through
 * SKY's lagging all-constituents list, writes opt-outs into it and refuses an opt-in nobody asked for.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorOperation, ConnectorSession, ExternalRecord, ReadPage } from "../connector";
import { startEmulatorFixture, type EmulatorFixture } from "../../../test/support/connectors/blackbaud-renxt";
import { blackbaudRenxtManifest } from "./manifest";

const FIELD = "Newsletter opt-out";
const LAG_MS = 30 * 60_000;
let f: EmulatorFixture;
let session: ConnectorSession;

beforeEach(async () => {
  // SKY's all-constituents lists show a change about 30 minutes after it (reference/apis.md).
  f = await startEmulatorFixture(undefined, { allConstituentsListLatencyMs: LAG_MS });
  session = blackbaudRenxtManifest.connect(
    { ...f.settings(), constructs: [{ type: "custom_field", name: FIELD }] },
    f.runtime,
  );
});
afterEach(async () => {
  await f.close();
});

async function read(s: ConnectorSession, checkpoint: ReadPage["checkpoint"] | null): Promise<ReadPage[]> {
  const pages: ReadPage[] = [];
  for await (const p of s.read(checkpoint)) {
    if (!p.ok) throw new Error(`${p.error.code}: ${p.error.message}`);
    pages.push(p.value);
  }
  return pages;
}
/** An admin sets the field to Yes on the constituent. */
const adminTicks = (id: string) =>
  f.control("/__emulator/act", {
    as: "admin",
    action: "set_custom_field",
    constituent_id: id,
    category: FIELD,
    value: true,
  });
const fieldFact = (r: ExternalRecord | undefined) =>
  r?.consent_state.find((c) => c.scope.kind === "construct" && c.scope.construct.type === "custom_field");
const optOut = (id: string, n: number): ConnectorOperation => ({
  kind: "record_opt_out",
  op_id: `op_field_${n}`,
  external_id: id,
  email: "ada@example.org",
  scope: { kind: "construct", construct: { type: "custom_field", id: FIELD, name: FIELD } },
  initiated_by: "contact",
  occurred_at: "2026-03-02T11:59:00.000Z",
  origin: { system: "constant-contact", connection: "cc-main", mechanism: "unsubscribe_link" },
});

/** An opt-in of the field: an admin's clear, or the person's own sign-up with its reference. */
const optIn = (id: string, mechanism: "admin_edit" | "signup_form", n: number): ConnectorOperation => ({
  kind: "record_opt_in",
  op_id: `op_in_${n}`,
  external_id: id,
  scope: { kind: "construct", construct: { type: "custom_field", id: FIELD, name: FIELD } },
  occurred_at: "2026-03-02T12:30:00.000Z",
  origin: {
    system: "constant-contact",
    connection: "cc-main",
    mechanism,
    ...(mechanism === "admin_edit"
      ? { actor: "account" as const }
      : { actor: "contact" as const, request_reference: "form-42" }),
  },
});

describe("an opt-out custom field", () => {
  it("is read as an unversioned consent fact and an opt-out observation", async () => {
    const id = await f.createConstituent("ada@example.org", "Ada", "Lovelace");
    await adminTicks(id);
    const pages = await read(session, null);
    const record = pages.flatMap((p) => p.records).find((r) => r.external_id === id);
    expect(fieldFact(record)).toMatchObject({
      status: "opted_out",
      role: "state",
      unversioned: true,
      label: `${FIELD}: Yes`,
      scope: { kind: "construct", construct: { type: "custom_field", id: FIELD } },
    });
    const observed = pages.flatMap((p) => p.consent).filter((o) => o.external_id === id);
    expect(observed).toEqual([
      expect.objectContaining({
        kind: "opt_out",
        actor: { kind: "account" },
        mechanism: "admin_edit",
        scope: { kind: "construct", construct: { type: "custom_field", id: FIELD } },
      }),
    ]);
    // A constituent without the field shows it as not set, so a deleted "Yes" reads as cleared.
    const other = await f.createConstituent("bob@example.org", "Bob", "Example");
    const again = await read(session, null);
    expect(fieldFact(again.flatMap((p) => p.records).find((r) => r.external_id === other))).toMatchObject({
      status: "none",
      label: `${FIELD}: not set`,
    });
  });

  it("finds a change that moves no modification date, through the lagging all-constituents list", async () => {
    const id = await f.createConstituent("ada@example.org", "Ada", "Lovelace");
    // Someone else changes an hour later: Ada falls outside the constituent pass's overlap.
    f.clock.advance(3_600_000);
    await f.createConstituent("bob@example.org", "Bob", "Example");
    f.clock.advance(60_000);
    const first = await read(session, null);
    const checkpoint = first.at(-1)!.checkpoint;
    f.clock.advance(60_000);
    await adminTicks(id);
    const constituent = (await f.api("GET", `/constituent/v1/constituents/${id}`)).body as {
      date_modified: string;
    };
    expect(Date.parse(constituent.date_modified)).toBeLessThan(Date.parse(checkpoint.value) + 1);

    // Straight after the change SKY's list does not show it yet; 31 minutes later it does, and the
    // read still asks far enough back to find it.
    f.clock.advance(60_000);
    const early = await read(session, checkpoint);
    expect(fieldFact(early.flatMap((p) => p.records).find((r) => r.external_id === id))).toBeUndefined();
    f.clock.advance(LAG_MS + 60_000);
    const late = await read(session, early.at(-1)!.checkpoint);
    expect(fieldFact(late.flatMap((p) => p.records).find((r) => r.external_id === id))).toMatchObject({
      status: "opted_out",
    });
    // Those pages leave the checkpoint where the constituent pass puts it.
    expect(late[0]!.checkpoint.value).toBe(early.at(-1)!.checkpoint.value);
  });

  it("records an opt-out by ticking the field, once, with Concord's comment, and reads it back as Concord's", async () => {
    const id = await f.createConstituent("ada@example.org", "Ada", "Lovelace");
    expect(await session.apply([optOut(id, 1)])).toEqual([
      { op_id: "op_field_1", status: "succeeded", external_id: id },
    ]);
    const fields = (await f.api("GET", `/constituent/v1/constituents/${id}/customfields`)).body as {
      value: { category: string; value: unknown; comment?: string; date?: string }[];
    };
    expect(fields.value).toEqual([
      expect.objectContaining({ category: FIELD, value: true, comment: "[Concord] opt-out from cc-main" }),
    ]);
    // Its date as the spec has it, without an offset (`x-supports-datetime-offset: false`).
    expect(fields.value[0]?.date).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    expect(await session.apply([optOut(id, 2)])).toEqual([
      { op_id: "op_field_2", status: "succeeded", external_id: id, code: "already_applied" },
    ]);
    const got = await session.get([id]);
    expect(got.ok && got.value.consent).toEqual([
      expect.objectContaining({ kind: "opt_out", mechanism: "sync", actor: { kind: "platform" } }),
    ]);
  });

  it("clears the field only for the person's own opt-in", async () => {
    const id = await f.createConstituent("ada@example.org", "Ada", "Lovelace");
    await session.apply([optOut(id, 1)]);
    expect((await session.apply([optIn(id, "admin_edit", 1)]))[0]).toMatchObject({
      status: "failed",
      code: "consent_requires_contact_action",
    });
    expect((await session.apply([optIn(id, "signup_form", 2)]))[0]).toMatchObject({ status: "succeeded" });
    const got = await session.get([id]);
    expect(got.ok && fieldFact(got.value.records[0])).toMatchObject({
      status: "none",
      label: `${FIELD}: No`,
    });
  });

  it('a field SKY gives as the text "Yes" is cleared by the person\'s opt-in, as it is read: opted out', async () => {
    const id = await f.createConstituent("ada@example.org", "Ada", "Lovelace");
    await adminTicks(id);
    // The field as the spec's examples give values: text. The next listing of it answers so.
    const path = `/constituent/v1/constituents/${id}/customfields`;
    const listed = (await f.api("GET", path)).body as { value: Record<string, unknown>[] };
    await f.control("/__emulator/faults", {
      status: 200,
      count: 1,
      methods: ["GET"],
      path_prefix: path,
      body: {
        ...listed,
        value: listed.value.map((v) => (v["category"] === FIELD ? { ...v, value: "Yes" } : v)),
      },
    });
    const [done] = await session.apply([optIn(id, "signup_form", 3)]);
    expect(done).toMatchObject({ status: "succeeded" });
    expect(done?.code).toBeUndefined();
    const after = await session.get([id]);
    expect(after.ok && fieldFact(after.value.records[0])).toMatchObject({ status: "none" });
  });

  it("check says which configured field Raiser's Edge NXT does not have as a Yes/No category", async () => {
    const wrong = blackbaudRenxtManifest.connect(
      {
        ...f.settings(),
        constructs: [
          { type: "custom_field", name: "Anniversary" },
          { type: "custom_field", name: "No such field" },
        ],
      },
      f.runtime,
    );
    const r = await wrong.check();
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe("validation_failed");
      expect(r.error.message).toContain('"Anniversary", "No such field"');
      expect(r.error.message).toContain('"Newsletter opt-out"');
    }
    expect((await session.check()).ok).toBe(true);
  });
});
