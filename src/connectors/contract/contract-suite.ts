/**
 * The shared connector contract suite (Airbyte's acceptance tests, Hono's common cases): every
 * connector runs the same cases against its emulator, and against the live service when
 * credentials are given. A case a harness cannot run is listed by name with its reason.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  Checkpoint,
  ConnectionSettings,
  ConnectorOperation,
  ConnectorSession,
  ExternalRecord,
  ObservedScope,
  ReadPage,
} from "../connector";
import type { ContractCase, ContractHarness, ContractTarget, SeededContact } from "./contract-harness";

type ReadAll = { pages: ReadPage[]; records: ExternalRecord[]; checkpoint: Checkpoint | null };

async function readAll(
  session: ConnectorSession,
  checkpoint: Checkpoint | null,
  full = false,
): Promise<ReadAll> {
  const pages: ReadPage[] = [];
  let last = checkpoint;
  for await (const page of session.read(checkpoint, { full })) {
    if (!page.ok) throw new Error(`read failed: ${page.error.code}: ${page.error.message}`);
    pages.push(page.value);
    last = page.value.checkpoint;
  }
  return { pages, records: pages.flatMap((p) => p.records), checkpoint: last };
}

const emailsOf = (records: readonly ExternalRecord[]): string[] =>
  records.flatMap((r) => r.emails.map((e) => e.address.toLowerCase()));

function expectNoDuplicates(records: readonly ExternalRecord[]): void {
  const ids = records.map((r) => r.external_id);
  expect(new Set(ids).size, "a read yielded the same record twice").toBe(ids.length);
}

let opCounter = 0;
const opId = (label: string): string => `op_contract_${label}_${Date.now().toString(36)}_${opCounter++}`;

export function runConnectorContract(harness: ContractHarness): void {
  describe(`connector contract: ${harness.name}`, () => {
    let target: ContractTarget;
    const connect = (settings?: ConnectionSettings): ConnectorSession =>
      harness.manifest.connect(settings ?? target.settings, target.runtime);
    const isPlatform = harness.manifest.role === "email_platform";
    const accountScope: ObservedScope =
      harness.manifest.topics["account"] !== undefined ? { kind: "account" } : { kind: "global" };

    beforeAll(async () => {
      target = await harness.start();
    });
    afterAll(async () => {
      await target?.teardown();
    });

    const tag = `c${Date.now().toString(36)}`;
    const contract = (name: ContractCase, title: string, fn: () => Promise<void>): void => {
      const reason = harness.skip?.[name];
      if (reason) it.skip(`${name}: ${title} (skipped: ${reason})`, fn);
      else it(`${name}: ${title}`, fn);
    };

    /** Creates one contact through the connector and finds its external id. */
    const createThroughConnector = async (
      session: ConnectorSession,
      email: string,
      first: string,
    ): Promise<string> => {
      const op: ConnectorOperation = isPlatform
        ? {
            kind: "upsert_contacts",
            consent_intent: { existing: "keep", new_contacts: "subscribed" },
            op_id: opId("upsert"),
            items: [{ item_id: "i1", email, first_name: first, last_name: "Contract" }],
            list_ids: [],
          }
        : {
            kind: "create_contact",
            op_id: opId("create"),
            email,
            first_name: first,
            last_name: "Contract",
            kind_of_record: "individual",
          };
      const outcomes = await session.apply([op]);
      expect(
        outcomes.map((o) => o.status),
        JSON.stringify(outcomes),
      ).toEqual(["succeeded"]);
      const direct = outcomes[0]?.external_id;
      if (direct) return direct;
      const all = await readAll(session, null, true);
      const found = all.records.filter((r) => emailsOf([r]).includes(email.toLowerCase()));
      expect(found).toHaveLength(1);
      return found[0]!.external_id;
    };

    contract("check_good_credentials", "check succeeds with good credentials", async () => {
      const r = await connect().check();
      expect(r.ok, JSON.stringify(r)).toBe(true);
    });

    contract(
      "check_bad_credentials",
      "check fails with auth_invalid for credentials the system refuses",
      async () => {
        const r = await connect(target.bad_settings).check();
        expect(r.ok).toBe(false);
        if (!r.ok) expect(["auth_invalid", "auth_missing"]).toContain(r.error.code);
      },
    );

    let seeded: SeededContact[] = [];
    let afterFull: Checkpoint | null = null;

    contract("full_read", "a full read returns every seeded record once", async () => {
      seeded = await target.seed(5, `${tag}-full`);
      const all = await readAll(connect(), null, true);
      expectNoDuplicates(all.records);
      const emails = emailsOf(all.records);
      for (const s of seeded) expect(emails).toContain(s.email.toLowerCase());
      const byId = new Map(all.records.map((r) => [r.external_id, r]));
      for (const s of seeded) expect(byId.get(s.external_id)?.first_name).toBe(s.first_name);
      afterFull = all.checkpoint;
      expect(afterFull).not.toBeNull();
    });

    contract(
      "incremental_read_from_checkpoint",
      "a read from a saved checkpoint returns the new records, none twice",
      async () => {
        if (seeded.length === 0) seeded = await target.seed(5, `${tag}-full`);
        const start = afterFull ?? (await readAll(connect(), null, true)).checkpoint;
        const fresh = await target.seed(2, `${tag}-incr`);
        const incr = await readAll(connect(), start);
        expectNoDuplicates(incr.records);
        const emails = emailsOf(incr.records);
        for (const s of fresh) expect(emails).toContain(s.email.toLowerCase());
        expect(incr.records.length).toBeLessThan(seeded.length + fresh.length + 50);
      },
    );

    contract(
      "idempotent_reread",
      "reading again from the same checkpoint yields the same records",
      async () => {
        const start = afterFull;
        const a = await readAll(connect(), start);
        const b = await readAll(connect(), start);
        const key = (r: ExternalRecord) =>
          `${r.external_id}|${r.updated_at}|${emailsOf([r]).join(",")}|${r.first_name ?? ""}`;
        expect(b.records.map(key).sort()).toEqual(a.records.map(key).sort());
      },
    );

    contract("create_then_update", "create then update leaves one record with the new values", async () => {
      const session = connect();
      const email = `${tag}-create@example.org`;
      const id = await createThroughConnector(session, email, "Ada");
      const updated = await session.apply([
        { kind: "update_contact", op_id: opId("update"), external_id: id, first_name: "Adaline" },
      ]);
      expect(
        updated.map((o) => o.status),
        JSON.stringify(updated),
      ).toEqual(["succeeded"]);
      const got = await session.get([id]);
      expect(got.ok, JSON.stringify(got)).toBe(true);
      if (got.ok) expect(got.value.records[0]?.first_name).toBe("Adaline");
      const all = await readAll(session, null, true);
      expect(all.records.filter((r) => emailsOf([r]).includes(email))).toHaveLength(1);
    });

    contract(
      "unsubscribe_and_read_back",
      "an opt-out written through the connector reads back as an opt-out",
      async () => {
        const [person] = await target.seed(1, `${tag}-unsub`);
        const session = connect();
        const outcomes = await session.apply([
          {
            kind: "record_opt_out",
            op_id: opId("optout"),
            external_id: person!.external_id,
            email: person!.email,
            scope: accountScope,
            initiated_by: "contact",
            occurred_at: target.runtime.now().toISOString(),
            reason: "Contract test",
            origin: { system: "contract", connection: "contract", mechanism: "unsubscribe_link" },
          },
        ]);
        expect(
          outcomes.map((o) => o.status),
          JSON.stringify(outcomes),
        ).toEqual(["succeeded"]);
        const all = await readAll(session, null, true);
        const optOuts = all.pages
          .flatMap((p) => p.consent)
          .filter((c) => c.external_id === person!.external_id && c.kind === "opt_out");
        expect(optOuts.length).toBeGreaterThan(0);
        if (target.inspect) expect((await target.inspect(person!.external_id))?.opted_out).toBe(true);
        // Writing it again is harmless.
        const again = await session.apply([outcomesOp(person!, accountScope, target)]);
        expect(again[0]?.status).toBe("succeeded");
      },
    );

    contract(
      "contact_unsubscribe_observed",
      "the person's own unsubscribe is read as a contact-initiated opt-out",
      async () => {
        const [person] = await target.seed(1, `${tag}-self`);
        const before = (await readAll(connect(), null, true)).checkpoint;
        await target.contact_unsubscribes!(person!);
        const incr = await readAll(connect(), before);
        const optOut = incr.pages
          .flatMap((p) => p.consent)
          .find((c) => c.external_id === person!.external_id && c.kind === "opt_out");
        expect(optOut, "no opt-out observed after the person unsubscribed").toBeDefined();
        expect(optOut?.actor.kind).toBe("contact");
      },
    );

    contract(
      "resubscribe_requires_contact_action",
      "a re-subscribe without the person's action is refused with a stable code",
      async () => {
        const [person] = await target.seed(1, `${tag}-resub`);
        const session = connect();
        if (target.contact_unsubscribes) await target.contact_unsubscribes(person!);
        else await session.apply([outcomesOp(person!, accountScope, target)]);
        const direct = await session.apply([
          {
            kind: "record_opt_in",
            op_id: opId("optin"),
            external_id: person!.external_id,
            scope: accountScope,
            occurred_at: target.runtime.now().toISOString(),
            origin: { system: "contract", connection: "contract", mechanism: "admin_edit", actor: "account" },
          },
        ]);
        expect(direct[0]).toMatchObject({ status: "failed", code: "consent_requires_contact_action" });
        const request = await session.apply([
          {
            kind: "request_resubscribe",
            op_id: opId("resub"),
            external_id: person!.external_id,
            list_ids: target.list_id ? [target.list_id] : [],
          },
        ]);
        expect(request[0]?.status).toBe("pending_contact_action");
        if (target.inspect) expect((await target.inspect(person!.external_id))?.opted_out).toBe(true);
      },
    );

    contract(
      "paging_at_page_size_plus_one",
      "a read at page size + 1 records yields every record across pages",
      async () => {
        const size = target.page_size!;
        const all = await readAll(connect(), null, true);
        const need = Math.max(0, size + 1 - all.records.length);
        if (need > 0) await target.seed(need, `${tag}-page`);
        const paged = await readAll(connect({ ...target.settings, page_size: size }), null, true);
        expectNoDuplicates(paged.records);
        expect(paged.records.length).toBeGreaterThanOrEqual(size + 1);
        expect(paged.pages.length).toBeGreaterThanOrEqual(2);
        const everything = await readAll(connect(), null, true);
        expect(new Set(paged.records.map((r) => r.external_id))).toEqual(
          new Set(everything.records.map((r) => r.external_id)),
        );
      },
    );

    contract("throttling_waits_and_succeeds", "throttled calls wait and then succeed", async () => {
      await target.inject_throttle!(2);
      const r = await connect().check();
      expect(r.ok, JSON.stringify(r)).toBe(true);
    });

    contract("partial_bulk_failure", "a batch with bad records reports an outcome per record", async () => {
      const session = connect();
      if (isPlatform) {
        const good = `${tag}-bulk-good@example.org`;
        const outcomes = await session.apply([
          {
            kind: "upsert_contacts",
            consent_intent: { existing: "keep", new_contacts: "subscribed" },
            op_id: opId("bulk"),
            items: [
              { item_id: "good", email: good, first_name: "Good" },
              { item_id: "bad", email: "not-an-address", first_name: "Bad" },
              { item_id: "dup", email: good, first_name: "Again" },
            ],
            list_ids: [],
          },
        ]);
        const byItem = new Map(outcomes.map((o) => [o.item_id, o]));
        expect(byItem.get("good")?.status, JSON.stringify(outcomes)).toBe("succeeded");
        expect(byItem.get("bad")?.status).toBe("failed");
        expect(byItem.get("dup")).toMatchObject({ code: "duplicate_in_batch" });
      } else {
        const [person] = await target.seed(1, `${tag}-bulk`);
        const outcomes = await session.apply([
          { kind: "update_contact", op_id: opId("ok"), external_id: person!.external_id, first_name: "Fine" },
          {
            kind: "update_contact",
            op_id: opId("missing"),
            external_id: "does-not-exist-999999",
            first_name: "Nobody",
          },
        ]);
        expect(
          outcomes.map((o) => o.status),
          JSON.stringify(outcomes),
        ).toEqual(["succeeded", "failed"]);
        expect(outcomes[1]?.code).toBe("not_found");
      }
    });

    contract("quota_exceeded_defers", "a spent daily quota defers work with a time to resume", async () => {
      const [person] = await target.seed(1, `${tag}-quota`);
      await target.inject_quota_exceeded!();
      const outcomes = await connect().apply([
        {
          kind: "update_contact",
          op_id: opId("quota"),
          external_id: person!.external_id,
          first_name: "Later",
        },
      ]);
      expect(outcomes[0]).toMatchObject({ status: "deferred", code: "quota_exceeded" });
      expect(Date.parse(outcomes[0]?.retry_at ?? "")).toBeGreaterThan(target.runtime.now().getTime() - 1000);
    });

    contract(
      "revoked_credentials",
      "revoked credentials fail with auth_invalid and lose nothing",
      async () => {
        const [person] = await target.seed(1, `${tag}-revoked`);
        await target.revoke_credentials!();
        const session = connect();
        const check = await session.check();
        expect(check).toMatchObject({ ok: false, error: { code: "auth_invalid" } });
        const outcomes = await session.apply([
          {
            kind: "update_contact",
            op_id: opId("revoked"),
            external_id: person!.external_id,
            first_name: "Never",
          },
        ]);
        expect(outcomes[0]?.status).not.toBe("succeeded");
        expect(outcomes[0]?.code).toBe("auth_invalid");
      },
    );
  });
}

