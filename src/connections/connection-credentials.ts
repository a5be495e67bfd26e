/**
 * A connection's credentials: the config's references resolved (environment or sealed in the
 * store), and tokens the vendor rotates sealed into the store at once, because a rotating refresh
 * token is dead after one use and losing the new one would break the connection.
 *
 * A renewed token is kept in memory before it is saved, so a save that fails (the store locked by
 * another writer, a full disk) loses nothing while the process lives: the save is retried, from
 * 5 s doubling to 5 minutes, and the operator is alerted once while it fails (the alert does not
 * need the store) and told when it is saved. A renewal under the credential lock tries the save a
 * few times more before it lets the lock go, so another worker does not renew with the refresh
 * token this one spent. Stopping flushes it. Only a process killed between the
 * vendor's answer and the save loses a rotated token: the connection is then reported broken and
 * must be authorised again (the opt-outs wait in the ledger meanwhile).
 *
 * Connecting the account again (a new grant) is written under the same lock and marked as a grant
 * of its own: a renewal of the old grant under way in another process saves first, and tokens
 * renewed from the old grant are neither used nor saved once the new one is stored.
 */
import type { Connection } from "../config/concord-config";
import { openSecret, sealSecret, type SecretKey } from "../config/secret-box";
import { resolveSecretRef } from "../config/resolve-secret-ref";
import type { CredentialAccess } from "../connectors/connector";
import { withNamedLock } from "../store/advisory-lock";
import type { StoreSession } from "../store/ports";
import { errorMessage } from "../core/error-code";
import { randomUUID } from "node:crypto";

export type CredentialDeps = {
  store: StoreSession;
  env: Readonly<Record<string, string | undefined>>;
  key: SecretKey | undefined;
  /** Told once when rotated tokens cannot be sealed (no CONCORD_SECRET_KEY) and live only in memory. */
  warn?: (message: string) => void;
  /** Waits between the saves a renewal retries while it holds the credential lock (default: a timer). */
  sleep?: (ms: number) => Promise<void>;
  /** Alerts the operator without the store: a renewed token could not be saved, and when it is. */
  urgent?: (alert: {
    connection_id: string;
    status: "warning" | "resolved";
    code: string;
    message: string;
  }) => void;
};

/** The credentials, and the renewed tokens not yet saved. */
export type ConnectionCredentials = CredentialAccess & {
  /** Whether renewed tokens wait in memory for their save. */
  unsaved: () => boolean;
  /** Saves waiting tokens now; true when nothing is left unsaved. `final`: no retry after it. */
  flush: (options?: { final?: boolean }) => Promise<boolean>;
  /**
   * A new grant (the administrator connected the account again): its tokens replace every token
   * renewed before, sealed at once. Without CONCORD_SECRET_KEY nothing is kept, and it says so.
   */
  replace: (grant: Record<string, string>) => Promise<{ ok: true } | { ok: false; error: string }>;
};

const FIRST_RETRY_MS = 5_000;
const LAST_RETRY_MS = 5 * 60_000;
/**
 * Saves a renewal tries again before it lets go of the credential lock, 250 ms doubling (about 4 s
 * in all): until its token is saved, another process taking the lock would read the refresh token
 * this one already spent.
 */
const SAVES_UNDER_LOCK = 4;
const FIRST_SAVE_PAUSE_MS = 250;

/** Where a connection's rotated tokens are stored (sealed, bound to this name). */
export const rotatedTokensName = (connectionId: string): string => `${connectionId}.oauth`;

/** Stored beside a grant's tokens: which grant (connection of the account) they belong to. */
const GRANT_FIELD = "concord_grant";

