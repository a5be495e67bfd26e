/** The `concord` CLI run as a real process: exit codes, messages and the commands that exist today. */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sql } from "kysely";
import { openSecret, parseSecretKey } from "../config/secret-box";
import { appendConsentEvents } from "../ledger/consent-ledger";
import { openStore } from "../store/open-store";

const root = join(import.meta.dirname, "..", "..");
const tsx = join(root, "node_modules", "tsx", "dist", "cli.mjs");

type Run = { code: number | null; stdout: string; stderr: string };

function concord(args: string[], env: Record<string, string>, until?: RegExp, stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tsx, join(root, "src", "main.ts"), ...args], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: "", ...env },
    });
    child.stdin.end(stdin ?? "");
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (until?.test(stdout)) child.kill("SIGTERM");
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

function parseKey(b64: string) {
  const key = parseSecretKey(b64);
  if (!key.ok) throw new Error(key.error.message);
  return key.value;
}

const event = (i: number) => ({
  kind: "opt_out" as const,
  scope: { kind: "global" as const },
  contact_id: `con_cli${i}`,
  channel: "email" as const,
  source: { system: "constant-contact", connection: "cc-main" },
  mechanism: "unsubscribe_link" as const,
  actor: { kind: "contact" as const },
  occurred_at: `2026-11-0${i + 1}T10:00:00.000Z`,
  observed_at: `2026-11-0${i + 1}T10:00:05.000Z`,
  evidence: { reason: "footer link" },
});

