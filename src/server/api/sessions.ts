/**
 * Operator sessions: sign-in with the admin password (compared in constant time; failed attempts
 * limited per client address), server-side sessions in memory with an idle and an absolute expiry,
 * and a CSRF token per session that every state-changing request must echo in `x-csrf-token`.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const SESSION_COOKIE = "concord_session";
export const CSRF_HEADER = "x-csrf-token";

export type Session = { id: string; csrf_token: string; created_at: number; last_seen: number };

export type SessionOptions = {
  adminPassword: string;
  now: () => Date;
  /** A session unused this long ends (default 12 h). */
  idleMs?: number;
  /** A session ends this long after sign-in whatever its use (default 7 days). */
  maxAgeMs?: number;
  /** Failed sign-ins allowed per address per window (default 10 a minute). */
  maxFailures?: number;
  failureWindowMs?: number;
};

export type SignIn =
  | { ok: true; session: Session }
  | { ok: false; code: "wrong_password" }
  | { ok: false; code: "too_many_attempts"; retry_after_s: number };

export type SessionManager = {
  signIn: (password: string, clientAddress: string) => SignIn;
  /** The live session with this id (its idle clock restarted), or undefined. */
  get: (id: string | undefined) => Session | undefined;
  end: (id: string | undefined) => void;
  /** Constant-time comparison of a request's CSRF header with the session's token. */
  csrfMatches: (session: Session, header: string | undefined) => boolean;
  idleMs: number;
};

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();
const sameSecret = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/** At most this many addresses are remembered for failed attempts; the oldest are forgotten first. */
const MAX_TRACKED_ADDRESSES = 10_000;
/** At most this many live sessions; signing in beyond it ends the least recently used. */
const MAX_SESSIONS = 1_000;

export function createSessionManager(options: SessionOptions): SessionManager {
  const idleMs = options.idleMs ?? 12 * 3_600_000;
  const maxAgeMs = options.maxAgeMs ?? 7 * 86_400_000;
  const maxFailures = options.maxFailures ?? 10;
  const windowMs = options.failureWindowMs ?? 60_000;
  const sessions = new Map<string, Session>();
  const failures = new Map<string, number[]>();
  const now = (): number => options.now().getTime();

  const recentFailures = (address: string, t: number): number[] => {
    const list = (failures.get(address) ?? []).filter((at) => t - at < windowMs);
    if (list.length === 0) failures.delete(address);
    else failures.set(address, list);
    return list;
  };

  const live = (s: Session, t: number): boolean => t - s.last_seen < idleMs && t - s.created_at < maxAgeMs;

  return {
    idleMs,
    signIn: (password, address) => {
      const t = now();
      const recent = recentFailures(address, t);
      if (recent.length >= maxFailures) {
        const oldest = recent[0] ?? t;
        return {
          ok: false,
          code: "too_many_attempts",
          retry_after_s: Math.max(1, Math.ceil((oldest + windowMs - t) / 1000)),
        };
      }
      if (!sameSecret(password, options.adminPassword)) {
        failures.delete(address); // re-inserted last: the map's order is least recently failed first
        failures.set(address, [...recent, t]);
        while (failures.size > MAX_TRACKED_ADDRESSES) {
          const first = failures.keys().next();
          if (first.done === true) break;
          failures.delete(first.value);
        }
        return { ok: false, code: "wrong_password" };
      }
      failures.delete(address);
      for (const [id, s] of sessions) if (!live(s, t)) sessions.delete(id);
      while (sessions.size >= MAX_SESSIONS) {
        const first = sessions.keys().next();
        if (first.done === true) break;
        sessions.delete(first.value);
      }
      const session: Session = {
        id: randomBytes(32).toString("base64url"),
        csrf_token: randomBytes(32).toString("base64url"),
        created_at: t,
        last_seen: t,
      };
      sessions.set(session.id, session);
      return { ok: true, session };
    },
    get: (id) => {
      if (id === undefined || id === "") return undefined;
      const s = sessions.get(id);
      if (!s) return undefined;
      const t = now();
      if (!live(s, t)) {
        sessions.delete(id);
        return undefined;
      }
      s.last_seen = t;
      // Most recently used last, so the cap ends the least recently used.
      sessions.delete(id);
      sessions.set(id, s);
      return s;
    },
    end: (id) => {
      if (id !== undefined) sessions.delete(id);
    },
    csrfMatches: (session, header) =>
      header !== undefined && header !== "" && sameSecret(header, session.csrf_token),
  };
}
