/**
 * Operator sessions: sign-in with the admin password (compared in constant time), server-side
 * sessions in the store (by a digest of their id keyed by the admin password, so every server
 * process of the installation knows them, a restart keeps them, and a change of the password ends
 * them all) with an idle and an absolute expiry, and a CSRF token per session that every
 * state-changing request must echo in `x-csrf-token`.
 *
 * Failed sign-ins slow down the client that makes them instead of locking it out: a few are free,
 * then each waits twice as long as the last (at most a minute), so a colleague behind the same
 * proxy waits seconds, not a lockout, while guessing stays hopeless. IPv6 clients count by their /64
 * (one household or server has a whole /64). Past a ceiling of failures from everyone in a minute (a
 * guess spread over many addresses), no failure is free: a client's first one already makes it
 * wait, while a client that has not failed still signs in. Failures are kept in the store, so every
 * server process of the installation counts them together and a restart forgets none; an attempt
 * takes its client's count before the password is compared, so attempts sent at once (to one
 * process or several) are counted one after another, never all as the first.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { clientGroup } from "../../core/client-group";
import type { SessionRepository, SignInFailureRepository, SignInFailures } from "../../store/ports";

export const SESSION_COOKIE = "concord_session";
export const CSRF_HEADER = "x-csrf-token";

export type Session = { id: string; csrf_token: string; created_at: number; last_seen: number };

export type SessionOptions = {
  adminPassword: string;
  /** Where sessions and failed sign-ins are kept: shared by every server process of the installation. */
  store: { sessions: SessionRepository; signInFailures: SignInFailureRepository };
  now: () => Date;
  /** A session unused this long ends (default 12 h). */
  idleMs?: number;
  /** A session ends this long after sign-in whatever its use (default 7 days). */
  maxAgeMs?: number;
  /** Failed sign-ins a client may make before each next one waits (default 5). */
  freeFailures?: number;
  /** The longest wait between failed sign-ins of one client (default 60 s). */
  maxDelayMs?: number;
  /** A client's failures are forgotten this long after its last one (default 15 minutes). */
  forgetAfterMs?: number;
  /** Failed sign-ins from all clients in a minute beyond which everyone waits (default 100). */
  globalFailuresPerMinute?: number;
  /** Told of every sign-in attempt (the sign-in log): never the password. */
  onSignIn?: (event: SignInEvent) => void;
};

export type SignInEvent = {
  outcome: "signed_in" | "wrong_password" | "too_many_attempts";
  /** The client's address as the server sees it (behind `server.trust_proxy`, the forwarded one). */
  client: string;
  /** The group its failures count in: the address, or its /64 for IPv6. */
  group: string;
  /** Failures of that group so far. */
  failures: number;
};

export type SignIn =
  | { ok: true; session: Session }
  | { ok: false; code: "wrong_password" }
  | { ok: false; code: "too_many_attempts"; retry_after_s: number };

export type SessionManager = {
  signIn: (password: string, clientAddress: string) => Promise<SignIn>;
  /** The live session with this id (its idle clock restarted), or undefined. */
  get: (id: string | undefined) => Promise<Session | undefined>;
  end: (id: string | undefined) => Promise<void>;
  /** Constant-time comparison of a request's CSRF header with the session's token. */
  csrfMatches: (session: Session, header: string | undefined) => boolean;
  idleMs: number;
};

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();
const sameSecret = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/** At most this many client groups are remembered for failed attempts; the oldest are forgotten first. */
const MAX_TRACKED_ADDRESSES = 10_000;
/** At most this many live sessions; signing in beyond it ends the least recently used. */
const MAX_SESSIONS = 1_000;
/** Failures from everyone are counted in windows this long; the last minute is six of them. */
const WINDOW_MS = 10_000;
const WINDOWS_A_MINUTE = 6;
/** An attempt whose client's count others keep taking first reads it again this many times, then waits. */
const MAX_TAKES = 5;

