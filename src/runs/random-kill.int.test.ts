/**
 * Behaviour 10's crash test: a sync runs as a real child process and is killed (SIGKILL) at random
 * points — after any vendor response, after any committed operation — then run again. At least 50
 * kills; after each chain of kills one clean run must leave every system exactly as a run that was
 * never killed: no duplicate contact, no lost opt-out, the ledger chain intact. The world fans out:
 * Raiser's Edge NXT, two Constant Contact accounts and a Mailchimp audience in one pair.
 * `CONCORD_KILLS=1000` runs that many kills and reports the distinct kill points reached. A second
 * test kills the process in the one window a crash can hurt a connection: between the vendor's
 * answer with a rotated refresh token and its save.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConcordConfigShapeSchema } from "../config/concord-config";
import type { RunningBlackbaudEmulator } from "../connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import type { StartedConstantContactEmulator } from "../connectors/constant-contact/emulator/constant-contact-emulator";
import type { StartedMailchimpEmulator } from "../connectors/mailchimp/emulator/mailchimp-emulator";
import type { RunningEmulator } from "../connectors/manifest";
import {
  grantCredentials,
  startEmulators,
  worldConnectionEntries,
  type WorldConnection,
} from "../emulated-world/emulated-world";
import { openSecret, sealSecret } from "../config/secret-box";
import { rotatedTokensName } from "../connections/connection-credentials";
import { verifyLedger } from "../ledger/verify-ledger";
import { createLogger } from "../observability/logger";
import { openStore } from "../store/open-store";
import { connectionHealthTracker } from "../connections/connection-health";
import { openConnections } from "../connections/open-connection";
import { createRandom } from "../demo/random";
import { syncPair } from "./sync-pair";
import { post } from "../../test/support/sync-harness";
import { TEST_ENV, TEST_KEY } from "../../test/support/test-credentials";
import { appealsTopic } from "../../test/support/world-config";

const root = join(import.meta.dirname, "..", "..");

/** The emulated world the kills happen in: Raiser's Edge NXT, two Constant Contact accounts and a Mailchimp audience, fast. */
const fast = { limits: { requests_per_second: 1000 } };
const cc = { rateLimitPerSecond: null, activityPollsToComplete: 1 };
const WORLD: WorldConnection[] = [
  {
    id: "re-nxt",
    system: "blackbaud-renxt",
    emulator: { ratePerSecond: 1_000_000, webhooks: { autoDeliver: false } },
    config: fast,
  },
  { id: "cc-main", system: "constant-contact", emulator: cc, config: fast },
  { id: "cc-appeals", system: "constant-contact", emulator: cc, config: fast },
  { id: "mc-main", system: "mailchimp", emulator: { autoDeliverWebhooks: false }, config: fast },
];
const AUDIENCE = "a1b2c3d4e5";
/** 50 in `npm test`; `CONCORD_KILLS=1000 npx vitest run src/runs/random-kill.int.test.ts` for the long run. */
const KILLS = Math.max(1, Number(process.env["CONCORD_KILLS"] ?? 50) || 50);
const KILLS_PER_CHAIN = 5;
const PEOPLE = 24;

type ChildResult = { signal: NodeJS.Signals | null; code: number | null; stdout: string; stderr: string };
type Outcome = {
  points: number;
  status: string;
  operations: number;
  waiting: unknown[];
  rejections: unknown[];
};

