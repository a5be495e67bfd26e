/**
 * Test support for the Constant Contact client tests: starts the emulator on 127.0.0.1 through its
 * exported entry point and control routes only, with a virtual clock shared by the emulator and
 * the connector runtime so that nothing in a test waits in real time.
 */
import { createFakeClock } from "../fake-clock";
import {
  startConstantContactEmulator,
  type ConstantContactEmulatorOptions,
} from "../../../src/connectors/constant-contact/emulator/constant-contact-emulator";
import type {
  ConnectionSettings,
  ConnectorRuntime,
  CredentialAccess,
} from "../../../src/connectors/connector";

export type LoggedCall = { method: string; path: string; status: number; at: string };

export type TestAccount = {
  baseUrl: string;
  settings: ConnectionSettings;
  runtime: ConnectorRuntime;
  credentials: Record<string, string | undefined>;
  /** Virtual milliseconds slept through the runtime so far. */
  slept: () => number;
  control: <T = unknown>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown) => Promise<T>;
  requests: () => Promise<LoggedCall[]>;
  /** Seeds contacts (Constant Contact shapes) and lists; returns the emulator's answer. */
  seed: (body: { contacts?: unknown[]; lists?: unknown[] }) => Promise<SeedAnswer>;
  act: (action: string, email: string) => Promise<unknown>;
  close: () => Promise<void>;
};

export type SeedAnswer = {
  lists: { list_id: string; name: string }[];
  contacts: { contact_id: string; email: string }[];
};

export async function startTestAccount(
  options: ConstantContactEmulatorOptions & { connection_id?: string } = {},
): Promise<TestAccount> {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  const now = clock.now;
  const { connection_id, ...emulatorOptions } = options;
  const emulator = await startConstantContactEmulator({ now, logger: false, ...emulatorOptions });
  const baseUrl = emulator.baseUrl;

  const control = async <T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> => {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.headers = { "content-type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${baseUrl}${path}`, init);
    const text = await response.text();
    if (response.status >= 400) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };

  const token = await control<{ access_token: string; refresh_token?: string; expires_in: number }>(
    "POST",
    "/__emulator/token",
    {},
  );
  const credentials: Record<string, string | undefined> = {
    client_id: "concord-test",
    client_secret: "concord-test-secret",
    access_token: token.access_token,
    access_token_expires_at: new Date(now().getTime() + token.expires_in * 1000).toISOString(),
    ...(token.refresh_token ? { refresh_token: token.refresh_token } : {}),
  };
  const access: CredentialAccess = {
    get: async () => ({ ...credentials }),
    save: async (changes) => {
      Object.assign(credentials, changes);
    },
  };
  const runtime: ConnectorRuntime = {
    now,
    sleep: async (ms) => {
      await clock.sleep(Math.max(0, ms));
      // Let the emulator's own timers (bulk activities) take their turn.
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return {
    baseUrl,
    settings: {
      connection_id: connection_id ?? "cc-test",
      base_url: `${baseUrl}/v3`,
      token_url: `${baseUrl}/oauth2/default/v1/token`,
      credentials: access,
    },
    runtime,
    credentials,
    slept: clock.slept,
    control,
    requests: async () => (await control<{ requests: LoggedCall[] }>("GET", "/__emulator/requests")).requests,
    seed: (body) => control<SeedAnswer>("POST", "/__emulator/seed", body),
    act: (action, email) => control("POST", "/__emulator/act", { as: "contact", action, email }),
    close: () => emulator.close(),
  };
}