export class CredentialError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function connectionCredentials(connection: Connection, deps: CredentialDeps): ConnectionCredentials {
  const name = rotatedTokensName(connection.id);
  let memory: Record<string, string> = {};
  // The grant the tokens last read belong to, and the one the tokens in `memory` were renewed from.
  let grantRead: string | undefined;
  let memoryGrant: string | undefined;
  let warned = false;
  const reported = new Set<string>();
  // Tokens in `memory` whose save failed; the retry timer and `flush` save them.
  let unsaved = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let saving: Promise<boolean> | undefined;
  // Set at the service's stop: no retry is scheduled after it.
  let disposed = false;

  const stored = async (secretName: string): Promise<string | undefined> =>
    (await deps.store.credentials.get(secretName))?.ciphertext;

  const persist = (key: SecretKey): Promise<boolean> => {
    // One save at a time: a retry and a new renewal never race to write older tokens last.
    saving ??= (async () => {
      const tokens = memory;
      try {
        const current = await storedRotated(key);
        if (current[GRANT_FIELD] !== memoryGrant) {
          // The account was connected again since these tokens were renewed: the new grant stands,
          // and tokens of the grant it replaced are not written over it.
          if (memory === tokens) memory = {};
          unsaved = Object.keys(memory).length > 0;
          return true;
        }
        const sealed = sealSecret(JSON.stringify({ ...current, ...tokens }), key, name);
        if (!sealed.ok) throw new CredentialError(sealed.error.code, sealed.error.message);
        await deps.store.credentials.put(name, sealed.value, key.id);
      } catch (error) {
        unsaved = true;
        failures += 1;
        // A store that cannot take the write may take it later; a token that cannot be sealed (the
        // stored tokens are sealed with another key) will not be saved by waiting.
        const lasting = error instanceof CredentialError;
        if (failures === 1)
          deps.urgent?.({
            connection_id: connection.id,
            status: "warning",
            code: "token_unsaved",
            message: `The renewed token of connection ${connection.id} could not be saved (${errorMessage(error)}). It is kept in memory${lasting ? "" : " and the save is retried"}; if Concord stops before it is saved, the connection must be authorised again. ${lasting ? "Authorise the connection again, or restore the key its tokens were sealed with." : "Free the store (another writer? a full disk?)."}`,
          });
        clearTimeout(retry);
        if (!lasting && !disposed) {
          retry = setTimeout(
            () => void persist(key),
            Math.min(FIRST_RETRY_MS * 2 ** (failures - 1), LAST_RETRY_MS),
          );
          retry.unref();
        }
        return false;
      } finally {
        saving = undefined;
      }
      // Saved: what was renewed meanwhile stays in memory for the next save.
      if (memory === tokens) memory = {};
      unsaved = Object.keys(memory).length > 0;
      clearTimeout(retry);
      if (failures > 0)
        deps.urgent?.({
          connection_id: connection.id,
          status: "resolved",
          code: "token_unsaved",
          message: `The renewed token of connection ${connection.id} is saved.`,
        });
      failures = 0;
      return !unsaved || persist(key);
    })();
    return saving;
  };

  const storedRotated = async (key: SecretKey): Promise<Record<string, string>> => {
    const sealed = await stored(name);
    if (sealed === undefined) return {};
    const opened = openSecret(sealed, key, name);
    if (!opened.ok) throw new CredentialError(opened.error.code, `${name}: ${opened.error.message}`);
    return JSON.parse(opened.value) as Record<string, string>;
  };

  const readRotated = async (): Promise<Record<string, string>> => {
    const sealed = await stored(name);
    if (sealed === undefined || deps.key === undefined) return memory;
    const opened = openSecret(sealed, deps.key, name);
    if (!opened.ok) throw new CredentialError(opened.error.code, `${name}: ${opened.error.message}`);
    const { [GRANT_FIELD]: grant, ...read } = JSON.parse(opened.value) as Record<string, string>;
    grantRead = grant;
    // Tokens waiting for their save belong to the grant they were renewed from: once the account
    // was connected again (another process), the new grant's tokens are the ones to use.
    return grant === memoryGrant || Object.keys(memory).length === 0 ? { ...read, ...memory } : read;
  };