function outcomesOp(person: SeededContact, scope: ObservedScope, target: ContractTarget): ConnectorOperation {
  return {
    kind: "record_opt_out",
    op_id: opId("optout"),
    external_id: person.external_id,
    email: person.email,
    scope,
    initiated_by: "contact",
    occurred_at: target.runtime.now().toISOString(),
    reason: "Contract test",
    origin: { system: "contract", connection: "contract", mechanism: "unsubscribe_link" },
  };
}

/** For live runs: the environment variables a harness needs, or the reason it cannot run. */
export function liveCredentials(
  vars: readonly string[],
): { ok: true; values: Record<string, string> } | { ok: false; reason: string } {
  const values: Record<string, string> = {};
  const missing: string[] = [];
  for (const v of vars) {
    const value = process.env[v];
    if (value) values[v] = value;
    else missing.push(v);
  }
  return missing.length === 0
    ? { ok: true, values }
    : { ok: false, reason: `set ${missing.join(", ")} to run against the live service` };
}

/** Runs the contract against the live service when its credentials are set; otherwise lists it as skipped, with the reason. */
export function runLiveConnectorContract(
  name: string,
  vars: readonly string[],
  make: (values: Record<string, string>) => ContractHarness,
): void {
  const creds = liveCredentials(vars);
  if (!creds.ok) {
    describe.skip(`connector contract: ${name} (live service; skipped: ${creds.reason})`, () => {
      it("runs every contract case against the live service", () => undefined);
    });
    return;
  }
  runConnectorContract(make(creds.values));
}

