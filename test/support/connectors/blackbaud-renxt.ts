/**
 * Test support for the Raiser's Edge NXT connector: starts the emulator on a shared, movable clock and
 * drives it through SKY's real API (as another SKY app would) and its documented control routes.
 */
import { createFakeClock, type FakeClock } from "../fake-clock";
import type {
  ConnectionSettings,
  ConnectorRuntime,
  CredentialAccess,
} from "../../../src/connectors/connector";
import {
  startBlackbaudEmulator,
  type BlackbaudEmulatorOptions,
  type RunningBlackbaudEmulator,
} from "../../../src/connectors/blackbaud-renxt/emulator/blackbaud-emulator";

export const SUBSCRIPTION_KEY = "test-subscription-key";
const CLIENT = { client_id: "concord-test", client_secret: "concord-secret" };

export type EmulatorFixture = {
  emu: RunningBlackbaudEmulator;
  clock: FakeClock;
  runtime: ConnectorRuntime;
  settings: (overrides?: Record<string, string | undefined>) => ConnectionSettings;
  /** Calls SKY's API directly with a fresh token (not through the connector). */
  api: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: unknown }>;
  control: (path: string, body?: unknown) => Promise<unknown>;
  createConstituent: (email: string, first: string, last: string) => Promise<string>;
  close: () => Promise<void>;
};

export async function startEmulatorFixture(
  start = "2026-03-02T12:00:00.000Z",
  emulatorOptions: Partial<BlackbaudEmulatorOptions> = {},
): Promise<EmulatorFixture> {
  const clock = createFakeClock(start);
  const emu = await startBlackbaudEmulator({
    now: clock.now,
    subscriptionKey: SUBSCRIPTION_KEY,
    oauthClients: [CLIENT],
    // The harness seeds through the API too; its calls must not eat the connector's per-second budget.
    ratePerSecond: 1000,
    webhooks: { autoDeliver: false },
    ...emulatorOptions,
  });
  const runtime: ConnectorRuntime = {
    now: clock.now,
    // Tests never sleep: waiting moves the shared clock the emulator also reads.
    sleep: clock.sleep,
  };
  const mint = (): { access_token: string; refresh_token: string } =>
    emu.mintToken({ client_id: CLIENT.client_id } as { expires_in?: number; user_id?: string }) as {
      access_token: string;
      refresh_token: string;
    };

  const settings = (overrides: Record<string, string | undefined> = {}): ConnectionSettings => {
    const tokens = mint();
    let store: Record<string, string | undefined> = {
      client_id: CLIENT.client_id,
      client_secret: CLIENT.client_secret,
      refresh_token: tokens.refresh_token,
      subscription_key: SUBSCRIPTION_KEY,
      ...overrides,
    };
    const credentials: CredentialAccess = {
      get: async () => ({ ...store }),
      save: async (changes) => {
        store = { ...store, ...changes };
      },
    };
    return {
      connection_id: "conn_renxt_test",
      base_url: emu.baseUrl,
      token_url: `${emu.baseUrl}/oauth2/token`,
      credentials,
    };
  };

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${emu.baseUrl}${path}`, {
      method,
      headers: {
        "Bb-Api-Subscription-Key": SUBSCRIPTION_KEY,
        authorization: `Bearer ${mint().access_token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === "" ? undefined : (JSON.parse(text) as unknown) };
  };

  const control = async (path: string, body?: unknown) => {
    const res = await fetch(`${emu.baseUrl}${path}`, {
      method: body === undefined && path.endsWith("/requests") ? "GET" : "POST",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${path} answered ${res.status}: ${text}`);
    return text === "" ? undefined : (JSON.parse(text) as unknown);
  };

  const createConstituent = async (email: string, first: string, last: string): Promise<string> => {
    const res = await api("POST", "/constituent/v1/constituents", {
      type: "Individual",
      first,
      last,
      email: { address: email, type: "Email", primary: true, do_not_email: false, inactive: false },
    });
    if (res.status !== 200) throw new Error(`seed failed: ${res.status} ${JSON.stringify(res.body)}`);
    return (res.body as { id: string }).id;
  };

  return { emu, clock, runtime, settings, api, control, createConstituent, close: () => emu.close() };
}
