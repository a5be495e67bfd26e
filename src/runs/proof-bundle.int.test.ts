/**
 * Proof for an auditor over the emulators: one person's events with their evidence and chain hashes,
 * signed; the bundle checks on its own, and any change to it, or another signing key, is found.
 */
import { afterEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { erasePerson } from "./erase-person";
import { proofBundle, proofKey, publicKeyOf, signProof, verifyProof } from "./proof-bundle";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  TEST_KEY,
  type SyncHarness,
} from "../../test/support/sync-harness";

describe("proof bundles", () => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });

  it("carries every event with its evidence and chain hash, verifies on its own, and shows tampering", async () => {
    h = await startSyncHarness(sqliteBackend());
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(60_000);
    await h.sync();
    const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
    const key = proofKey(TEST_KEY);
    if (!key.ok) throw new Error(key.error);

    const bundle = await proofBundle(h.store, h.config, contact!.id, h.now());
    expect(bundle?.contact).toMatchObject({
      name: "Ada Lovelace",
      primary_email: "ada@example.org",
      erased: false,
    });
    expect(bundle?.state[0]).toMatchObject({ scope: "all email", sendable: false, rule: "global_opt_out" });
    const optOut = bundle?.events.find(
      (e) => e.event.kind === "opt_out" && e.event.source.connection === "cc-main",
    );
    expect(optOut?.event.evidence.source_record_id).toBeDefined();
    const signed = signProof(bundle!, key.value);
    expect(verifyProof(JSON.parse(JSON.stringify(signed)))).toEqual([]);
    expect(verifyProof(signed, publicKeyOf(key.value))).toEqual([]);

    // Someone edits the bundle: the signature fails, and the edited event's chain hash too.
    const edited = structuredClone(signed);
    edited.bundle.events[0]!.event.mechanism = "signup_form";
    const problems = verifyProof(edited);
    expect(problems).toContain("the signature does not match the bundle: it was changed after signing");
    expect(problems.some((p) => p.includes("do not produce its chain hash"))).toBe(true);
    // Evidence changed behind its digest.
    const evidence = structuredClone(signed);
    evidence.bundle.events.find((e) => e.evidence_erased_at === null)!.event.evidence.ip = "10.0.0.1";
    expect(verifyProof(evidence).some((p) => p.includes("evidence does not match its digest"))).toBe(true);
    // Signed by another key than the organisation published.
    const other = proofKey(randomBytes(32).toString("base64"));
    if (!other.ok) throw new Error(other.error);
    expect(verifyProof(signProof(bundle!, other.value), publicKeyOf(key.value))).toEqual([
      "the bundle is signed with another key than the one expected",
    ]);
    expect(verifyProof({ nothing: true })).toEqual(["not a concord.proof.v1 bundle signed with Ed25519"]);

    // After an erasure the events keep their place and their proof, without the person's data.
    const erased = await erasePerson(
      { store: h.store, config: h.config, connections: h.connections, now: h.now },
      { email: "ada@example.org", requested_by: "Ops" },
    );
    expect(erased.ok && erased.report.status).toBe("completed");
    const after = await proofBundle(h.store, h.config, contact!.id, h.now());
    expect(after?.contact).toMatchObject({ name: null, primary_email: null, erased: true });
    expect(after?.events.length).toBe(bundle?.events.length);
    expect(after?.events.every((e) => e.evidence_erased_at !== null)).toBe(true);
    expect(verifyProof(signProof(after!, key.value))).toEqual([]);
  });
});
