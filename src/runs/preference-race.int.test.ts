/**
 * A preference form is the person's act only on the state it showed. On PostgreSQL (read
 * committed) the form's check of that state must be made under the ledger's lock: an unsubscribe
 * link clicked at the same moment, committed between the check and the form's write, would
 * otherwise be taken back by the form's topic opt-in.
 */
import { expect, it } from "vitest";
import type { Topic } from "../config/concord-config";
import { appendConsentEvents } from "../ledger/consent-ledger";
import { gate } from "../../test/support/gate";
import { untilBlocked } from "../../test/support/lock-waits";
import { personLedger } from "../../test/support/person-acts";
import { describeOnBackends } from "../../test/support/store-backends";
import { preferencesOf, recordPreferences } from "./personal-links";

const TOPICS: Topic[] = [{ key: "appeals", label: "Appeals", constructs: {} }];
const config = { topics: TOPICS };

describeOnBackends("a preference form beside an unsubscribe link", (backend) => {
  const ledger = personLedger(backend, {
    connection: "links",
    opt_in: "preference_page",
    opt_out: (scope) => (scope.kind === "global" ? "unsubscribe_link" : "preference_page"),
  });
  const act = ledger.act;

  it.skipIf(backend.name !== "postgres")(
    "an unsubscribe committed while the form waits makes the form stale: the topic it ticks stays off",
    async () => {
      const store = ledger.store();
      const ada = await store.contacts.create({ type: "person", primary_email: "ada@example.org" });
      await appendConsentEvents(store, [act(ada.id, "opt_in", { kind: "global" })]);
      await appendConsentEvents(store, [act(ada.id, "opt_out", { kind: "topic", topic: "appeals" })]);
      const shown = new Map(
        (await preferencesOf(store, config, ada.id, ledger.now())).map((l) => [l.key, l.receiving] as const),
      );
      expect([...shown]).toEqual([
        ["all", true],
        ["topic:appeals", false],
      ]);

      // The unsubscribe link's opt-out is written and holds the ledger's head, not yet committed.
      const written = gate();
      const commit = gate();
      const unsubscribing = store.transaction(async (tx) => {
        await appendConsentEvents(tx, [act(ada.id, "opt_out", { kind: "global" })]);
        written.open();
        await commit.opened;
      });
      await written.opened;
      // The form, as shown before, ticks appeals back.
      const form = recordPreferences(
        store,
        config,
        ada.id,
        { choices: new Set(["all", "topic:appeals"]), shown },
        {
          source: { system: "concord", connection: "preferences" },
          mechanism: { opt_in: "preference_page", opt_out: "preference_page" },
          evidence: { form_wording: "Your email preferences" },
        },
        new Date(ledger.now().getTime() + 1_000),
      );
      // The form either finished beside the open unsubscribe (checked too early) or waits for the head.
      await Promise.race([form, untilBlocked(store.db, { row_lock_in: "consent_ledger_head" })]);
      commit.open();
      await unsubscribing;
      expect(await form).toMatchObject({ stale: true, opt_ins: [] });
      const lines = await preferencesOf(store, config, ada.id, new Date(ledger.now().getTime() + 2_000));
      expect(lines.map((l) => [l.key, l.receiving])).toEqual([
        ["all", false],
        ["topic:appeals", false],
      ]);
    },
  );
});
