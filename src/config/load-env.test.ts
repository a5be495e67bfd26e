import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkConfigAgainstEnv, listSecretRefs } from "./check-config-against-env";
import { formatEnvErrors, loadEnv } from "./load-env";
import { parseConfigValue } from "./load-config-file";
import { secretKeyFromBytes } from "./secret-box";

const KEY = randomBytes(32).toString("base64");

describe("loadEnv", () => {
  it("fills defaults when nothing is set", () => {
    const result = loadEnv({});
    expect(result).toEqual({
      ok: true,
      warnings: [],
      env: { CONCORD_DATA_DIR: "./data", LOG_LEVEL: "info", NODE_ENV: "development" },
    });
  });

  it("parses every variable", () => {
    const result = loadEnv({
      DATABASE_URL: "postgres://concord:pw@db:5432/concord",
      CONCORD_DATA_DIR: "/var/lib/concord",
      CONCORD_CONFIG: "/etc/concord.yaml",
      CONCORD_SECRET_KEY: KEY,
      PORT: "3000",
      HOST: "0.0.0.0",
      LOG_LEVEL: "debug",
      CONCORD_ADMIN_PASSWORD: "a-long-admin-password",
      NODE_ENV: "production",
      UNRELATED: "ignored",
    });
    if (!result.ok) throw new Error(formatEnvErrors(result.errors));
    expect(result.env).toMatchObject({
      PORT: 3000,
      LOG_LEVEL: "debug",
      NODE_ENV: "production",
      DATABASE_URL: "postgres://concord:pw@db:5432/concord",
    });
    expect(result.env.CONCORD_SECRET_KEY?.bytes.toString("base64")).toBe(KEY);
    expect(result.env).not.toHaveProperty("UNRELATED");
  });

  it("treats empty variables as unset", () => {
    const result = loadEnv({ PORT: "", DATABASE_URL: "", CONCORD_SECRET_KEY: "" });
    expect(result.ok && result.env.PORT === undefined && result.env.CONCORD_SECRET_KEY === undefined).toBe(
      true,
    );
  });

  it.each<[string, Record<string, string>, string, string, string?]>([
    [
      "a non-PostgreSQL database URL",
      { DATABASE_URL: "mysql://root:hunter2@db/concord" },
      "DATABASE_URL",
      "expected a PostgreSQL URL such as postgres://concord:password@db:5432/concord, found a mysql: URL; leave DATABASE_URL unset to use the embedded SQLite database",
      "hunter2",
    ],
    [
      "a short secret key",
      { CONCORD_SECRET_KEY: "c2hvcnQta2V5" },
      "CONCORD_SECRET_KEY",
      `Generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
      "c2hvcnQta2V5",
    ],
    [
      "a port out of range",
      { PORT: "70000" },
      "PORT",
      'expected a port number from 1 to 65535, found "70000"',
    ],
    [
      "a port that is not a number",
      { PORT: "http" },
      "PORT",
      'expected a port number from 1 to 65535, found "http"',
    ],
    [
      "an unknown log level",
      { LOG_LEVEL: "verbose" },
      "LOG_LEVEL",
      'expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent"; found "verbose"',
    ],
    ["an unknown NODE_ENV", { NODE_ENV: "prod" }, "NODE_ENV", 'found "prod" (did you mean "production"?)'],
    [
      "a short admin password in production",
      { NODE_ENV: "production", CONCORD_ADMIN_PASSWORD: "admin" },
      "CONCORD_ADMIN_PASSWORD",
      "expected at least 12 characters in production, found 5",
      'admin"',
    ],
  ])("rejects %s", (_name, env, variable, message, secret) => {
    const result = loadEnv(env);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const error = result.errors.find((e) => e.variable === variable);
    expect(error?.message).toContain(message);
    if (secret !== undefined) expect(formatEnvErrors(result.errors)).not.toContain(secret);
  });

  it("gives the secret key error its own code", () => {
    const result = loadEnv({ CONCORD_SECRET_KEY: "nope" });
    expect(result).toMatchObject({
      ok: false,
      errors: [{ variable: "CONCORD_SECRET_KEY", code: "secret_key_invalid" }],
    });
  });

  it("reports every error at once", () => {
    const result = loadEnv({ PORT: "x", LOG_LEVEL: "loud" });
    expect(result.ok ? [] : result.errors.map((e) => e.variable)).toEqual(["PORT", "LOG_LEVEL"]);
    expect(result.ok ? "" : formatEnvErrors(result.errors)).toMatch(
      /^2 environment variables are wrong:\n {2}PORT: /,
    );
  });

  it("takes a PostgreSQL schema for the installation and refuses one that is not a plain name", () => {
    expect(loadEnv({ DATABASE_SCHEMA: "org_42" })).toMatchObject({
      ok: true,
      env: { DATABASE_SCHEMA: "org_42" },
    });
    const bad = loadEnv({ DATABASE_SCHEMA: "Org-42; drop" });
    expect(bad.ok ? "" : formatEnvErrors(bad.errors)).toMatch(
      /DATABASE_SCHEMA: expected a lower-case schema name of letters, digits and _/,
    );
  });

  it("warns about misspelt CONCORD_ variables, not about those a command reads", () => {
    const result = loadEnv({
      CONCORD_SECRETKEY: KEY,
      CONCORD_SERVE_WORKERS: "0",
      CONCORD_WORKER_CONCURRENCY: "8",
    });
    expect(result).toMatchObject({
      ok: true,
      warnings: [
        'unknown environment variable CONCORD_SECRETKEY (did you mean "CONCORD_SECRET_KEY"?); it is ignored',
      ],
    });
  });
});

describe("checkConfigAgainstEnv", () => {
  const parsed = parseConfigValue(
    {
      connections: [
        {
          id: "re-nxt",
          system: "blackbaud-renxt",
          credentials: {
            client_secret: { env: "RENXT_SECRET" },
            refresh_token: { stored: "re-nxt.refresh-token" },
          },
        },
        {
          id: "cc-main",
          system: "constant-contact",
          credentials: { refresh_token: { stored: "cc-main.refresh-token" } },
        },
      ],
      notifications: { webhook_urls: [{ env: "ALERT_URL" }] },
    },
    "concord.yaml",
  );
  if (!parsed.ok) throw new Error("fixture is valid");
  const config = parsed.config;
  const key = secretKeyFromBytes(randomBytes(32));

  it("lists every secret reference with its path", () => {
    expect(listSecretRefs(config).map((u) => `${u.path} ${u.ref.kind}:${u.ref.name}`)).toEqual([
      "connections[0].credentials.client_secret env:RENXT_SECRET",
      "connections[0].credentials.refresh_token stored:re-nxt.refresh-token",
      "connections[1].credentials.refresh_token stored:cc-main.refresh-token",
      "notifications.webhook_urls[0] env:ALERT_URL",
      "server.admin_password env:CONCORD_ADMIN_PASSWORD",
    ]);
  });

  it.each<[string, Record<string, string>, boolean, boolean, string[]]>([
    ["all set", { RENXT_SECRET: "x", ALERT_URL: "https://h", CONCORD_ADMIN_PASSWORD: "y" }, true, true, []],
    [
      "admin password may be missing outside production",
      { RENXT_SECRET: "x", ALERT_URL: "https://h" },
      true,
      false,
      [],
    ],
    [
      "admin password missing in production",
      { RENXT_SECRET: "x", ALERT_URL: "https://h" },
      true,
      true,
      ["server.admin_password secret_env_missing"],
    ],
    [
      "unset variables",
      {},
      true,
      false,
      [
        "connections[0].credentials.client_secret secret_env_missing",
        "notifications.webhook_urls[0] secret_env_missing",
      ],
    ],
    [
      "stored secrets without a key",
      { RENXT_SECRET: "x", ALERT_URL: "https://h" },
      false,
      false,
      ["connections[0].credentials.refresh_token secret_key_missing"],
    ],
  ])("%s", (_name, env, withKey, production, expected) => {
    const errors = checkConfigAgainstEnv(config, {
      file: "concord.yaml",
      env,
      secretKey: withKey ? key : undefined,
      production,
    });
    expect(errors.map((e) => `${e.path} ${e.code}`)).toEqual(expected);
  });

  it("refuses a webhook secret too short to stand in for a signature", () => {
    const hooked = parseConfigValue(
      {
        connections: [
          {
            id: "mc",
            system: "mailchimp",
            credentials: { api_key: { env: "MC_KEY" } },
            webhooks: { enabled: true, secret: { env: "MC_HOOK" } },
          },
        ],
      },
      "concord.yaml",
    );
    if (!hooked.ok) throw new Error(JSON.stringify(hooked.errors));
    const check = (secret: string) =>
      checkConfigAgainstEnv(hooked.config, {
        file: "concord.yaml",
        env: { MC_KEY: "k", MC_HOOK: secret },
        secretKey: key,
        production: false,
      }).map((e) => `${e.path} ${e.code} ${e.message}`);
    expect(check("7")).toEqual([
      expect.stringMatching(
        /^connections\[0\]\.webhooks\.secret secret_too_short environment variable MC_HOOK: a webhook secret of 1 characters is too easily guessed; expected at least 16/,
      ),
    ]);
    expect(check("a-long-enough-secret-31f9")).toEqual([]);
  });

  it("says how to generate the missing key", () => {
    const [error] = checkConfigAgainstEnv(config, {
      file: "concord.yaml",
      env: { RENXT_SECRET: "x", ALERT_URL: "u" },
      secretKey: undefined,
      production: false,
    });
    expect(error?.message).toBe(
      `stored secrets are used (here and 1 more places) but CONCORD_SECRET_KEY is not set. Generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
    );
  });
});
