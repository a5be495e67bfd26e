/**
 * Test support for the Mailchimp connector tests: the emulator on 127.0.0.1 with one audience,
 * an API key from its control API, and a virtual clock shared by the emulator and the connector
 * runtime, so that nothing in a test waits in real time.
 */
import { createFakeClock } from "../fake-clock";
import {
  startMailchimpEmulator,
  type MailchimpEmulatorOptions,
} from "../../../src/connectors/mailchimp/emulator/mailchimp-emulator";
import type { ConnectionSettings, ConnectorRuntime } from "../../../src/connectors/connector";

import { DEFAULT_AUDIENCE } from "../../../src/connectors/mailchimp/emulator/mailchimp-emulator";

/** The account's one audience, as a new Mailchimp account has. */
export const TEST_AUDIENCE = DEFAULT_AUDIENCE.id;

export type MailchimpTestAccount = {
  baseUrl: string;
  settings: ConnectionSettings;
  runtime: ConnectorRuntime;
  apiKey: string;
  control: <T = unknown>(method: "GET" | "POST", path: string, body?: unknown) => Promise<T>;
  /** Seeds members (the emulator's seed shape) into the test audience; answers their ids. */
  seed: (
    members: Record<string, unknown>[],
  ) => Promise<{ id: string; email_address: string; contact_id: string }[]>;
  act: (body: Record<string, unknown>) => Promise<unknown>;
  /** Calls the API as an out-of-band client with the same key. */
  api: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;
  close: () => Promise<void>;
};

export async function startMailchimpTestAccount(
  options: MailchimpEmulatorOptions & { connection_id?: string; audience?: Record<string, unknown> } = {},
): Promise<MailchimpTestAccount> {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  const { connection_id, audience, ...emulatorOptions } = options;
  const emulator = await startMailchimpEmulator({
    now: clock.now,
    autoDeliverWebhooks: false,
    ...emulatorOptions,
  });
  const baseUrl = emulator.baseUrl;
  const control = async <T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> => {
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
  const { api_key } = await control<{ api_key: string }>("POST", "/__emulator/token", {});
  await control("POST", "/__emulator/seed", {
    audience: {
      id: TEST_AUDIENCE,
      name: "Supporters",
      double_optin: true,
      tags: ["Contract list"],
      ...audience,
    },
  });
  const credentials: Record<string, string | undefined> = { api_key };
  const runtime: ConnectorRuntime = {
    now: clock.now,
    sleep: async (ms) => {
      await clock.sleep(Math.max(0, ms));
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return {
    baseUrl,
    apiKey: api_key,
    settings: {
      connection_id: connection_id ?? "mc-test",
      base_url: `${baseUrl}/3.0`,
      credentials: {
        get: async () => ({ ...credentials }),
        save: async (changes) => {
          Object.assign(credentials, changes);
        },
      },
    },
    runtime,
    control,
    seed: async (members) =>
      (
        await control<{ members: { id: string; email_address: string; contact_id: string }[] }>(
          "POST",
          "/__emulator/seed",
          {
            list_id: TEST_AUDIENCE,
            members,
          },
        )
      ).members,
    act: (body) => control("POST", "/__emulator/act", { list_id: TEST_AUDIENCE, ...body }),
    api: async (method, path, body) => {
      const res = await fetch(`${baseUrl}/3.0${path}`, {
        method,
        headers: {
          authorization: `Basic ${Buffer.from(`test:${api_key}`).toString("base64")}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    close: () => emulator.close(),
  };
}
