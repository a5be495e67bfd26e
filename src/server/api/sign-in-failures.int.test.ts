/**
 * Failed sign-ins are counted in the store: several server processes of one installation slow a
 * guesser down together, a restart forgets nobody, and attempts sent at once are counted one after
 * another. Sessions are known to every process, until the admin password changes. On SQLite the second process is a second handle on the same file; on PostgreSQL, the
 * pool's connections.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { openStore } from "../../store/open-store";
import type { Store } from "../../store/ports";
import { describeOnBackends, type TestStore } from "../../../test/support/store-backends";
import { createSessionManager, type SessionManager, type SignIn } from "./sessions";

const PASSWORD = "the right admin password";
const GUESSER = "203.0.113.7";

describeOnBackends("failed sign-ins shared by the server processes", (backend) => {
  let t: TestStore;
  let other: Store | undefined;
  let clock = Date.parse("2026-12-04T10:00:00.000Z");
  const now = (): Date => new Date(clock);
  const server = (store: Store, options: { globalFailuresPerMinute?: number } = {}): SessionManager =>
    createSessionManager({ adminPassword: PASSWORD, store, now, ...options });
  /** A second process's store: its own handle on SQLite, the pool's other connections on PostgreSQL. */
  const secondStore = async (): Promise<Store> => {
    if (t.file === undefined) return t.store;
    other = await openStore({ file: t.file, clock: now });
    return other;
  };
  const codeOf = (r: SignIn): string => (r.ok ? "signed_in" : r.code);

  beforeEach(async () => {
    clock = Date.parse("2026-12-04T10:00:00.000Z");
    t = await backend.create({ clock: now });
  });
  afterEach(async () => {
    await other?.close();
    other = undefined;
    await t.cleanup();
  });

  it("failures made at one server make the client wait at another, and after a restart", async () => {
    const a = server(t.store);
    const b = server(await secondStore());
    for (let i = 0; i < 5; i += 1)
      expect(codeOf(await (i % 2 === 0 ? a : b).signIn(`guess-${String(i)}`, GUESSER))).toBe(
        "wrong_password",
      );
    // Five failures, counted across both: the next attempt waits, even with the right password.
    expect(await b.signIn(PASSWORD, GUESSER)).toEqual({
      ok: false,
      code: "too_many_attempts",
      retry_after_s: 1,
    });
    const restarted = server(t.store);
    expect(codeOf(await restarted.signIn(PASSWORD, GUESSER))).toBe("too_many_attempts");
    // Another client is not held up.
    expect(codeOf(await restarted.signIn(PASSWORD, "198.51.100.9"))).toBe("signed_in");
    clock += 1_000;
    expect(codeOf(await a.signIn("guess-5", GUESSER))).toBe("wrong_password");
    expect(await b.signIn(PASSWORD, GUESSER)).toMatchObject({ code: "too_many_attempts", retry_after_s: 2 });
    clock += 2_000;
    expect(codeOf(await b.signIn(PASSWORD, GUESSER))).toBe("signed_in");
    // Signing in forgets the client's failures, at every server.
    for (let i = 0; i < 5; i += 1) expect(codeOf(await a.signIn("guess", GUESSER))).toBe("wrong_password");
  });

  it("a change of the admin password ends every session made before it, at every server", async () => {
    const signedIn = await server(t.store).signIn(PASSWORD, "198.51.100.9");
    if (!signedIn.ok) throw new Error("the right password was refused");
    const { id } = signedIn.session;
    // Another process of the installation knows the session.
    expect((await server(await secondStore()).get(id))?.csrf_token).toBe(signedIn.session.csrf_token);
    // The operator changes the password (it leaked) and restarts the servers: the session is gone.
    const changed = createSessionManager({
      adminPassword: "a new admin password, changed",
      store: t.store,
      now,
    });
    expect(await changed.get(id)).toBeUndefined();
    expect(codeOf(await changed.signIn(PASSWORD, "198.51.100.9"))).toBe("wrong_password");
    const again = await changed.signIn("a new admin password, changed", "198.51.100.10");
    expect(again.ok && (await changed.get(again.session.id)) !== undefined).toBe(true);
  });

  it("a burst of attempts at once on two servers gets no more than the free failures through", async () => {
    const a = server(t.store);
    const b = server(await secondStore());
    const burst = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? a : b).signIn(`guess-${String(i)}`, GUESSER)),
    );
    const codes = burst.map(codeOf);
    expect(codes.filter((c) => c === "wrong_password")).toHaveLength(5);
    expect(codes.filter((c) => c === "too_many_attempts")).toHaveLength(19);
  });

  it("failures from everyone at both servers count toward the ceiling; a client's failures are forgotten after 15 minutes", async () => {
    const a = server(t.store, { globalFailuresPerMinute: 10 });
    const b = server(await secondStore(), { globalFailuresPerMinute: 10 });
    for (let i = 0; i < 4; i += 1) await a.signIn("guess", `192.0.2.${String(i + 1)}`);
    for (let i = 4; i < 8; i += 1) await b.signIn("guess", `192.0.2.${String(i + 1)}`);
    // Eight failures, then nine: a client's first failures are still free.
    expect(codeOf(await a.signIn("guess", "198.51.100.77"))).toBe("wrong_password");
    expect(codeOf(await a.signIn("guess", "198.51.100.77"))).toBe("wrong_password");
    // Ten now: no failure is free, at either server; a client that has not failed signs in.
    expect(codeOf(await b.signIn(PASSWORD, "198.51.100.77"))).toBe("too_many_attempts");
    expect(codeOf(await b.signIn(PASSWORD, "198.51.100.78"))).toBe("signed_in");
    // A minute on, the failures from everyone have left the window.
    clock += 61_000;
    expect(codeOf(await b.signIn(PASSWORD, "198.51.100.77"))).toBe("signed_in");
    for (let i = 0; i < 5; i += 1) await a.signIn("guess", GUESSER);
    expect(codeOf(await b.signIn(PASSWORD, GUESSER))).toBe("too_many_attempts");
    // 15 minutes after its last failure the client's count starts again: five free failures (the
    // forgotten row is taken over), where the old count would make the second of them wait.
    clock += 15 * 60_000;
    for (let i = 0; i < 5; i += 1) expect(codeOf(await b.signIn("guess", GUESSER))).toBe("wrong_password");
    expect(codeOf(await a.signIn(PASSWORD, GUESSER))).toBe("too_many_attempts");
  });

  it("keeps the failures of at most the given number of clients, the most recent", async () => {
    const failures = t.store.signInFailures;
    const at = (s: number): string => new Date(clock + s * 1_000).toISOString();
    for (let i = 0; i < 5; i += 1)
      expect(
        await failures.take(`client-${String(i)}`, undefined, { failures: 1, last_at: at(i) }, at(-900)),
      ).toBe(true);
    await failures.countFailure({
      window_start: at(0),
      windows_before: at(-60),
      forget_before: at(-900),
      keep_groups: 3,
    });
    for (let i = 0; i < 5; i += 1)
      expect(await failures.of(`client-${String(i)}`, at(-900))).toEqual(
        i < 2 ? undefined : { failures: 1, last_at: at(i) },
      );
    // A count another attempt changed in the meantime is not taken.
    expect(
      await failures.take(
        "client-4",
        { failures: 2, last_at: at(4) },
        { failures: 3, last_at: at(5) },
        at(-900),
      ),
    ).toBe(false);
    expect(await failures.take("client-4", undefined, { failures: 1, last_at: at(5) }, at(-900))).toBe(false);
    expect(await failures.everyoneSince(at(-50))).toBe(1);
  });
});