describe("random kills of a running sync (SQLite, real processes)", () => {
  let emulators: Map<string, RunningEmulator>;
  let re: RunningBlackbaudEmulator;
  let ccMain: StartedConstantContactEmulator;
  let ccAppeals: StartedConstantContactEmulator;
  let mc: StartedMailchimpEmulator;
  let dir: string;
  let child: string;
  let rawConfig: Record<string, unknown>;

  beforeAll(async () => {
    emulators = await startEmulators(WORLD);
    re = emulators.get("re-nxt")?.native as RunningBlackbaudEmulator;
    ccMain = emulators.get("cc-main")?.native as StartedConstantContactEmulator;
    ccAppeals = emulators.get("cc-appeals")?.native as StartedConstantContactEmulator;
    mc = emulators.get("mc-main")?.native as StartedMailchimpEmulator;
    dir = mkdtempSync(join(tmpdir(), "concord-kill-"));
    // One bundled script: a killed process must start in a fraction of a second, 60 times over.
    child = join(root, "node_modules", ".cache", `concord-random-kill-child-${process.pid}.mjs`);
    await build({
      entryPoints: [join(root, "test", "support", "random-kill-child.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node24",
      packages: "external",
      outfile: child,
      logLevel: "silent",
    });
    rawConfig = {
      connections: worldConnectionEntries(WORLD, emulators),
      topics: [
        {
          ...appealsTopic(),
          constructs: { ...appealsTopic().constructs, "mc-main": { type: "interest", name: "Appeals" } },
        },
      ],
      pairs: [
        {
          id: "re-cc",
          crm: "re-nxt",
          platforms: [{ connection: "cc-main" }, { connection: "cc-appeals" }, { connection: "mc-main" }],
          audiences: [
            {
              crm_list: { id: "news" },
              platform: "mc-main",
              platform_list: { name: "Newsletter" },
              delete_policy: "remove_membership",
            },
            { crm_list: { id: "appeals" }, platform: "mc-main", platform_list: { name: "Appeals" } },
            {
              crm_list: { id: "news" },
              platform: "cc-main",
              platform_list: { name: "Newsletter" },
              delete_policy: "remove_membership",
            },
            { crm_list: { id: "appeals" }, platform: "cc-appeals", platform_list: { name: "Appeals" } },
          ],
          fields: [
            { canonical: "first_name", crm: "first", platform: "first_name", owner: "crm" },
            { canonical: "last_name", crm: "last", platform: "last_name", owner: "crm" },
          ],
        },
      ],
    };
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...emulators.values()].map((e) => e.close()));
    rmSync(dir, { recursive: true, force: true });
    rmSync(child, { force: true });
  });

  const runChild = (
    dbFile: string,
    killAt?: number,
    more: { kill_at_token_of?: string } = {},
  ): Promise<ChildResult> => {
    const argsFile = join(dir, `args-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(argsFile, JSON.stringify({ db_file: dbFile, config: rawConfig, kill_at: killAt, ...more }));
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [child, argsFile], {
        cwd: root,
        env: { ...process.env, LOG_LEVEL: "silent" },
      });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      p.on("error", reject);
      p.on("close", (code, signal) => {
        resolve({ code, signal, stdout, stderr });
      });
    });
  };
  const outcomeOf = (r: ChildResult): Outcome => {
    if (r.code !== 0)
      throw new Error(`the sync process failed (${String(r.code)} ${String(r.signal)}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim()) as Outcome;
  };

  /** Fresh emulators and store: a first sync, then the changes the sync under test must carry. */
  async function prepare(name: string): Promise<string> {
    for (const emu of [re, ccMain, ccAppeals, mc]) await post(emu.baseUrl, "/__emulator/reset", {});
    const people = Array.from({ length: PEOPLE + 6 }, (_, i) => ({
      type: "Individual",
      first: `P${i}`,
      last: "Example",
      email: { address: `p${i}@example.org`, type: "Email", primary: true },
      ...(i === 20 ? { requests_no_email: true } : {}),
    }));
    const ids = (
      await post<{ constituents: { id: string }[] }>(re.baseUrl, "/__emulator/seed", { constituents: people })
    ).constituents.map((c) => c.id);
    const id = (i: number): string => ids[i] ?? "";
    await post(re.baseUrl, "/__emulator/seed", {
      lists: [
        { id: "news", name: "Monthly newsletter", ids: ids.slice(0, PEOPLE) },
        { id: "appeals", name: "Appeal recipients", ids: ids.slice(0, PEOPLE / 2) },
      ],
    });
    await post(ccMain.baseUrl, "/__emulator/seed", {
      lists: [{ name: "Newsletter" }],
      contacts: [{ email_address: { address: "upload@example.org", permission_to_send: "implicit" } }],
    });
    await post(ccAppeals.baseUrl, "/__emulator/seed", { lists: [{ name: "Appeals" }] });
    await post(mc.baseUrl, "/__emulator/seed", {
      audience: {
        id: AUDIENCE,
        name: "Supporters",
        tags: ["Newsletter"],
        interest_categories: [{ title: "Topics", interests: ["Appeals"] }],
      },
    });
    await post(mc.baseUrl, "/__emulator/seed", {
      list_id: AUDIENCE,
      members: [{ email: "signup@example.org", status: "subscribed", source: "Hosted Signup Form" }],
    });

    const dbFile = join(dir, `${name}.db`);
    const store = await openStore({ file: dbFile });
    // The first sync runs in this process: only the sync under test is killed.
    const config = ConcordConfigShapeSchema.parse(rawConfig);
    for (const c of config.connections)
      await grantCredentials(c, emulators.get(c.id)!, { store, key: TEST_KEY });
    const now = (): Date => new Date();
    const health = connectionHealthTracker({ store, logger: createLogger({ level: "silent" }), now });
    const connections = openConnections(
      config.connections,
      {
        store,
        env: TEST_ENV,
        key: TEST_KEY,
        health,
        now,
        sleep: () => new Promise((resolve) => setImmediate(resolve)),
      },
      config.topics,
    );
    const first = await syncPair(
      { store, config, connections, now },
      config.pairs[0] ?? (undefined as never),
    );
    expect(first.execution?.rejections).toEqual([]);
    await store.close();

    // The changes: opt-outs from every path, an email change, new people, a list removal, a field edit.
    const act = (emu: { baseUrl: string }, body: Record<string, unknown>) =>
      post(emu.baseUrl, "/__emulator/act", body);
    await act(ccMain, { as: "contact", action: "unsubscribe", email: "p1@example.org" });
    await act(ccMain, { as: "contact", action: "one_click_unsubscribe", email: "p2@example.org" });
    await act(ccMain, { as: "contact", action: "spam_complaint", email: "p3@example.org" });
    await act(ccAppeals, { as: "contact", action: "unsubscribe", email: "p4@example.org" });
    await act(mc, { list_id: AUDIENCE, as: "contact", action: "unsubscribe", email: "p11@example.org" });
    await act(mc, {
      list_id: AUDIENCE,
      as: "contact",
      action: "spam_complaint",
      email: "signup@example.org",
    });
    await act(ccMain, { as: "contact", action: "unsubscribe", email: "upload@example.org" });
    await act(ccMain, {
      as: "admin",
      action: "update",
      email: "p9@example.org",
      fields: { first_name: "Changed" },
    });
    await act(re, { as: "admin", action: "set_requests_no_email", constituent_id: id(5) });
    await act(re, { as: "admin", action: "set_do_not_email", constituent_id: id(6) });
    await act(re, {
      as: "admin",
      action: "add_consent",
      constituent_id: id(7),
      category: "Appeals",
      response: "OptOut",
    });
    await act(re, {
      as: "admin",
      action: "change_primary_email",
      constituent_id: id(8),
      new_address: "p8.new@example.org",
    });
    await act(re, { as: "admin", action: "remove_from_list", list_id: "news", ids: [id(10)] });
    await act(re, {
      as: "admin",
      action: "add_to_list",
      list_id: "news",
      ids: ids.slice(PEOPLE, PEOPLE + 6),
    });
    return dbFile;
  }

  /** Every system's state, by content (ids differ between runs): what a person and a regulator care about. */
  async function snapshot(dbFile: string) {
    const cc = (emu: StartedConstantContactEmulator) =>
      [...emu.store.contacts.values()]
        .filter((c) => c.deleted_at === null)
        .map((c) => ({
          email: c.email_address?.address ?? null,
          permission: c.email_address?.permission_to_send ?? null,
          lists: c.list_memberships.map((l) => emu.store.lists.get(l)?.name ?? l).sort(),
          first_name: c.fields["first_name"] ?? null,
        }))
        .sort((a, b) => String(a.email).localeCompare(String(b.email)));
    const audience = mc.store.audiences.get(AUDIENCE);
    const interestName = (id: string) => audience?.interests.find((i) => i.id === id)?.name ?? id;
    const mcMembers = [...(audience?.members.values() ?? [])]
      .map((m) => ({
        email: m.email_address,
        status: m.status,
        tags: [...m.tags.keys()].map((t) => audience?.tags.find((x) => x.id === t)?.name ?? t).sort(),
        groups: Object.entries(m.interests)
          .filter(([, on]) => on)
          .map(([id]) => interestName(id))
          .sort(),
        first_name: m.merge_fields["FNAME"] ?? null,
      }))
      .sort((a, b) => a.email.localeCompare(b.email));
    const state = re.state;
    const crm = [...state.constituents.values()]
      .map((c) => {
        const consents = state.listConsents(c.id, {
          mostRecentOnly: false,
          channels: [],
          categories: [],
        }) as {
          category?: string;
          constituent_consent_response: string;
        }[];
        return {
          email: state.primaryEmail(c.id)?.address ?? null,
          do_not_email: state.primaryEmail(c.id)?.do_not_email ?? null,
          requests_no_email: c.requests_no_email,
          appeals:
            consents.filter((r) => r.category === "Appeals").at(-1)?.constituent_consent_response ?? null,
          channel:
            consents.filter((r) => r.category === undefined).at(-1)?.constituent_consent_response ?? null,
          first: (c.fields["first"] as string | undefined) ?? null,
          news: state.lists.get("news")?.ids.includes(c.id) ?? false,
        };
      })
      .sort((a, b) => String(a.email).localeCompare(String(b.email)));
    const store = await openStore({ file: dbFile });
    try {
      const ledger = await verifyLedger(store);
      const keys = await store.db.selectFrom("contacts").select("email_match_key").execute();
      const counted = new Map<string, number>();
      for (const k of keys)
        if (k.email_match_key) counted.set(k.email_match_key, (counted.get(k.email_match_key) ?? 0) + 1);
      const duplicates = [...counted].filter(([, n]) => n > 1).map(([k]) => k);
      return {
        systems: { cc_main: cc(ccMain), cc_appeals: cc(ccAppeals), mailchimp: mcMembers, crm },
        ledger_ok: ledger.ok,
        duplicates,
      };
    } finally {
      await store.close();
    }
  }

  let reference: Outcome | undefined;
  let expected: Awaited<ReturnType<typeof snapshot>> | undefined;
  const referenceRun = async () => {
    if (reference !== undefined && expected !== undefined) return { reference, expected };
    const refDb = await prepare("reference");
    reference = outcomeOf(await runChild(refDb));
    expected = await snapshot(refDb);
    return { reference, expected };
  };

  it(
    `reaches the state of an unkilled run after ${KILLS} random kills`,
    async () => {
      const { reference, expected } = await referenceRun();
      expect(reference.status).toBe("succeeded");
      expect(reference.rejections).toEqual([]);
      expect(reference.operations).toBeGreaterThanOrEqual(10);
      expect(expected.ledger_ok).toBe(true);
      expect(expected.duplicates).toEqual([]);
      // The opt-outs the sync under test carries are in place in the reference.
      const crmOf = (email: string) => expected.systems.crm.find((c) => c.email === email);
      expect(crmOf("p1@example.org")?.requests_no_email).toBe(true);
      expect(crmOf("p4@example.org")?.appeals).toBe("OptOut");
      expect(expected.systems.cc_main.find((c) => c.email === "p5@example.org")?.permission).toBe(
        "unsubscribed",
      );
      // Fan-out: Mailchimp's unsubscribe reached the CRM and Constant Contact; the CRM's reached Mailchimp.
      expect(crmOf("p11@example.org")?.requests_no_email).toBe(true);
      expect(expected.systems.cc_main.find((c) => c.email === "p11@example.org")?.permission).toBe(
        "unsubscribed",
      );
      const mcOf = (email: string) => expected.systems.mailchimp.find((m) => m.email === email);
      expect(mcOf("p1@example.org")?.status).toBe("unsubscribed");
      expect(mcOf("p5@example.org")?.status).toBe("unsubscribed");
      expect(mcOf("p0@example.org")).toMatchObject({
        status: "subscribed",
        tags: ["Newsletter"],
        groups: ["Appeals"],
      });
      expect(mcOf("p4@example.org")?.groups).toEqual([]);

      const random = createRandom(20261122).next;
      let kills = 0;
      let chains = 0;
      const points: number[] = [];
      while (kills < KILLS) {
        chains += 1;
        const db = await prepare(`chain-${chains}`);
        for (let k = 0; k < KILLS_PER_CHAIN; k += 1) {
          const at = 1 + Math.floor(random() * reference.points);
          const r = await runChild(db, at);
          if (r.signal === "SIGKILL") {
            kills += 1;
            points.push(at);
          } else outcomeOf(r); // the run finished before the point: it must have finished cleanly
        }
        const rerun = outcomeOf(await runChild(db));
        expect(rerun.rejections, `chain ${chains}`).toEqual([]);
        const got = await snapshot(db);
        expect(got.duplicates, `chain ${chains}: duplicate contacts`).toEqual([]);
        expect(got.ledger_ok, `chain ${chains}: ledger chain`).toBe(true);
        expect(
          got.systems,
          `chain ${chains}: kill points ${points.slice(-KILLS_PER_CHAIN).join(", ")}`,
        ).toEqual(expected.systems);
      }
      console.log(
        `random kills: ${kills} kills in ${chains} chains; ${new Set(points).size} distinct kill points reached of ${reference.points}: ${[...new Set(points)].sort((a, b) => a - b).join(", ")}`,
      );
      expect(kills).toBeGreaterThanOrEqual(KILLS);
    },
    900_000 + KILLS * 20_000,
  );

  it("a kill between a rotated token's answer and its save breaks the connection loudly and loses no opt-out", async () => {
    const { expected } = await referenceRun();
    const db = await prepare("token-window");
    // The access token of cc-main is due: the run under test must renew it first.
    const store = await openStore({ file: db });
    const name = rotatedTokensName("cc-main");
    const row = await store.credentials.get(name);
    const opened = openSecret(row?.ciphertext ?? "", TEST_KEY, name);
    if (!opened.ok) throw new Error(opened.error.message);
    const tokens = JSON.parse(opened.value) as Record<string, string>;
    const due = sealSecret(
      JSON.stringify({ ...tokens, access_token_expires_at: "2000-01-01T00:00:00.000Z" }),
      TEST_KEY,
      name,
    );
    if (!due.ok) throw new Error(due.error.message);
    await store.credentials.put(name, due.value, TEST_KEY.id);
    await store.close();

    const killed = await runChild(db, undefined, { kill_at_token_of: "cc-main" });
    expect(killed.signal).toBe("SIGKILL");
    // The vendor spent the stored refresh token when it issued the lost one: the next run finds the
    // connection refused, says so and what to do, and keeps everything else going.
    const refused = outcomeOf(await runChild(db));
    // Its operations wait for the connection; the other systems' are done.
    expect(refused.waiting).toMatchObject([{ code: "auth_invalid", connection_id: "cc-main" }]);
    const after = await openStore({ file: db });
    try {
      const health = await after.health.get("cc-main");
      expect(health?.status).toBe("broken");
      expect(health?.reason).toMatch(/auth_invalid.*authorised again/);
      // The operator connects the account again; the opt-outs waited in the ledger.
      await grantCredentials(
        ConcordConfigShapeSchema.parse(rawConfig).connections.find((c) => c.id === "cc-main")!,
        emulators.get("cc-main")!,
        { store: after, key: TEST_KEY },
      );
    } finally {
      await after.close();
    }
    const renewed = outcomeOf(await runChild(db));
    expect(renewed.rejections).toEqual([]);
    const got = await snapshot(db);
    expect(got.duplicates).toEqual([]);
    expect(got.ledger_ok).toBe(true);
    expect(got.systems).toEqual(expected.systems);
  }, 300_000);
});
