/**
 * Consent acts of a person (actor: the contact) for ledger tests, each a minute after the last on
 * the test's clock.
 */
import type { Mechanism, Scope } from "../../src/core/consent/consent-event";
import type { ConsentEventInput } from "../../src/ledger/consent-ledger";

export type PersonActs = (contactId: string, kind: "opt_in" | "opt_out", scope: Scope) => ConsentEventInput;

export function personActs(
  /** Moves the test's clock on a minute and says the new time. */
  tick: () => Date,
  how: { connection: string; opt_in: Mechanism; opt_out: (scope: Scope) => Mechanism },
): PersonActs {
  return (contactId, kind, scope) => {
    const at = tick().toISOString();
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
}