export function createSessionManager(options: SessionOptions): SessionManager {
  const idleMs = options.idleMs ?? 12 * 3_600_000;
  const maxAgeMs = options.maxAgeMs ?? 7 * 86_400_000;
  const freeFailures = options.freeFailures ?? 5;
  const maxDelayMs = options.maxDelayMs ?? 60_000;
  const forgetAfterMs = options.forgetAfterMs ?? 15 * 60_000;
  const globalCeiling = options.globalFailuresPerMinute ?? 100;
  const kept = options.store.sessions;
  const failed = options.store.signInFailures;
  // The store keeps a session by a keyed digest of its id (the id is only ever in the operator's
  // cookie), keyed by the admin password: a session made under another password (the one before a
  // change) is found by no process that runs with this one. The store holds nothing of the
  // password, and a digest without the cookie's id tells nothing of it.
  const sessionKey = createHash("sha256")
    .update(`concord session\0${options.adminPassword}`, "utf8")
    .digest();
  const idHash = (id: string): string => createHmac("sha256", sessionKey).update(id, "utf8").digest("hex");
  const now = (): number => options.now().getTime();
  const iso = (t: number): string => new Date(t).toISOString();
  const windowOf = (t: number): number => t - (t % WINDOW_MS);

  /** How long a group with `count` failures waits after its last one (`free` of them cost nothing). */
  const delayAfter = (count: number, free: number): number =>
    count < free ? 0 : Math.min(maxDelayMs, 1000 * 2 ** (count - free));

  const limits = (t: number) => ({
    now: new Date(t).toISOString(),
    idle_since: new Date(t - idleMs).toISOString(),
    created_since: new Date(t - maxAgeMs).toISOString(),
  });

  return {
    idleMs,
    signIn: async (password, address) => {
      const group = clientGroup(address);
      const tell = (outcome: SignInEvent["outcome"], count: number) =>
        options.onSignIn?.({ outcome, client: address, group, failures: count });
      const refuse = (count: number, wait: number): SignIn => {
        tell("too_many_attempts", count);
        return { ok: false, code: "too_many_attempts", retry_after_s: Math.max(1, Math.ceil(wait / 1000)) };
      };
      // The client's count is taken before the password is compared: an attempt counts as a
      // failure until it succeeds, so a burst of attempts cannot all go through as the first.
      let t: number;
      let before: SignInFailures | undefined;
      for (let takes = 0; ; takes += 1) {
        t = now();
        const forget_before = iso(t - forgetAfterMs);
        before = await failed.of(group, forget_before);
        const everyone = await failed.everyoneSince(iso(windowOf(t) - (WINDOWS_A_MINUTE - 1) * WINDOW_MS));
        // This client's pause after its failures; past the ceiling, none of them is free.
        const free = everyone >= globalCeiling ? 1 : freeFailures;
        const wait =
          before !== undefined ? Date.parse(before.last_at) + delayAfter(before.failures, free) - t : 0;
        if (wait > 0) return refuse(before?.failures ?? 0, wait);
        const next = { failures: (before?.failures ?? 0) + 1, last_at: iso(t) };
        if (await failed.take(group, before, next, forget_before)) break;
        // Another attempt of this client took the count first: read it again, a few times.
        if (takes + 1 >= MAX_TAKES) return refuse(next.failures, 1000);
      }
      if (!sameSecret(password, options.adminPassword)) {
        await failed.countFailure({
          window_start: iso(windowOf(t)),
          windows_before: iso(windowOf(t) - WINDOWS_A_MINUTE * WINDOW_MS),
          forget_before: iso(t - forgetAfterMs),
          keep_groups: MAX_TRACKED_ADDRESSES,
        });
        tell("wrong_password", (before?.failures ?? 0) + 1);
        return { ok: false, code: "wrong_password" };
      }
      tell("signed_in", before?.failures ?? 0);
      await failed.clear(group);
      await kept.prune(limits(t), MAX_SESSIONS - 1);
      const session: Session = {
        id: randomBytes(32).toString("base64url"),
        csrf_token: randomBytes(32).toString("base64url"),
        created_at: t,
        last_seen: t,
      };
      const at = new Date(t).toISOString();
      await kept.put({
        id_hash: idHash(session.id),
        csrf_token: session.csrf_token,
        created_at: at,
        last_seen: at,
      });
      return { ok: true, session };
    },
    get: async (id) => {
      if (id === undefined || id === "") return undefined;
      const t = now();
      const row = await kept.touch(idHash(id), limits(t));
      if (row === undefined) return undefined;
      return { id, csrf_token: row.csrf_token, created_at: Date.parse(row.created_at), last_seen: t };
    },
    end: async (id) => {
      if (id !== undefined && id !== "") await kept.remove(idHash(id));
    },
    csrfMatches: (session, header) =>
      header !== undefined && header !== "" && sameSecret(header, session.csrf_token),
  };
}
