// The account connected again (a new grant, in the serving process) while a worker renews the old
// grant's token: the new grant stands, whichever of the two writes its tokens last.
import { afterEach, beforeEach, expect, it } from "vitest";
import { ConnectionSchema } from "../config/concord-config";
import { parseSecretKey, type SecretKey } from "../config/secret-box";
import type { StoreSession } from "../store/ports";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import { connectionCredentials } from "./connection-credentials";

const parsedKey = parseSecretKey(Buffer.alloc(32, 5).toString("base64"));
if (!parsedKey.ok) throw new Error(parsedKey.error.message);
const key: SecretKey = parsedKey.value;

const connection = ConnectionSchema.parse({
  id: "cc-main",
  system: "constant-contact",
  credentials: { client_id: "concord" },
});

/** A few turns of the event loop: time for a write that nothing holds back to finish. */
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

describeOnBackends("a new grant and a renewal of the old one", (backend) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await backend.create();
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const credentials = (store: StoreSession = t.store) =>
    connectionCredentials(connection, { store, env: {}, key });

  const tokensOf = async (store: StoreSession = t.store) => {
    const read = await credentials(store).get();
    return { access_token: read["access_token"], refresh_token: read["refresh_token"] };
  };

  it("a renewal saved after the account was connected again does not undo the new grant", async () => {
    const worker = credentials();
    const server = credentials();
    await worker.save({ access_token: "old-access", refresh_token: "old-refresh" });

    let replacing: ReturnType<typeof server.replace> | undefined;
    await worker.exclusive!(async () => {
      expect((await worker.get())["refresh_token"]).toBe("old-refresh");
      // The administrator connects the account again while the worker waits for the vendor.
      replacing = server.replace({ access_token: "new-access", refresh_token: "new-refresh" });
      await Promise.race([replacing, turns(50)]);
      await worker.save({ access_token: "renewed-access", refresh_token: "renewed-refresh" });
    });
    expect(await replacing).toEqual({ ok: true });

    const expected = { access_token: "new-access", refresh_token: "new-refresh" };
    expect(await tokensOf()).toEqual(expected);
    // The worker uses the new grant too, not the tokens it renewed from the old one.
    expect({ access_token: (await worker.get())["access_token"] }).toEqual({ access_token: "new-access" });
    expect(worker.unsaved()).toBe(false);
    // Nothing of Concord's own bookkeeping reaches the connector.
    expect(Object.keys(await worker.get()).sort()).toEqual(["access_token", "client_id", "refresh_token"]);
  });

  it.runIf(backend.name === "postgres")(
    "a new grant waits for a worker's renewal under way in another process, and is written over it",
    async () => {
      await credentials().save({ access_token: "old-access", refresh_token: "old-refresh" });
      // The worker's store pauses after it reads the stored tokens to add its renewed ones to them.
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let read: () => void = () => undefined;
      const readDone = new Promise<void>((resolve) => {
        read = resolve;
      });
      let pause = false;
      const workerStore: StoreSession = {
        ...t.store,
        credentials: {
          ...t.store.credentials,
          get: async (name) => {
            const row = await t.store.credentials.get(name);
            if (pause) {
              pause = false;
              read();
              await held;
            }
            return row;
          },
        },
      };
      const worker = credentials(workerStore);
      const server = credentials();

      const renewal = worker.exclusive!(async () => {
        await worker.get();
        pause = true;
        await worker.save({ access_token: "renewed-access", refresh_token: "renewed-refresh" });
      });
      await readDone;
      const replacing = server.replace({ access_token: "new-access", refresh_token: "new-refresh" });
      await Promise.race([replacing, turns(50)]);
      release();
      await renewal;
      expect(await replacing).toEqual({ ok: true });
      expect(await tokensOf()).toEqual({ access_token: "new-access", refresh_token: "new-refresh" });
    },
  );
});
