/**
 * Proof for an auditor (DESIGN.md §2 rule 7): one person's every consent event with its evidence and
 * its place in the ledger's hash chain, the state the rules decide now, signed with Ed25519 under a
 * key derived from CONCORD_SECRET_KEY. Anyone holding the bundle can check it without Concord: the
 * signature with the public key it names (which the organisation publishes), and each event's chain
 * hash from its fields, its evidence digest and the hash before it.
 */
import { createPrivateKey, createPublicKey, hkdfSync, sign, verify, type KeyObject } from "node:crypto";
import type { ConcordConfig } from "../config/concord-config";
import { parseSecretKey, type SecretKey } from "../config/secret-box";
import { canonicalJson } from "../core/canonical-json";
import type { ConsentEvent } from "../core/consent/consent-event";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import { err, ok, type Result } from "../core/result";
import { computeChainHash, evidenceDigest, withoutEvidence } from "../ledger/chain-hash";
import { eventsForContact } from "../ledger/consent-ledger";
import type { StoreSession } from "../store/ports";

export const PROOF_FORMAT = "concord.proof.v1";

export type ProofEvent = {
  seq: number;
  event: ConsentEvent;
  evidence_digest: string;
  evidence_erased_at: string | null;
  recorded_at: string;
  prev_hash: string;
  hash: string;
};

export type ProofBundle = {
  format: typeof PROOF_FORMAT;
  generated_at: string;
  contact: { id: string; name: string | null; primary_email: string | null; erased: boolean };
  /** What the rules decide now, per scope: sendable or not, and the rule. */
  state: { scope: string; sendable: boolean; rule: string; decided_by: string | null }[];
  events: ProofEvent[];
};

export type SignedProof = {
  bundle: ProofBundle;
  signature: { alg: "Ed25519"; public_key: string; value: string };
};

/** The signing key: an Ed25519 key whose 32-byte seed is derived (HKDF) from CONCORD_SECRET_KEY. */
export function proofKey(secretKey: SecretKey | string | undefined): Result<KeyObject, string> {
  const parsed = typeof secretKey === "object" ? ok(secretKey) : parseSecretKey(secretKey);
  if (!parsed.ok)
    return err(
      `proof bundles are signed with a key derived from CONCORD_SECRET_KEY: ${parsed.error.message}`,
    );
  const seed = Buffer.from(hkdfSync("sha256", parsed.value.bytes, Buffer.alloc(0), PROOF_FORMAT, 32));
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  return ok(createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
}

/** The public key as auditors get it: base64 of its SubjectPublicKeyInfo DER. */
export const publicKeyOf = (key: KeyObject): string =>
  createPublicKey(key).export({ format: "der", type: "spki" }).toString("base64");

/** The bundle for one contact (also an erased one: its events keep their place, without evidence). */
export async function proofBundle(
  store: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  contactId: string,
  now: Date,
): Promise<ProofBundle | undefined> {
  const contact = await store.contacts.get(contactId);
  if (contact === undefined) return undefined;
  const stored = await eventsForContact(store, contactId);
  const events = stored.map((s) => s.event);
  const topics = config.topics.map((t) => t.key);
  const state = foldChannelConsent(events, "email", { as_of: now.toISOString(), topics });
  const scopes = [{ kind: "global" as const }, ...topics.map((topic) => ({ kind: "topic" as const, topic }))];
  const name =
    contact.organization_name ??
    ([contact.given_name, contact.family_name].filter((s) => s).join(" ") || null);
  return {
    format: PROOF_FORMAT,
    generated_at: now.toISOString(),
    contact: {
      id: contact.id,
      name,
      primary_email: contact.primary_email,
      erased: contact.erased_at !== null,
    },
    state: scopes.map((scope) => {
      const d = decisionFor(state, scope);
      return {
        scope: scope.kind === "global" ? "all email" : `topic ${scope.topic}`,
        sendable: d.sendable,
        rule: d.rule,
        decided_by: d.decided_by ?? null,
      };
    }),
    events: stored.map((s) => ({
      seq: s.seq,
      event: s.event,
      evidence_digest: s.evidence_digest,
      evidence_erased_at: s.evidence_erased_at,
      recorded_at: s.recorded_at,
      prev_hash: s.prev_hash,
      hash: s.hash,
    })),
  };
}

export function signProof(bundle: ProofBundle, key: KeyObject): SignedProof {
  const value = sign(null, Buffer.from(canonicalJson(bundle), "utf8"), key).toString("base64");
  return { bundle, signature: { alg: "Ed25519", public_key: publicKeyOf(key), value } };
}

/**
 * Checks a signed bundle on its own: the signature over the canonical bundle with the key it names,
 * and each event's chain hash and evidence digest. Returns every problem found (none: it holds).
 */
export function verifyProof(doc: unknown, expectedPublicKey?: string): string[] {
  const problems: string[] = [];
  const d = doc as Partial<SignedProof> | null;
  if (d?.bundle?.format !== PROOF_FORMAT || d.signature?.alg !== "Ed25519")
    return [`not a ${PROOF_FORMAT} bundle signed with Ed25519`];
  try {
    const publicKey = createPublicKey({
      key: Buffer.from(d.signature.public_key, "base64"),
      format: "der",
      type: "spki",
    });
    const good = verify(
      null,
      Buffer.from(canonicalJson(d.bundle), "utf8"),
      publicKey,
      Buffer.from(d.signature.value, "base64"),
    );
    if (!good) problems.push("the signature does not match the bundle: it was changed after signing");
  } catch {
    problems.push("the signature or its public key is unreadable");
  }
  if (expectedPublicKey !== undefined && d.signature.public_key !== expectedPublicKey)
    problems.push("the bundle is signed with another key than the one expected");
  for (const e of d.bundle.events ?? []) {
    const hash = computeChainHash(e.prev_hash, {
      seq: e.seq,
      event: withoutEvidence(e.event),
      evidence_digest: e.evidence_digest,
      recorded_at: e.recorded_at,
    });
    if (hash !== e.hash) problems.push(`event ${e.seq}: its fields do not produce its chain hash`);
    if (e.evidence_erased_at === null && evidenceDigest(e.event.evidence) !== e.evidence_digest)
      problems.push(`event ${e.seq}: its evidence does not match its digest`);
  }
  return problems;
}
