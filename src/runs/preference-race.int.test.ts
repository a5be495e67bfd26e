/**
 * A preference form is the person's act only on the state it showed. On PostgreSQL (read
 * committed) the form's check of that state must be made under the ledger's lock: an unsubscribe
 * link clicked at the same moment, committed between the check and the form's write, would
 * otherwise be taken back by the form's topic opt-in. The one-click reads under the same lock: an
 * opt-in committing as it reads would otherwise make it answer "already unsubscribed" and record
 * nothing.
 */
import { expect, it } from "vitest";
import type { Topic } from "../config/concord-config";
import { appendConsentEvents } from "../ledger/consent-ledger";
import { heldTransaction } from "../../test/support/gate";
import { untilBlocked } from "../../test/support/lock-waits";
import { personLedger } from "../../test/support/person-acts";
import { describeOnBackends } from "../../test/support/store-backends";
import { preferencesOf, recordOneClick, recordPreferences, type TokenClaims } from "./personal-links";

const TOPICS: Topic[] = [{ key: "appeals", label: "Appeals", constructs: {} }];
const config = { topics: TOPICS };
const claimsOf = (contact_id: string): TokenClaims => ({
  contact_id,
  purpose: "unsubscribe",
  generation: 0,
  expires_at: "2027-12-01T00:00:00.000Z",
});
const click = { token: "a-link-token", ip: "198.51.100.7" };

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
      const unsubscribing = await heldTransaction(store, (tx) =>
        appendConsentEvents(tx, [act(ada.id, "opt_out", { kind: "global" })]),
      );
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
      await unsubscribing.commit();
      expect(await form).toMatchObject({ stale: true, opt_ins: [] });
      const lines = await preferencesOf(store, config, ada.id, new Date(ledger.now().getTime() + 2_000));
      expect(lines.map((l) => [l.key, l.receiving])).toEqual([
        ["all", false],
        ["topic:appeals", false],
      ]);
    },
  );

  it("a one-click over a topic the person took back is recorded, even while the organisation has stopped that topic", async () => {
    const store = ledger.store();
    const ada = await store.contacts.create({ type: "person", primary_email: "ada@example.org" });
    // Ada leaves all email, then takes appeals back on the preference page.
    await appendConsentEvents(store, [act(ada.id, "opt_out", { kind: "global" })]);
    await appendConsentEvents(store, [act(ada.id, "opt_in", { kind: "topic", topic: "appeals" })]);
    // Staff stop appeals for her: the organisation's opt-out, which the organisation may undo.
    const staff = (kind: "opt_in" | "opt_out") => ({
      ...act(ada.id, kind, { kind: "topic", topic: "appeals" }),
      actor: { kind: "account" as const },
      mechanism: "admin_edit" as const,
      source: { system: "concord", connection: "crm" },
      ...(kind === "opt_in" ? { basis: "implied" as const } : {}),
    });
    await appendConsentEvents(store, [staff("opt_out")]);
    // She clicks an unsubscribe link from an older email: her act, though no topic reaches her now.
    const clicked = await recordOneClick(store, claimsOf(ada.id), click, ledger.now(), config);
    expect(clicked.recorded).toBe("appended");
    // Staff undo their own stop: appeals stays off, by her click.
    await appendConsentEvents(store, [staff("opt_in")]);
    const lines = await preferencesOf(store, config, ada.id, new Date(ledger.now().getTime() + 1_000));
    expect(lines.map((l) => [l.key, l.receiving, l.left_by_person])).toEqual([
      ["all", false, true],
      ["topic:appeals", false, true],
    ]);
    // A second click finds every line covered by her own opt-outs and records nothing.
    expect((await recordOneClick(store, claimsOf(ada.id), click, ledger.now(), config)).recorded).toBe(
      "already_opted_out",
    );
  });

  it.skipIf(backend.name !== "postgres")(
    "a one-click while the person's opt-in is being committed waits for it, and is recorded over it",
    async () => {
      const store = ledger.store();
      const ada = await store.contacts.create({ type: "person", primary_email: "ada@example.org" });
      await appendConsentEvents(store, [act(ada.id, "opt_out", { kind: "global" })]);
      // A confirmed sign-up's opt-in to all email is written and holds the ledger's head.
      const optingIn = await heldTransaction(store, (tx) =>
        appendConsentEvents(tx, [act(ada.id, "opt_in", { kind: "global" })]),
      );
      const clicking = recordOneClick(
        store,
        claimsOf(ada.id),
        click,
        new Date(ledger.now().getTime() + 1_000),
        config,
      );
      // The click either finished beside the open opt-in (read too early) or waits for the head.
      await Promise.race([clicking, untilBlocked(store.db, { row_lock_in: "consent_ledger_head" })]);
      await optingIn.commit();
      expect((await clicking).recorded).toBe("appended");
      const lines = await preferencesOf(store, config, ada.id, new Date(ledger.now().getTime() + 2_000));
      expect(lines.map((l) => [l.key, l.receiving])).toEqual([
        ["all", false],
        ["topic:appeals", false],
      ]);
    },
  );
});
