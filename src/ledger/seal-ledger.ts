/**
 * `concord ledger seal`: seals a ledger written before seals existed, or while CONCORD_SECRET_KEY
 * was unset. It seals only a chain that verifies, whose existing seals are the key's, and whose
 * unsealed rows all come before the first sealed one: unsealed rows after a sealed row are what a
 * rewrite by someone without the key looks like (they recompute the hashes and drop the seals), so
 * those are sealed only when the operator says they are known (`force`, after reading the seqs).
 * With `record_erasures` it also chains erasures made before erasures were chained; the operator
 * asks for that knowingly, after `ledger verify` named the contacts. That part needs no key.
 */
import type { LedgerSealer, StoreSession } from "../store/ports";
import { appendErasureRow } from "./consent-ledger";
import { checkSeal } from "./ledger-seal";
import { verifyLedger, type VerifyResult } from "./verify-ledger";

export type SealResult =
  | { ok: true; sealed: number; erasures_recorded: number; head: { seq: number; hash: string } }
  | { ok: false; verify: Extract<VerifyResult, { ok: false }> }
  | { ok: false; verify?: undefined; problem: string };

export async function sealLedger(
  store: StoreSession,
  sealer: LedgerSealer | undefined,
  options: { record_erasures?: boolean; force?: boolean; page_size?: number } = {},
): Promise<SealResult> {
  const checked = await verifyLedger(store, {
    sealer,
    list_unsealed: true,
    list_unrecorded_erasures: options.record_erasures === true,
  });
  if (!checked.ok) return { ok: false, verify: checked };
  const afterSealed = checked.unsealed?.after_sealed ?? null;
  if (afterSealed !== null && options.force !== true)
    return {
      ok: false,
      problem: `Nothing was sealed: row ${afterSealed} has no seal although rows before it are sealed by this key. That is what rows rewritten without the key look like. If these rows were written while CONCORD_SECRET_KEY was unset, and you know that, run ledger seal --force.`,
    };
  const page = options.page_size ?? 500;

  let erasures_recorded = 0;
  const unrecorded = checked.unrecorded_erasures ?? [];
  if (unrecorded.length > 0) {
    await store.transaction(async (tx) => {
      let head = await tx.consentEvents.lockHead();
      for (const contact_id of unrecorded) {
        head = await appendErasureRow(tx, head, contact_id, undefined);
        erasures_recorded += 1;
      }
    });
  }

  let sealed = 0;
  if (sealer !== undefined) {
    const until = (await store.consentEvents.readHead()).seq;
    let after = 0;
    for (;;) {
      const rows = await store.consentEvents.unsealed(after, until, page);
      if (rows.length === 0) break;
      await store.transaction(async (tx) => {
        for (const row of rows) {
          // A row appended meanwhile by a writer holding the key is sealed already.
          if (checkSeal(sealer, row.hash, row.seal) !== "unsealed") continue;
          await tx.consentEvents.setSeal(row.seq, sealer.seal(row.hash));
          sealed += 1;
        }
      });
      after = rows[rows.length - 1]?.seq ?? until;
    }
  }
  const head = await store.consentEvents.readHead();
  const after_check = await verifyLedger(store, { sealer });
  if (!after_check.ok)
    return {
      ok: false,
      problem: `sealed ${sealed} rows, but the ledger then failed to verify at seq ${after_check.first_broken_seq} (${after_check.reason}): ${after_check.detail}`,
    };
  return { ok: true, sealed, erasures_recorded, head };
}
