/**
 * Turns `{ env }` and `{ stored }` references into secret values. Stored secrets come through a
 * lookup function the caller passes in, so the config layer never imports the store.
 */
import { err, ok, type Result } from "../core/result";
import { openSecret, type SecretError, type SecretKey } from "./secret-box";
import type { CredentialValue, SecretRef } from "./secret-ref";

export type SecretSources = {
  /** Environment variables (process.env at runtime; a plain object in tests). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The sealed envelope stored under a name, or undefined when there is none. */
  stored?: (name: string) => Promise<string | undefined> | string | undefined;
  /** CONCORD_SECRET_KEY, needed for stored references only. */
  key?: SecretKey | undefined;
};

export async function resolveSecretRef(
  ref: SecretRef | CredentialValue,
  sources: SecretSources,
): Promise<Result<string, SecretError>> {
  switch (ref.kind) {
    case "plain":
      return ok(ref.value);
    case "env": {
      const value = sources.env?.[ref.name];
      if (value === undefined || value === "")
        return err({
          code: "secret_env_missing",
          message: `environment variable ${ref.name} is not set (the config references it with { env: "${ref.name}" })`,
        });
      return ok(value);
    }
    case "stored": {
      const sealed = sources.stored === undefined ? undefined : await sources.stored(ref.name);
      if (sealed === undefined)
        return err({
          code: "secret_stored_missing",
          message: `no stored secret named "${ref.name}": store it first with \`concord secrets set ${ref.name}\` (the config references it with { stored: "${ref.name}" })`,
        });
      // The name is the envelope's context: an envelope copied to another name does not open.
      return openSecret(sealed, sources.key, ref.name);
    }
  }
}