/** Cases a live harness cannot run: they need the emulator's act, fault or revoke routes. */
export const LIVE_ONLY_EMULATOR_CASES: Partial<Record<ContractCase, string>> = {
  contact_unsubscribe_observed: "needs a real person to click unsubscribe",
  throttling_waits_and_succeeds: "throttling cannot be injected into the live service",
  quota_exceeded_defers: "a spent quota cannot be injected into the live service",
  revoked_credentials: "would revoke the operator's own tokens",
};

/** Cases that write to the account: run live only when the operator says the account is a sandbox. */
export const LIVE_WRITE_CASES: readonly ContractCase[] = [
  "full_read",
  "incremental_read_from_checkpoint",
  "idempotent_reread",
  "create_then_update",
  "unsubscribe_and_read_back",
  "resubscribe_requires_contact_action",
  "paging_at_page_size_plus_one",
  "partial_bulk_failure",
];

/** The skip list of a live harness: emulator-only cases always, writing cases unless CONCORD_LIVE_WRITES=1. */
export function liveSkips(): Partial<Record<ContractCase, string>> {
  if (process.env["CONCORD_LIVE_WRITES"] === "1") return LIVE_ONLY_EMULATOR_CASES;
  const writes = Object.fromEntries(
    LIVE_WRITE_CASES.map((c) => [
      c,
      "writes contacts: set CONCORD_LIVE_WRITES=1 if this account is a sandbox",
    ]),
  );
  return { ...LIVE_ONLY_EMULATOR_CASES, ...writes };
}

/** Seeds contacts through the connector's own create operation (for live harnesses). */
export async function seedThroughConnector(
  session: ConnectorSession,
  count: number,
  prefix: string,
): Promise<SeededContact[]> {
  const seeded: SeededContact[] = [];
  for (let i = 0; i < count; i++) {
    const email = `${prefix}-${i}@example.org`.toLowerCase();
    const person = { email, first_name: `First${i}`, last_name: "Concord" };
    const [outcome] = await session.apply([
      { kind: "create_contact", op_id: opId("seed"), ...person, kind_of_record: "individual" },
    ]);
    if (outcome?.status !== "succeeded" || !outcome.external_id) {
      throw new Error(`could not seed ${email}: ${JSON.stringify(outcome)}`);
    }
    seeded.push({ ...person, external_id: outcome.external_id });
  }
  return seeded;
}
