/**
 * A configured connection end to end against the Constant Contact emulator: credentials resolved
 * from the config's references, rotated refresh tokens sealed into the store, and an auth failure
 * marking the connection broken and alerting, until renewed credentials make it work again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConnectionSchema } from "../config/concord-config";
import { openSecret, parseSecretKey, sealSecret, type SecretKey } from "../config/secret-box";
import {
  startConstantContactEmulator,
  type StartedConstantContactEmulator,
} from "../connectors/constant-contact/emulator/constant-contact-emulator";
import { createLogger } from "../observability/logger";
import { openStore } from "../store/open-store";
import { storeBackends } from "../../test/support/store-backends";
import type { Store } from "../store/ports";
import { rotatedTokensName } from "./connection-credentials";
import { connectionHealthTracker, type ConnectionAlert } from "./connection-health";
import { openConnection } from "./open-connection";
import { createFakeClock, type FakeClock } from "../../test/support/fake-clock";
import type { CallBudget } from "../connectors/connector";

const keyResult = parseSecretKey(Buffer.alloc(32, 3).toString("base64"));
if (!keyResult.ok) throw new Error(keyResult.error.message);
const key: SecretKey = keyResult.value;

const postgres = storeBackends().find((b) => b.name === "postgres");
/** The calls here never wait: the emulator allows any rate. */
const realTime = { now: () => new Date(), sleep: async () => undefined };
let emulator: StartedConstantContactEmulator;
let store: Store;
let logLines: string[];
let alerts: ConnectionAlert[];
let warnings: string[];

beforeEach(async () => {
  emulator = await startConstantContactEmulator({ rateLimitPerSecond: null, logger: false });
  store = await openStore({ file: ":memory:" });
  logLines = [];
  alerts = [];
  warnings = [];
});
afterEach(async () => {
  await emulator.close();
  await store.close();
});

