import { describe, expect, it } from "vitest";
import type { ConnectorError, ConnectorOperation, OperationOutcome } from "../connector";
import { applyConsentFirst, failureOf, optedOutSinceRead, outcomeOfError, stopsAll } from "./apply-policy";

const optOut = (op_id: string): ConnectorOperation => ({
  kind: "record_opt_out",
  op_id,
  external_id: `x-${op_id}`,
  email: `${op_id}@example.org`,
  scope: { kind: "global" },
  initiated_by: "contact",
  occurred_at: "2026-06-01T10:00:00.000Z",
  origin: { system: "crm", connection: "crm", mechanism: "unsubscribe_link" },
});
const update = (op_id: string): ConnectorOperation => ({
  kind: "update_contact",
  op_id,
  external_id: `x-${op_id}`,
  first_name: "A",
});
const upsert = (op_id: string, items: string[]): ConnectorOperation => ({
  kind: "upsert_contacts",
  op_id,
  consent_intent: { existing: "keep", new_contacts: "subscribed" },
  list_ids: ["l1"],
  items: items.map((item_id) => ({ item_id, email: `${item_id}@example.org` })),
});
const ok = (op: ConnectorOperation): OperationOutcome[] => [{ op_id: op.op_id, status: "succeeded" }];
const quota: ConnectorError = {
  code: "quota_exceeded",
  message: "Limit Exceeded",
  retry_at: "2026-06-02T00:00:00.000Z",
};

describe("applyConsentFirst", () => {
  it("runs consent operations before the others and answers in the order given", async () => {
    const ran: string[] = [];
    const out = await applyConsentFirst(
      "Vendor",
      [update("u1"), optOut("o1"), update("u2"), optOut("o2")],
      (op) => {
        ran.push(op.op_id);
        return Promise.resolve(ok(op));
      },
    );
    expect(ran).toEqual(["o1", "o2", "u1", "u2"]);
    expect(out.map((o) => o.op_id)).toEqual(["u1", "o1", "u2", "o2"]);
  });

  it("stops at a spent quota and keeps everything left, item by item, until the reset", async () => {
    const ran: string[] = [];
    const out = await applyConsentFirst(
      "Vendor",
      [optOut("o1"), update("u1"), upsert("up", ["a", "b"])],
      (op) => {
        ran.push(op.op_id);
        return Promise.resolve(op.op_id === "u1" ? [outcomeOfError("Vendor", op.op_id, quota)] : ok(op));
      },
    );
    expect(ran).toEqual(["o1", "u1"]);
    expect(out[0]).toMatchObject({ op_id: "o1", status: "succeeded" });
    expect(out[1]).toMatchObject({ op_id: "u1", status: "deferred", code: "quota_exceeded" });
    expect(out.slice(2)).toEqual([
      expect.objectContaining({ op_id: "up", item_id: "a", status: "deferred", retry_at: quota.retry_at }),
      expect.objectContaining({ op_id: "up", item_id: "b", status: "deferred", retry_at: quota.retry_at }),
    ]);
    expect(out[2]!.message).toMatch(/^Not attempted: Vendor's daily request quota is spent/);
  });

  it("stops at refused credentials, but not at a rate limit or a record's own failure", async () => {
    const answers: Record<string, ConnectorError> = {
      o1: { code: "rate_limited", message: "slow down" },
      o2: { code: "validation_failed", message: "bad address" },
      u1: { code: "auth_invalid", message: "401" },
    };
    const ran: string[] = [];
    const out = await applyConsentFirst(
      "Vendor",
      [optOut("o1"), optOut("o2"), update("u1"), update("u2")],
      (op) => {
        ran.push(op.op_id);
        const e = answers[op.op_id];
        return Promise.resolve(e ? [outcomeOfError("Vendor", op.op_id, e)] : ok(op));
      },
    );
    expect(ran).toEqual(["o1", "o2", "u1"]);
    expect(out.map((o) => [o.op_id, o.status, o.code])).toEqual([
      ["o1", "deferred", "rate_limited"],
      ["o2", "failed", "validation_failed"],
      ["u1", "deferred", "auth_invalid"],
      ["u2", "deferred", "auth_invalid"],
    ]);
    expect(out[3]!.message).toMatch(/refused the credentials/);
  });

  it("turns a thrown error into that operation's failure and goes on with the rest", async () => {
    const out = await applyConsentFirst("Vendor", [optOut("o1"), upsert("up", ["a"]), update("u1")], (op) => {
      if (op.op_id === "up") throw new Error("unexpected shape");
      return Promise.resolve(ok(op));
    });
    expect(out.map((o) => [o.op_id, o.item_id, o.status, o.code])).toEqual([
      ["o1", undefined, "succeeded", undefined],
      ["up", "a", "failed", "bad_response"],
      ["u1", undefined, "succeeded", undefined],
    ]);
    expect(out[1]!.message).toBe("Vendor: unexpected shape");
  });
});

describe("failure outcomes", () => {
  it("keeps the connection's and the moment's failures for later and fails the record's own", () => {
    for (const code of [
      "quota_exceeded",
      "auth_invalid",
      "auth_missing",
      "rate_limited",
      "vendor_unavailable",
      "network_error",
      // An answer that cannot be read says nothing about the operation (a proxy's page, a cut body).
      "bad_response",
    ] as const)
      expect(failureOf("V", { code, message: "m" }).status, code).toBe("deferred");
    for (const code of ["validation_failed", "not_found", "conflict", "forbidden", "unsupported"] as const)
      expect(failureOf("V", { code, message: "m" }).status, code).toBe("failed");
    expect(stopsAll(quota)).toBe(true);
    expect(stopsAll({ code: "rate_limited", message: "" })).toBe(false);
    expect(outcomeOfError("V", "op", { code: "not_found", message: "gone" }, { item_id: "i" })).toEqual({
      op_id: "op",
      item_id: "i",
      status: "failed",
      code: "not_found",
      message: "gone",
    });
  });
});

describe("optedOutSinceRead", () => {
  const optIn = (
    read_opted_out: boolean | undefined,
  ): Extract<ConnectorOperation, { kind: "record_opt_in" }> => ({
    kind: "record_opt_in",
    op_id: "in-1",
    external_id: "x-1",
    scope: { kind: "global" },
    occurred_at: "2026-06-01T10:00:00.000Z",
    ...(read_opted_out === undefined ? {} : { read_opted_out }),
    origin: { system: "platform", connection: "cc", mechanism: "signup_form", actor: "contact" },
  });

  it("skips an opt-in planned over no opt-out when the record shows one now", () => {
    expect(optedOutSinceRead("Vendor", optIn(false), true, "the flag")).toMatchObject({
      status: "skipped",
      code: "conflict",
    });
    expect(optedOutSinceRead("Vendor", optIn(false), false, "the flag")).toBeUndefined();
  });

  it("writes an opt-in planned to lift the opt-out the plan read, and one stored before the plan said", () => {
    expect(optedOutSinceRead("Vendor", optIn(true), true, "the flag")).toBeUndefined();
    // Planned by an earlier version, which did not keep what it read: applied as it was then.
    expect(optedOutSinceRead("Vendor", optIn(undefined), true, "the flag")).toBeUndefined();
  });

  it("never stops an opt-out", () => {
    expect(
      optedOutSinceRead(
        "Vendor",
        optOut("o-1") as Extract<ConnectorOperation, { kind: "record_opt_out" }>,
        true,
        "x",
      ),
    ).toBeUndefined();
  });
});
