/**
 * Boot-time checks that need both the config and the environment: every `{ env }` reference names a
 * set variable, and CONCORD_SECRET_KEY is present as soon as any `{ stored }` reference is used.
 */
import type { ConcordConfig } from "./concord-config";
import { formatPath, type ConfigError } from "./load-config-file";
import { GENERATE_SECRET_KEY_COMMAND, type SecretKey } from "./secret-box";
import type { SecretRef } from "./secret-ref";

export type SecretRefUse = { path: string; ref: SecretRef };

/**
 * The fewest characters a webhook secret may have. Mailchimp and Raiser's Edge NXT sign nothing:
 * the secret in the registered URL is all that tells a delivery from a forgery, and a short one is
 * guessed (each guess a request). `concord demo` makes 32 random characters.
 */
export const WEBHOOK_SECRET_MIN_LENGTH = 16;

/** Why a webhook secret is refused, or undefined when it may be used. */
export function webhookSecretProblem(secret: string): string | undefined {
  return secret.length >= WEBHOOK_SECRET_MIN_LENGTH
    ? undefined
    : `a webhook secret of ${secret.length} characters is too easily guessed; expected at least ${WEBHOOK_SECRET_MIN_LENGTH} (random ones: ${GENERATE_SECRET_KEY_COMMAND})`;
}

/** Every secret reference in a config, with where it is. */
export function listSecretRefs(config: ConcordConfig): SecretRefUse[] {
  const uses: SecretRefUse[] = [];
  const add = (path: (string | number)[], value: { kind: string } | undefined) => {
    if (value !== undefined && (value.kind === "env" || value.kind === "stored"))
      uses.push({ path: formatPath(path), ref: value as SecretRef });
  };
  config.connections.forEach((c, i) => {
    for (const [key, value] of Object.entries(c.credentials))
      add(["connections", i, "credentials", key], value);
    add(["connections", i, "webhooks", "secret"], c.webhooks.secret);
  });
  config.notifications.webhook_urls.forEach((url, i) => {
    add(["notifications", "webhook_urls", i], url);
  });
  add(["notifications", "email", "password"], config.notifications.email?.password);
  add(["server", "admin_password"], config.server.admin_password);
  return uses;
}

export type ConfigEnvCheckOptions = {
  file: string;
  env: Readonly<Record<string, string | undefined>>;
  secretKey: SecretKey | undefined;
  /** Outside production a missing admin password only disables the admin UI; in production it is an error. */
  production: boolean;
};

export function checkConfigAgainstEnv(config: ConcordConfig, options: ConfigEnvCheckOptions): ConfigError[] {
  const errors: ConfigError[] = [];
  const uses = listSecretRefs(config);
  for (const { path, ref } of uses) {
    if (ref.kind !== "env") continue;
    const value = options.env[ref.name];
    const tooShort =
      value !== undefined && value !== "" && path.endsWith(".webhooks.secret")
        ? webhookSecretProblem(value)
        : undefined;
    if (tooShort !== undefined)
      errors.push({
        file: options.file,
        path,
        code: "secret_too_short",
        message: `environment variable ${ref.name}: ${tooShort}`,
      });
    if (value !== undefined && value !== "") continue;
    if (path === "server.admin_password" && !options.production) continue;
    errors.push({
      file: options.file,
      path,
      code: "secret_env_missing",
      message: `environment variable ${ref.name} is not set; expected the secret in it`,
    });
  }
  const firstStored = uses.find((u) => u.ref.kind === "stored");
  if (firstStored !== undefined && options.secretKey === undefined)
    errors.push({
      file: options.file,
      path: firstStored.path,
      code: "secret_key_missing",
      message: `stored secrets are used (here and ${uses.filter((u) => u.ref.kind === "stored").length - 1} more places) but CONCORD_SECRET_KEY is not set. Generate one with: ${GENERATE_SECRET_KEY_COMMAND}`,
    });
  return errors;
}