  return {
    get: async () => {
      const resolved: Record<string, string | undefined> = {};
      for (const [field, ref] of Object.entries(connection.credentials)) {
        if (ref === undefined) continue;
        const value = await resolveSecretRef(ref, {
          env: deps.env,
          stored,
          ...(deps.key ? { key: deps.key } : {}),
        });
        if (!value.ok) {
          // Not a crash: the field is missing, the connector reports auth_missing, the connection is
          // marked broken and alerted, and the log says which reference did not resolve (once).
          const message = `connection ${connection.id}, credential ${field}: ${value.error.message}`;
          if (!reported.has(message)) {
            reported.add(message);
            deps.warn?.(message);
          }
          continue;
        }
        resolved[field] = value.value;
      }
      // Tokens the vendor handed us since (a rotated refresh token) replace the configured ones.
      return { ...resolved, ...(await readRotated()) };
    },
    unsaved: () => unsaved,
    exclusive: async (fn) => {
      const held = await withNamedLock(
        deps.store,
        `credentials:${connection.id}`,
        { wait: true },
        async () => {
          const value = await fn();
          // A renewed token is saved before the lock goes: another worker would otherwise renew
          // with the spent refresh token, which a rotating vendor refuses (and may revoke the new
          // one for). A store that stays down longer leaves it to the retry timer, as before. On
          // SQLite one process holds the store: no other renews meanwhile.
          const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
          const tries = deps.store.dialect === "postgres" ? SAVES_UNDER_LOCK : 0;
          for (let attempt = 0; unsaved && deps.key !== undefined && attempt < tries; attempt++) {
            await sleep(FIRST_SAVE_PAUSE_MS * 2 ** attempt);
            if (await persist(deps.key)) break;
          }
          return value;
        },
      );
      if (!held.acquired) throw new Error(`the credential lock of ${connection.id} was not taken`);
      return held.value;
    },
    replace: async (grant) => {
      if (deps.key === undefined)
        return {
          ok: false,
          error:
            "CONCORD_SECRET_KEY is not set: Concord keeps a connection's tokens only sealed. Set it and connect again.",
        };
      const key = deps.key;
      // Marked as a grant of its own: tokens renewed from an earlier grant are not saved over it.
      const sealed = sealSecret(JSON.stringify({ ...grant, [GRANT_FIELD]: randomUUID() }), key, name);
      if (!sealed.ok) return { ok: false, error: sealed.error.message };
      await saving?.catch(() => undefined);
      // Under the credential lock: a worker renewing meanwhile (another process) saves its tokens
      // first, so this grant is written last, not merged into by that save.
      const held = await withNamedLock(deps.store, `credentials:${connection.id}`, { wait: true }, () =>
        deps.store.credentials.put(name, sealed.value, key.id),
      );
      if (!held.acquired)
        return { ok: false, error: `the credential lock of ${connection.id} was not taken` };
      memory = {};
      unsaved = false;
      failures = 0;
      clearTimeout(retry);
      return { ok: true };
    },
    flush: async (options = {}) => {
      if (options.final === true) disposed = true;
      const done = deps.key === undefined || !unsaved ? !unsaved : await persist(deps.key);
      if (options.final === true) clearTimeout(retry);
      return done;
    },
    save: async (changes) => {
      // In memory first: whatever happens to the save, this process keeps using the new token.
      if (Object.keys(memory).length === 0) memoryGrant = grantRead;
      memory = { ...memory, ...changes };
      if (deps.key === undefined) {
        if (!warned) {
          warned = true;
          deps.warn?.(
            `CONCORD_SECRET_KEY is not set: renewed tokens of connection ${connection.id} are kept in memory only and are lost at restart`,
          );
        }
        return;
      }
      unsaved = true;
      await persist(deps.key);
    },
  };
}
