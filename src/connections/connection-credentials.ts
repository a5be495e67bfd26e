/**
 * A connection's credentials: the config's references resolved (environment or sealed in the
 * store), and tokens the vendor rotates sealed into the store at once, because a rotating refresh
 * token is dead after one use and losing the new one would break the connection.
 */
import type { Connection } from "../config/concord-config";
import { openSecret, sealSecret, type SecretKey } from "../config/secret-box";
import { resolveSecretRef } from "../config/resolve-secret-ref";
import type { CredentialAccess } from "../connectors/connector";
import type { StoreSession } from "../store/ports";

export type CredentialDeps = {
  store: StoreSession;
  env: Readonly<Record<string, string | undefined>>;
  key: SecretKey | undefined;
  /** Told once when rotated tokens cannot be sealed (no CONCORD_SECRET_KEY) and live only in memory. */
  warn?: (message: string) => void;
};

/** Where a connection's rotated tokens are stored (sealed, bound to this name). */
export const rotatedTokensName = (connectionId: string): string => `${connectionId}.oauth`;

export class CredentialError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function connectionCredentials(connection: Connection, deps: CredentialDeps): CredentialAccess {
  const name = rotatedTokensName(connection.id);
  let memory: Record<string, string> = {};
  let warned = false;
  const reported = new Set<string>();

  const stored = async (secretName: string): Promise<string | undefined> =>
    (await deps.store.credentials.get(secretName))?.ciphertext;

  const readRotated = async (): Promise<Record<string, string>> => {
    const sealed = await stored(name);
    if (sealed === undefined || deps.key === undefined) return memory;
    const opened = openSecret(sealed, deps.key, name);
    if (!opened.ok) throw new CredentialError(opened.error.code, `${name}: ${opened.error.message}`);
    return { ...(JSON.parse(opened.value) as Record<string, string>), ...memory };
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
    save: async (changes) => {
      const next = { ...(await readRotated()), ...changes };
      if (deps.key === undefined) {
        memory = next;
        if (!warned) {
          warned = true;
          deps.warn?.(
            `CONCORD_SECRET_KEY is not set: renewed tokens of connection ${connection.id} are kept in memory only and are lost at restart`,
          );
        }
        return;
      }
      const sealed = sealSecret(JSON.stringify(next), deps.key, name);
      if (!sealed.ok) throw new CredentialError(sealed.error.code, sealed.error.message);
      await deps.store.credentials.put(name, sealed.value, deps.key.id);
      memory = {};
    },
  };
}