describe("concord CLI", () => {
  it("verifies a sound ledger (exit 0) and names the first broken link of a tampered one (exit 1)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const store = await openStore({ file: join(dir, "concord.db") });
    await appendConsentEvents(store, [event(0), event(1), event(2)]);
    await store.close();

    const ok = await concord(["ledger", "verify", "--json"], { CONCORD_DATA_DIR: dir });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, count: 3 });

    const csv = await concord(["ledger", "export", "--format", "csv"], { CONCORD_DATA_DIR: dir });
    expect(csv.code).toBe(0);
    expect(csv.stdout.trim().split("\n")).toHaveLength(4);
    const nowhere = await concord(["ledger", "export", "--output", join(dir, "no", "such", "x.csv")], {
      CONCORD_DATA_DIR: dir,
    });
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/^Cannot write the export to .*x\.csv: /);
    // An export to a file replaces it only once complete: one that fails leaves the last one as it was.
    const kept = join(dir, "export.jsonl");
    expect((await concord(["ledger", "export", "--output", kept], { CONCORD_DATA_DIR: dir })).code).toBe(0);
    const before = readFileSync(kept, "utf8");
    expect(before.trim().split("\n")).toHaveLength(3);
    const unknown = await concord(["ledger", "export", "--contact", "ada@example.org", "--output", kept], {
      CONCORD_DATA_DIR: dir,
    });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("No contact ada@example.org: --contact takes a contact's id");
    const unreachable = await concord(["ledger", "export", "--output", kept], {
      DATABASE_URL: "postgres://nobody:x@127.0.0.1:1/concord",
    });
    expect(unreachable.code).not.toBe(0);
    expect(readFileSync(kept, "utf8")).toBe(before);
    expect(readdirSync(dir).filter((f) => f.includes(".partial-"))).toEqual([]);
    const one = await concord(["ledger", "export", "--contact", "con_cli1", "--output", kept], {
      CONCORD_DATA_DIR: dir,
    });
    expect(one.stderr).toContain("Exported 1 consent events");
    expect(readFileSync(kept, "utf8").trim().split("\n")).toHaveLength(1);

    const tamper = await openStore({ file: join(dir, "concord.db") });
    await sql`update consent_events set event_json = replace(event_json, 'unsubscribe_link', 'admin_edit') where seq = 2`.execute(
      tamper.db,
    );
    await tamper.close();
    const broken = await concord(["ledger", "verify"], { CONCORD_DATA_DIR: dir });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain("broken at seq 2");
  });

  it("seals a ledger with CONCORD_SECRET_KEY, then verifies every seal and an external head", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const store = await openStore({ file: join(dir, "concord.db") });
    await appendConsentEvents(store, [event(0), event(1)]);
    await store.close();
    const env = { CONCORD_DATA_DIR: dir, CONCORD_SECRET_KEY: Buffer.alloc(32, 9).toString("base64") };

    const noKey = await concord(["ledger", "seal"], { CONCORD_DATA_DIR: dir });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("needs CONCORD_SECRET_KEY");
    const unsealed = await concord(["ledger", "verify"], env);
    expect(unsealed.code).toBe(1);
    expect(unsealed.stdout).toContain("unsealed_row");
    expect(unsealed.stdout).toContain("concord ledger seal");

    const sealed = await concord(["ledger", "seal"], env);
    expect(sealed.code).toBe(0);
    expect(sealed.stdout).toContain("Sealed 2 rows");
    const verified = await concord(["ledger", "verify", "--json"], env);
    expect(verified.code).toBe(0);
    const result = JSON.parse(verified.stdout) as { sealed: boolean; head: { seq: number; hash: string } };
    expect(result.sealed).toBe(true);
    const anchor = `${result.head.seq}:${result.head.hash}`;
    expect((await concord(["ledger", "verify", "--expect-head", anchor], env)).code).toBe(0);

    const later = `3:${result.head.hash}`;
    const missing = await concord(["ledger", "verify", "--expect-head", later], env);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain("anchor_missing");
    const bad = await concord(["ledger", "verify", "--expect-head", "2:xyz"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("expected SEQ:HASH");
    // Without the key the chain still verifies, with a warning that seals went unchecked.
    const plain = await concord(["ledger", "verify"], { CONCORD_DATA_DIR: dir });
    expect(plain.code).toBe(0);
    expect(plain.stderr).toContain("seals were not checked");
  });

  it("rejects a bad config file with the file, the path inside it and what was expected (exit 2)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "connections:\n  - id: cc-main\n    system: constant-contakt\n");
    const run = await concord(["config", "check", file], { CONCORD_DATA_DIR: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(file);
    expect(run.stderr).toContain("connections[0].system");
    // An empty CONCORD_CONFIG (a compose file's `CONCORD_CONFIG=`) is unset: the default file is named.
    const unset = await concord(["config", "check"], { CONCORD_DATA_DIR: dir, CONCORD_CONFIG: "" });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/^concord\.yaml: /m);
  });

  it("refuses a bad environment before doing anything (exit 2)", async () => {
    const run = await concord(["migrate"], { DATABASE_URL: "mysql://nope" });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("DATABASE_URL");
  });

  it("refuses a port that is not decimal digits instead of reading it as another number (exit 2)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const run = await concord(["serve", "--port", "0x50"], { CONCORD_DATA_DIR: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('expected a port number from 0 to 65535 in decimal digits, got "0x50"');
  });

  it("refuses `concord worker` on the embedded SQLite store and says why (exit 2)", async () => {
    const run = await concord(["worker"], {});
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("concord worker needs PostgreSQL (DATABASE_URL)");
  });

  it("says why `concord serve` could not listen and what to change, without a stack trace (exit 1)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const inUse = await concord(["serve", "--port", String(port)], { CONCORD_DATA_DIR: dir });
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toContain(
        `concord serve could not listen on 127.0.0.1:${port}: the port is taken by another process; stop it, or choose another port with --port (or PORT)`,
      );
      expect(inUse.stderr).not.toMatch(/^\s+at /m);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
    // An address from the documentation range, which no machine here has.
    const elsewhere = await concord(["serve", "--port", "0", "--host", "192.0.2.1"], {
      CONCORD_DATA_DIR: dir,
    });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain(
      "concord serve could not listen on 192.0.2.1:0: that host is not an address of this machine; choose another with --host (or HOST)",
    );
  });

  it("serve listens where the config's server section says, unless --port or PORT says otherwise", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const free = createServer();
    await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve));
    const port = (free.address() as AddressInfo).port;
    await new Promise((resolve) => free.close(resolve));
    const file = join(dir, "concord.yaml");
    writeFileSync(
      file,
      `connections: [{ id: cc-main, system: constant-contact }]\nserver: { port: ${port}, host: 127.0.0.1 }\n`,
    );
    const env = { CONCORD_DATA_DIR: dir, CONCORD_ADMIN_PASSWORD: "a long enough password" };
    const configured = await concord(["serve", "--config", file], env, /Concord is listening on/);
    expect(configured.stdout).toContain(`Concord is listening on http://127.0.0.1:${port} `);
    const flagged = await concord(["serve", "--config", file, "--port", "0"], env, /Concord is listening on/);
    expect(flagged.stdout).toMatch(/Concord is listening on http:\/\/127\.0\.0\.1:\d+ /);
    expect(flagged.stdout).not.toContain(`:${port} `);
  });

  it("says which store could not be opened and what to check, without a stack trace (exit 1)", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    for (const command of [["migrate"], ["serve", "--port", "0", "--config", "examples/demo.yaml"]]) {
      const run = await concord(command, {
        DATABASE_URL: `postgres://concord:hunter2-secret@127.0.0.1:${port}/concord`,
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(
        `concord: the store's database postgres://***@127.0.0.1:${port}/concord could not be opened: nothing is listening at 127.0.0.1:${port}`,
      );
      expect(run.stderr).not.toContain("hunter2-secret");
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
  });

  it("runs an emulator alone and prints its base URL", async () => {
    const run = await concord(
      ["emulate", "blackbaud-renxt", "--port", "0"],
      {},
      /listening on http:\/\/127\.0\.0\.1:\d+/,
    );
    expect(run.stdout).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
  });

  it("stores a secret sealed with CONCORD_SECRET_KEY, never in clear, and the config resolves it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"));
    const key = Buffer.alloc(32, 7).toString("base64");
    const secret = "refresh-token-that-must-not-leak";
    const noKey = await concord(
      ["secrets", "set", "cc-main.refresh_token"],
      { CONCORD_DATA_DIR: dir },
      undefined,
      secret,
    );
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("CONCORD_SECRET_KEY is not set");
    for (const [name, says] of [
      ["CC Main token", "is not a name a config can reference"],
      ["cc-main.oauth", "is where Concord keeps the tokens it renews"],
    ]) {
      const refused = await concord(
        ["secrets", "set", name ?? ""],
        { CONCORD_DATA_DIR: dir, CONCORD_SECRET_KEY: Buffer.alloc(32, 7).toString("base64") },
        undefined,
        secret,
      );
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(says);
    }

    const set = await concord(
      ["secrets", "set", "cc-main.refresh_token"],
      { CONCORD_DATA_DIR: dir, CONCORD_SECRET_KEY: key },
      undefined,
      `${secret}\n`,
    );
    expect(set.code).toBe(0);
    expect(set.stdout + set.stderr).not.toContain(secret);
    expect(readFileSync(join(dir, "concord.db")).includes(Buffer.from(secret))).toBe(false);

    const store = await openStore({ file: join(dir, "concord.db") });
    const row = await store.credentials.get("cc-main.refresh_token");
    await store.close();
    const opened = openSecret(row!.ciphertext, parseKey(key), "cc-main.refresh_token");
    expect(opened).toEqual({ ok: true, value: secret });

    const removed = await concord(["secrets", "remove", "cc-main.refresh_token"], { CONCORD_DATA_DIR: dir });
    expect(removed.code).toBe(0);
  });

  it("answers unknown commands with help and exit 2", async () => {
    const run = await concord(["frobnicate"], {});
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown command");
  });
});
