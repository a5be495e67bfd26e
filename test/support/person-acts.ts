/**
 * A person's consent acts (actor: the contact) on a test store with a clock of its own, for ledger
 * tests that run on every store backend.
 */
import { afterEach, beforeEach } from "vitest";
import type { Mechanism, Scope } from "../../src/core/consent/consent-event";
import type { ConsentEventInput } from "../../src/ledger/consent-ledger";
import type { Store } from "../../src/store/ports";
import type { StoreBackend, TestStore } from "./store-backends";

export type PersonActs = (contactId: string, kind: "opt_in" | "opt_out", scope: Scope) => ConsentEventInput;

const START = "2026-12-01T09:00:00.000Z";

/**
 * For one suite: a store made afresh before each test, its clock back at 2026-12-01 09:00 UTC, and
 * cleaned up after it. `act` makes an act of the person's a minute after the last, from `how`'s
 * connection with its mechanisms.
 */
export function personLedger(
  backend: StoreBackend,
  how: { connection: string; opt_in: Mechanism; opt_out: (scope: Scope) => Mechanism },
): { store: () => Store; now: () => Date; act: PersonActs } {
  let t: TestStore | undefined;
  let now = new Date(START);
  beforeEach(async () => {
    now = new Date(START);
    t = await backend.create({ clock: () => now });
  });
  afterEach(async () => {
    await t?.cleanup();
    t = undefined;
  });
  const act: PersonActs = (contactId, kind, scope) => {
    now = new Date(now.getTime() + 60_000);
    const at = now.toISOString();
    const common = {
      contact_id: contactId,
      channel: "email" as const,
      scope,
      source: { system: "concord", connection: how.connection },
      actor: { kind: "contact" as const },
      occurred_at: at,
      observed_at: at,
      evidence: { form_wording: "Your email preferences" },
    };
    return kind === "opt_in"
      ? { ...common, kind, basis: "express", mechanism: how.opt_in }
      : { ...common, kind, mechanism: how.opt_out(scope) };
  };
  return {
    store: () => {
      if (t === undefined) throw new Error("the test store exists only while a test runs");
      return t.store;
    },
    now: () => now,
    act,
  };
}
