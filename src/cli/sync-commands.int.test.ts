/**
 * `concord sync` and `concord reconcile` as real processes against emulators on loopback: a config
 * file, credentials stored encrypted through `concord secrets set`, a dry run, a sync, JSON and CSV
 * output, and exit codes that say whether anything is left.
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson } from "../core/canonical-json";
import type { JsonValue } from "../store/ports";
import {
  startBlackbaudEmulator,
  type RunningBlackbaudEmulator,
} from "../connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import {
  startConstantContactEmulator,
  type StartedConstantContactEmulator,
} from "../connectors/constant-contact/emulator/constant-contact-emulator";

const root = join(import.meta.dirname, "..", "..");
const tsx = join(root, "node_modules", "tsx", "dist", "cli.mjs");
const KEY = Buffer.alloc(32, 5).toString("base64");

type Run = { code: number | null; stdout: string; stderr: string };

describe("concord sync and reconcile (real processes, emulators over HTTP)", () => {
  let re: RunningBlackbaudEmulator;
  let cc: StartedConstantContactEmulator;
  let dir: string;
  let env: Record<string, string>;

  const concord = (args: string[], stdin = ""): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [tsx, join(root, "src", "main.ts"), ...args], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: "", ...env },
      });
      child.stdin.end(stdin);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => {
        resolve({ code, stdout, stderr });
      });
    });

  const post = async (base: string, path: string, body: unknown): Promise<any> => {
    const res = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return res.json();
  };

  beforeAll(async () => {
    re = await startBlackbaudEmulator({
      subscriptionKey: "cli-key",
      webhooks: { autoDeliver: false },
      logger: false,
    });
    cc = await startConstantContactEmulator({
      rateLimitPerSecond: null,
      activityPollsToComplete: 1,
      logger: false,
    });
    dir = mkdtempSync(join(tmpdir(), "concord-sync-cli-"));
    env = {
      CONCORD_DATA_DIR: dir,
      CONCORD_SECRET_KEY: KEY,
      CONCORD_CONFIG: join(dir, "concord.yaml"),
      RE_SECRET: "re-secret",
      RE_KEY: "cli-key",
      CC_SECRET: "cc-secret",
      LOG_LEVEL: "warn",
    };
    writeFileSync(
      env["CONCORD_CONFIG"] ?? "",
      `version: 1
connections:
  - id: re-nxt
    system: blackbaud-renxt
    base_url: ${re.baseUrl}
    token_url: ${re.baseUrl}/oauth2/token
    credentials:
      client_id: concord
      client_secret: { env: RE_SECRET }
      refresh_token: { stored: re-nxt.refresh_token }
      subscription_key: { env: RE_KEY }
  - id: cc-main
    system: constant-contact
    base_url: ${cc.baseUrl}/v3
    token_url: ${cc.baseUrl}/oauth2/default/v1/token
    credentials:
      client_id: concord
      client_secret: { env: CC_SECRET }
      refresh_token: { stored: cc-main.refresh_token }
pairs:
  - id: re-cc
    crm: re-nxt
    platforms:
      - connection: cc-main
    audiences:
      - crm_list: { name: Monthly newsletter }
        platform: cc-main
        platform_list: { name: Newsletter }
`,
    );
    const seeded = await post(re.baseUrl, "/__emulator/seed", {
      constituents: ["ada", "bob", "cy"].map((n) => ({
        type: "Individual",
        first: n,
        last: "Example",
        email: { address: `${n}@example.org`, type: "Email", primary: true },
      })),
    });
    const ids = (seeded.constituents as { id: string }[]).map((c) => c.id);
    await post(re.baseUrl, "/__emulator/seed", { lists: [{ id: "news", name: "Monthly newsletter", ids }] });
    await post(cc.baseUrl, "/__emulator/seed", { lists: [{ name: "Newsletter" }] });
    for (const [name, base] of [
      ["re-nxt", re.baseUrl],
      ["cc-main", cc.baseUrl],
    ] as const) {
      const token = await post(base, "/__emulator/token", { client_id: "concord" });
      const stored = await concord(["secrets", "set", `${name}.refresh_token`], String(token.refresh_token));
      expect(stored.code, stored.stderr).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all([re.close(), cc.close()]);
  });

  it("a dry run shows the plan and writes nothing; a sync applies it; a second sync has nothing to do", async () => {
    const dry = await concord(["sync", "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("Pair re-cc: dry run succeeded");
    expect(dry.stdout).toMatch(/cc-main upsert_contacts: 1 operation, 3 contacts/);
    expect(dry.stdout).toContain("cc-main gains 3 contacts");
    expect(cc.store.contacts.size).toBe(0);

    const sync = await concord(["sync", "--json"]);
    expect(sync.code, sync.stderr).toBe(0);
    const report = JSON.parse(sync.stdout.trim()) as {
      status: string;
      execution: { operations: { succeeded: number } };
    };
    expect(report.status).toBe("succeeded");
    expect(report.execution.operations.succeeded).toBe(1);
    expect(cc.store.contacts.size).toBe(3);

    const again = await concord(["sync"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("plan");
    expect(again.stdout).toContain(": 0 operations");
  }, 120_000);

  it("reconcile lists a difference with its cause (exit 1), --fix applies it, and then there is none (exit 0)", async () => {
    await post(re.baseUrl, "/__emulator/act", {
      as: "admin",
      action: "set_requests_no_email",
      email: "bob@example.org",
    });
    const found = await concord(["reconcile", "--json"]);
    expect(found.code, found.stderr).toBe(1);
    const report = JSON.parse(found.stdout) as {
      differences: { email: string; kind: string; fixable: boolean; cause: string }[];
    };
    expect(report.differences).toEqual([
      expect.objectContaining({ email: "bob@example.org", kind: "opt_out_missing", fixable: true }),
    ]);
    expect(report.differences[0]?.cause).toMatch(/still shows the person subscribed/);

    const csv = await concord(["reconcile", "--csv"]);
    expect(csv.stdout.split("\n")[0]).toBe(
      "pair_id,email,contact_id,connection_id,scope,kind,fixable,system_shows,rules_say,cause",
    );
    expect(csv.stdout).toContain("bob@example.org");

    const fixed = await concord(["reconcile", "--fix"]);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect(fixed.stdout).toContain("remaining after the fix: 0");
    expect(cc.store.findByEmail("bob@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");

    const clean = await concord(["reconcile"]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain("differences: 0");

    // Why is bob not sendable? The rule and the event, from the command line.
    const why = await concord(["explain", "bob@example.org"]);
    expect(why.code, why.stderr).toBe(0);
    expect(why.stdout).toMatch(
      /cc-main \(all email\)\s+NOT SENDABLE\s+rule global_opt_out — decided by evt_/,
    );
    const json = await concord(["explain", "BOB@example.org", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: "found", people: [expect.anything()] });
    expect((await concord(["explain", "nobody@example.org"])).code).toBe(1);
    expect((await concord(["explain", "not-an-address"])).code).toBe(2);
  }, 120_000);

  it("names a missing pair and a broken config with exit 2", async () => {
    const missing = await concord(["sync", "--pair", "nope"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('No pair "nope" in the config; pairs: re-cc');
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "connections: []\n");
    const invalid = await concord(["reconcile", "--config", bad]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("connections");
  }, 60_000);

  it("links, override and erase from the command line", async () => {
    await concord(["sync"]);
    // Links point at server.public_url, which this config does not set: said, exit 2.
    const links = await concord(["links", "cy@example.org"]);
    expect(links.code).toBe(2);
    expect(links.stderr).toContain("server.public_url");

    const askedAt = new Date(Date.now() - 60_000).toISOString();
    const bare = await concord([
      "override",
      "cy@example.org",
      "--by",
      "Ops",
      "--reference",
      " ",
      "--asked-at",
      askedAt,
    ]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain("evidence_required");
    // When the person asked is part of the request: never taken as the moment it is recorded.
    const undated = await concord(["override", "cy@example.org", "--by", "Ops", "--reference", "ticket 7"]);
    expect(undated.code).not.toBe(0);
    expect(undated.stderr).toContain("--asked-at");
    // Cy unsubscribed in Constant Contact, which a sync carried to Raiser's Edge NXT; then she
    // wrote asking for email again.
    await post(cc.baseUrl, "/__emulator/act", {
      as: "contact",
      action: "unsubscribe",
      email: "cy@example.org",
    });
    expect((await concord(["sync"])).code).not.toBe(2);
    const cyInRe = () =>
      [...re.state.constituents.values()].find((c) => c.fields["first"] === "cy")?.requests_no_email;
    expect(cyInRe()).toBe(true);
    const override = await concord([
      "override",
      "cy@example.org",
      "--by",
      "Ops",
      "--reference",
      "ticket 7",
      "--asked-at",
      new Date().toISOString(),
      "--json",
    ]);
    expect(override.code, override.stderr).toBe(0);
    expect(JSON.parse(override.stdout)).toMatchObject({
      ok: true,
      recorded: "appended",
      lifted: expect.arrayContaining([expect.any(String)]),
      carried: [{ pair_id: "re-cc", status: "done" }],
    });
    // Carried at once, with no sync after it: the CRM records her opt-in; Constant Contact, where
    // only she may resubscribe, sent her its confirmation email.
    expect(cyInRe()).toBe(false);
    expect(cc.store.findByEmail("cy@example.org")?.resubscribe).toMatchObject({ confirmed_at: null });
    expect(cc.store.findByEmail("cy@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");

    // A second constituent at Cy's address (her business partner, say): two contacts hold it.
    await post(re.baseUrl, "/__emulator/seed", {
      constituents: [
        {
          type: "Individual",
          first: "Cy",
          last: "Partner",
          email: { address: "cy@example.org", type: "Email", primary: true },
        },
      ],
    });
    expect((await concord(["sync"])).code).not.toBe(2);
    const preview = await concord(["erase", "cy@example.org", "--by", "Ops", "--dry-run"]);
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toContain("nothing was changed");
    const twoHolders = await concord(["erase", "cy@example.org", "--by", "Ops", "--reference", "letter 3"]);
    expect(twoHolders.code).toBe(2);
    expect(twoHolders.stderr).toContain("--all-holders");
    expect(cc.store.findByEmail("cy@example.org")?.deleted_at ?? null).toBeNull();
    const erased = await concord([
      "erase",
      "cy@example.org",
      "--by",
      "Ops",
      "--reference",
      "letter 3",
      "--all-holders",
    ]);
    expect(erased.code, erased.stdout + erased.stderr).toBe(0);
    expect(erased.stdout).toMatch(/completed/);
    expect(cc.store.findByEmail("cy@example.org")?.deleted_at ?? "gone").not.toBeNull();
    expect((await concord(["explain", "cy@example.org"])).code).toBe(1);
    expect((await concord(["erase", "not-an-address", "--by", "Ops"])).code).toBe(2);

    // Proof for an auditor: written, checked on its own, and an edit is found.
    const file = join(dir, "bob-proof.json");
    const proof = await concord(["proof", "bob@example.org", "--output", file]);
    expect(proof.code, proof.stderr).toBe(0);
    expect(proof.stdout).toMatch(/Wrote .*consent events, signed with the public key/);
    const ok = await concord(["proof", "--verify", file]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain("the signature (this installation's key) and every event's chain hash hold");
    const published = /signed with the public key (\S+)\./.exec(proof.stdout)?.[1] ?? "";
    const withKey = await concord(["proof", "--verify", file, "--public-key", published]);
    expect(withKey.code, withKey.stdout).toBe(0);
    // A bundle anyone signed with a key of their own holds for that key only: refused.
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      bundle: JsonValue;
      signature: Record<string, string>;
    };
    const forger = generateKeyPairSync("ed25519");
    const forged = join(dir, "forged-proof.json");
    writeFileSync(
      forged,
      JSON.stringify({
        bundle: doc.bundle,
        signature: {
          alg: "Ed25519",
          public_key: forger.publicKey.export({ format: "der", type: "spki" }).toString("base64"),
          value: sign(null, Buffer.from(canonicalJson(doc.bundle), "utf8"), forger.privateKey).toString(
            "base64",
          ),
        },
      }),
    );
    const refused = await concord(["proof", "--verify", forged]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("signed with another key than the one expected");
    // Where no key says whose it should be, the check says it cannot tell.
    const keyed = env;
    env = { ...env, CONCORD_SECRET_KEY: "" };
    const unknown = await concord(["proof", "--verify", forged]);
    env = keyed;
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain("no key to check the signer against");
    writeFileSync(
      file,
      readFileSync(file, "utf8")
        .replace('"unsubscribe_link"', '"signup_form"')
        .replace('"admin_edit"', '"signup_form"'),
    );
    const tampered = await concord(["proof", "--verify", file]);
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toContain("changed after signing");

    // A file that cannot be written, and options given to the other mode: said, exit 2.
    const nowhere = await concord([
      "proof",
      "bob@example.org",
      "--output",
      join(dir, "no", "such", "p.json"),
    ]);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/^Cannot write the proof to .*p\.json: .*Nothing was written/);
    for (const mixed of [
      ["proof", "bob@example.org", "--verify", file],
      ["proof", "--verify", file, "--output", join(dir, "out.json")],
      ["proof", "bob@example.org", "--public-key", published],
    ]) {
      const refused = await concord(mixed);
      expect(refused.code, mixed.join(" ")).toBe(2);
      expect(refused.stderr).toMatch(
        /--verify checks a bundle already made|--public-key is the key to check a bundle/,
      );
    }
  }, 120_000);

  it("an override with --no-carry waits for the next sync; one a system cannot take now exits 1 naming it", async () => {
    // Bob's flag was set by an admin and carried to Constant Contact (the reconcile test above).
    const bobInRe = () =>
      [...re.state.constituents.values()].find((c) => c.fields["first"] === "bob")?.requests_no_email;
    expect(bobInRe()).toBe(true);
    const recorded = await concord([
      "override",
      "bob@example.org",
      "--by",
      "Ops",
      "--reference",
      "letter 12",
      "--asked-at",
      new Date().toISOString(),
      "--no-carry",
      "--json",
    ]);
    expect(recorded.code, recorded.stderr).toBe(0);
    expect(JSON.parse(recorded.stdout)).toMatchObject({ recorded: "appended", carried: [] });
    // Recorded only: no system was written to.
    expect(bobInRe()).toBe(true);
    expect(cc.store.findByEmail("bob@example.org")?.resubscribe ?? null).toBeNull();
    const text = await concord(["sync"]);
    expect(text.code, text.stdout + text.stderr).not.toBe(2);
    expect(bobInRe()).toBe(false);
    expect(cc.store.findByEmail("bob@example.org")?.resubscribe).toMatchObject({ confirmed_at: null });

    // Ada unsubscribes in Constant Contact, which a sync carries to the CRM; she writes asking for
    // email again while Constant Contact refuses Concord's token.
    await post(cc.baseUrl, "/__emulator/act", {
      as: "contact",
      action: "unsubscribe",
      email: "ada@example.org",
    });
    expect((await concord(["sync"])).code).not.toBe(2);
    await post(cc.baseUrl, "/__emulator/oauth/revoke", {});
    const stopped = await concord([
      "override",
      "ada@example.org",
      "--by",
      "Ops",
      "--reference",
      "letter 13",
      "--asked-at",
      new Date().toISOString(),
      "--json",
    ]);
    expect(stopped.code, stopped.stderr).toBe(1);
    // The JSON alone on stdout; the log says why the connection stopped, on stderr.
    expect(stopped.stderr).toContain("connection cc-main is broken");
    expect(JSON.parse(stopped.stdout)).toMatchObject({
      recorded: "appended",
      carried: [
        { pair_id: "re-cc", status: "left_for_next_sync", problem: expect.stringContaining("cc-main") },
      ],
    });
    expect(cc.store.findByEmail("ada@example.org")?.resubscribe ?? null).toBeNull();
  }, 120_000);
});
