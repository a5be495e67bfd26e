/**
 * Which of the sign-up lists a confirmed person is placed in: none while they receive no email at
 * all; a list that stands for a topic (by its id or its name) only while they receive that topic;
 * every other list as configured. Read from the ledger as it is when the placement runs.
 */
import { expect, it } from "vitest";
import type { Topic } from "../config/concord-config";
import { appendConsentEvents } from "../ledger/consent-ledger";
import { personLedger } from "../../test/support/person-acts";
import { describeOnBackends } from "../../test/support/store-backends";
import { listsTheyReceive } from "./signup";

const LISTS = [
  { external_id: "L-news", name: "Newsletter" },
  { external_id: "L-events", name: "Events" },
  { external_id: "L-galas", name: "Galas" },
];
const TOPICS: Topic[] = [
  { key: "events", label: "Events", constructs: { "cc-main": { type: "list", name: " events " } } },
  { key: "galas", label: "Galas", constructs: { "cc-main": { type: "list", id: "L-galas" } } },
  // A topic that is another system's list, or a whole account here, names no sign-up list.
  { key: "appeals", label: "Appeals", constructs: { "cc-appeals": { type: "account" } } },
];

describeOnBackends("the sign-up lists a person is placed in", (backend) => {
  const ledger = personLedger(backend, {
    connection: "preferences",
    opt_in: "double_opt_in_confirmation",
    opt_out: () => "preference_page",
  });
  const act = ledger.act;
  const placed = (contactId: string) =>
    listsTheyReceive(ledger.store(), { topics: TOPICS }, "cc-main", contactId, LISTS, ledger.now());

  it("follows the person's consent as it stands when the placement runs", async () => {
    const store = ledger.store();
    const contact = await store.contacts.create({ type: "person", primary_email: "ines@example.org" });
    await appendConsentEvents(store, [act(contact.id, "opt_in", { kind: "global" })]);
    expect(await placed(contact.id)).toEqual(["L-news", "L-events", "L-galas"]);

    // She left the events topic (named in the topic's construct) and galas (by id).
    await appendConsentEvents(store, [act(contact.id, "opt_out", { kind: "topic", topic: "events" })]);
    await appendConsentEvents(store, [act(contact.id, "opt_out", { kind: "topic", topic: "galas" })]);
    expect(await placed(contact.id)).toEqual(["L-news"]);

    // She takes events back; then leaves all email: no list at all.
    await appendConsentEvents(store, [act(contact.id, "opt_in", { kind: "topic", topic: "events" })]);
    expect(await placed(contact.id)).toEqual(["L-news", "L-events"]);
    await appendConsentEvents(store, [act(contact.id, "opt_out", { kind: "global" })]);
    expect(await placed(contact.id)).toBeUndefined();
  });
});