async function mintRefreshToken(): Promise<string> {
  const res = await fetch(`${emulator.baseUrl}/__emulator/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  const token = (await res.json()) as { refresh_token: string };
  return token.refresh_token;
}

async function storeSecret(name: string, value: string, on: Store = store): Promise<void> {
  const sealed = sealSecret(value, key, name);
  if (!sealed.ok) throw new Error(sealed.error.message);
  await on.credentials.put(name, sealed.value, key.id);
}

function open(on: Store = store, clock: Pick<FakeClock, "now" | "sleep"> = realTime) {
  const connection = ConnectionSchema.parse({
    id: "cc-main",
    system: "constant-contact",
    base_url: `${emulator.baseUrl}/v3`,
    token_url: `${emulator.baseUrl}/oauth2/default/v1/token`,
    credentials: {
      client_id: "concord",
      client_secret: { env: "CC_MAIN_CLIENT_SECRET" },
      refresh_token: { stored: "cc-main.refresh_token" },
    },
  });
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  });
  const health = connectionHealthTracker({
    store: on,
    logger,
    now: () => new Date(),
    notify: async (a) => {
      alerts.push(a);
    },
  });
  return openConnection(connection, {
    store: on,
    env: { CC_MAIN_CLIENT_SECRET: "client-secret-value" },
    key,
    health,
    now: clock.now,
    sleep: clock.sleep,
    warn: (message) => {
      warnings.push(message);
    },
  });
}

describe("openConnection", () => {
  it("finds the API where the config says, else at the manifest's fixed address", () => {
    const deps = {
      store,
      env: {},
      key,
      health: connectionHealthTracker({
        store,
        logger: createLogger({ level: "silent" }),
        now: () => new Date(),
      }),
      now: () => new Date(),
      sleep: async () => undefined,
    };
    const vendor = openConnection(ConnectionSchema.parse({ id: "re-nxt", system: "blackbaud-renxt" }), deps);
    expect(vendor.endpoint).toEqual({
      base_url: "https://api.sky.blackbaud.com",
      token_url: "https://oauth2.sky.blackbaud.com/token",
    });
    const emulated = openConnection(
      ConnectionSchema.parse({
        id: "cc-main",
        system: "constant-contact",
        base_url: `${emulator.baseUrl}/v3`,
      }),
      deps,
    );
    expect(emulated.endpoint).toEqual({
      base_url: `${emulator.baseUrl}/v3`,
      token_url: "https://authz.constantcontact.com/oauth2/default/v1/token",
    });
  });

  it("resolves the config's secret references and seals the rotated refresh token into the store", async () => {
    const first = await mintRefreshToken();
    await storeSecret("cc-main.refresh_token", first);
    const conn = open();
    const check = await conn.healthy(await conn.session().check());
    expect(check.ok, JSON.stringify(check)).toBe(true);

    const row = await store.credentials.get(rotatedTokensName("cc-main"));
    expect(row).toBeDefined();
    expect(row!.ciphertext).not.toContain(first);
    const opened = openSecret(row!.ciphertext, key, rotatedTokensName("cc-main"));
    expect(opened.ok).toBe(true);
    const rotated = JSON.parse(opened.ok ? opened.value : "{}") as {
      refresh_token?: string;
      access_token?: string;
    };
    expect(rotated.refresh_token).toBeDefined();
    expect(rotated.refresh_token).not.toBe(first); // rotating mode: the first one is now dead

    // A new process (a new connection object) uses the rotated token, not the dead configured one.
    const again = await open().session().check();
    expect(again.ok, JSON.stringify(again)).toBe(true);
    expect((await store.health.get("cc-main"))?.status).toBe("ok");
  });

  it("marks the connection broken and alerts once on revoked credentials, loses no work, and recovers when renewed", async () => {
    await storeSecret("cc-main.refresh_token", await mintRefreshToken());
    const conn = open();
    expect((await conn.session().check()).ok).toBe(true);

    await fetch(`${emulator.baseUrl}/__emulator/oauth/revoke`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const session = conn.session();
    const outcomes = await session.apply([
      {
        kind: "update_contact",
        op_id: "op_health_1",
        external_id: "00000000-0000-4000-8000-000000000001",
        first_name: "Ada",
      },
    ]);
    expect(outcomes[0]?.status).not.toBe("succeeded");
    expect(outcomes[0]?.code).toBe("auth_invalid");
    await conn.session().check();
    await new Promise((resolve) => setImmediate(resolve));

    const health = await store.health.get("cc-main");
    expect(health?.status).toBe("broken");
    expect(health?.reason).toContain("auth_invalid");
    expect(alerts.filter((a) => a.status === "broken")).toHaveLength(1);
    const log = logLines.join("");
    expect(log).toContain("connection cc-main is broken");
    expect(log).not.toContain("client-secret-value");

    // The operator renews the credentials: a new refresh token replaces the rotated ones.
    await store.credentials.remove(rotatedTokensName("cc-main"));
    await storeSecret("cc-main.refresh_token", await mintRefreshToken());
    const renewed = open();
    const ok = await renewed.healthy(await renewed.session().check());
    expect(ok.ok, JSON.stringify(ok)).toBe(true);
    expect((await store.health.get("cc-main"))?.status).toBe("ok");
    expect(alerts.map((a) => a.status)).toEqual(["broken", "ok"]);
  });

  it("keeps a renewed token in memory while the store cannot save it, alerts, and saves it once it can", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-token-"));
    const file = join(dir, "concord.db");
    // A store that waits only briefly for another writer, and another writer holding its lock.
    const locked = await openStore({ file, busy_timeout_ms: 20 });
    const other = new BetterSqlite3(file);
    try {
      const first = await mintRefreshToken();
      const sealed = sealSecret(first, key, "cc-main.refresh_token");
      if (!sealed.ok) throw new Error(sealed.error.message);
      await locked.credentials.put("cc-main.refresh_token", sealed.value, key.id);
      other.exec("begin immediate");

      const conn = open(locked);
      // The refresh spends the first token (rotating); its successor cannot be saved.
      const check = await conn.session().check();
      expect(check.ok, JSON.stringify(check)).toBe(true);
      expect(alerts).toMatchObject([{ connection_id: "cc-main", status: "warning", code: "token_unsaved" }]);
      expect(alerts[0]?.message).toContain("kept in memory");
      // This process goes on working with it.
      expect((await conn.session().check()).ok).toBe(true);
      expect(await conn.flush()).toBe(false);
      expect(alerts).toHaveLength(1);

      other.exec("commit");
      expect(await conn.flush()).toBe(true);
      expect(alerts.map((a) => `${a.status} ${a.code}`)).toEqual([
        "warning token_unsaved",
        "resolved token_unsaved",
      ]);
      // A new process finds the live token in the store: the vendor accepts it.
      const restarted = open(locked);
      const again = await restarted.session().check();
      expect(again.ok, JSON.stringify(again)).toBe(true);
    } finally {
      if (other.inTransaction) other.exec("rollback");
      other.close();
      await locked.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a referenced secret that is missing breaks the connection with a clear reason, without throwing", async () => {
    const conn = open();
    const check = await conn.session().check();
    expect(check).toMatchObject({ ok: false, error: { code: "auth_missing" } });
    await conn.settled();
    expect((await store.health.get("cc-main"))?.status).toBe("broken");
    expect(alerts.at(-1)).toMatchObject({ connection_id: "cc-main", status: "broken", code: "auth_missing" });
    expect(warnings.join("\n")).toContain("cc-main.refresh_token");
  });

  /**
   * Two workers of one connection (two connection objects sharing nothing in memory, as two
   * processes would not) check it at once on PostgreSQL, over `wrap` of the store: the rotating
   * refresh token is spent once, and both work.
   */
  const twoWorkersRenewOnce = async (wrap: (on: Store) => Store = (on) => on): Promise<void> => {
    if (postgres === undefined) throw new Error("no PostgreSQL backend");
    const shared = await postgres.create();
    try {
      await storeSecret("cc-main.refresh_token", await mintRefreshToken(), shared.store);
      const on = wrap(shared.store);
      const checks = await Promise.all([open(on).session().check(), open(on).session().check()]);
      expect(
        checks.map((c) => c.ok),
        JSON.stringify(checks),
      ).toEqual([true, true]);
      const renewals = emulator.kit.requests.filter((r) => r.path.startsWith("/oauth2/default/v1/token"));
      expect(renewals.map((r) => r.status)).toEqual([200]);
    } finally {
      await shared.cleanup();
    }
  };

  it.skipIf(postgres?.skip_reason !== undefined)(
    "two workers renewing at once on PostgreSQL spend the rotating refresh token once and both work",
    () => twoWorkersRenewOnce(),
  );

  it.skipIf(postgres?.skip_reason !== undefined)(
    "a renewal whose first save fails saves it before another worker may renew: the spent token is never used again",
    async () => {
      // The store refuses the first save of a renewed token (a dropped connection, a failover).
      let refusals = 1;
      await twoWorkersRenewOnce((on) => {
        const credentials = new Proxy(on.credentials, {
          get: (target, prop, receiver) =>
            prop === "put"
              ? async (...args: Parameters<typeof target.put>) => {
                  if (refusals-- > 0) throw new Error("connection terminated unexpectedly");
                  return target.put(...args);
                }
              : Reflect.get(target, prop, receiver),
        });
        return new Proxy(on, {
          get: (target, prop, receiver) =>
            prop === "credentials" ? credentials : Reflect.get(target, prop, receiver),
        });
      });
      expect(refusals).toBeLessThan(0);
    },
  );

  /** The times the store gave the calls of connections opened on `on`, as they are reserved. */
  const recordingReservations = (on: Store): { store: Store; reserved: number[] } => {
    const reserved: number[] = [];
    const budgets = new Proxy(on.budgets, {
      get: (target, prop, receiver) =>
        prop === "reserveCall"
          ? async (...args: Parameters<typeof target.reserveCall>) => {
              const at = await target.reserveCall(...args);
              reserved.push(at);
              return at;
            }
          : Reflect.get(target, prop, receiver),
    });
    const store = new Proxy(on, {
      get: (target, prop, receiver) => (prop === "budgets" ? budgets : Reflect.get(target, prop, receiver)),
    });
    return { store, reserved };
  };

  const callsAtOnce = async (budgets: readonly CallBudget[], each: number): Promise<void> => {
    // Each slot is given back at once, as a connector does once the answer is read.
    const slots = await Promise.all(
      budgets.flatMap((b) =>
        Array.from({ length: each }, () =>
          b.acquire("read").then((slot) => {
            if (slot.ok) slot.value();
            return slot.ok;
          }),
        ),
      ),
    );
    expect(slots.every(Boolean)).toBe(true);
  };

  it.skipIf(postgres?.skip_reason !== undefined)(
    "two workers on PostgreSQL keep the connection's per-second rate together",
    async () => {
      if (postgres === undefined) throw new Error("no PostgreSQL backend");
      const shared = await postgres.create();
      try {
        const { store: on, reserved } = recordingReservations(shared.store);
        // Constant Contact allows 4 calls a second; each worker alone would let 4 go at once.
        const clock = createFakeClock();
        await callsAtOnce([open(on, clock).budget, open(on, clock).budget], 6);
        expect(reserved).toHaveLength(12);
        const times = [...reserved].sort((a, b) => a - b);
        for (let i = 4; i < times.length; i += 1)
          expect(times[i]! - times[i - 4]!, times.join(", ")).toBeGreaterThanOrEqual(1000);
      } finally {
        await shared.cleanup();
      }
    },
  );

  it("one process on SQLite keeps the rate in memory, with no store write per call", async () => {
    const { store: on, reserved } = recordingReservations(store);
    await callsAtOnce([open(on, createFakeClock()).budget], 6);
    expect(reserved).toEqual([]);
  });
});
