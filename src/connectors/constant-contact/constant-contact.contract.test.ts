// The shared connector contract suite, run against the Constant Contact emulator.
import {
  liveSkips,
  runConnectorContract,
  runLiveConnectorContract,
  seedThroughConnector,
} from "../contract/contract-suite";
import type { ConnectionSettings } from "../connector";
import { CONSTANT_CONTACT_BASE_URL, CONSTANT_CONTACT_TOKEN_URL } from "./client";
import type { ContractHarness, SeededContact } from "../contract/contract-harness";
import { constantContactManifest } from "./manifest";
import { startTestAccount } from "../../../test/support/connectors/constant-contact";

const PAGE_SIZE = 3;

function harness(): ContractHarness {
  return {
    name: "constant-contact (emulator)",
    manifest: constantContactManifest,
    start: async () => {
      const account = await startTestAccount({ connection_id: "cc-contract" });
      const { lists } = await account.seed({ lists: [{ name: "Contract list" }] });
      const bearer = (): Record<string, string> => ({
        authorization: `Bearer ${account.credentials.access_token ?? ""}`,
      });
      return {
        settings: account.settings,
        runtime: account.runtime,
        bad_settings: {
          ...account.settings,
          credentials: {
            get: async () => ({
              client_id: "concord-test",
              client_secret: "wrong",
              access_token: "not-a-token",
              refresh_token: "not-a-refresh-token",
            }),
            save: async () => {},
          },
        },
        seed: async (count, prefix): Promise<SeededContact[]> => {
          const people = Array.from({ length: count }, (_, i) => ({
            email: `${prefix}-${i}@example.org`.toLowerCase(),
            first_name: `First${i}`,
            last_name: `Last${i}`,
          }));
          const answer = await account.seed({
            contacts: people.map((p) => ({
              email_address: { address: p.email, permission_to_send: "implicit" },
              first_name: p.first_name,
              last_name: p.last_name,
            })),
          });
          return people.map((p) => ({
            ...p,
            external_id: answer.contacts.find((c) => c.email.toLowerCase() === p.email)!.contact_id,
          }));
        },
        page_size: PAGE_SIZE,
        list_id: lists[0]!.list_id,
        contact_unsubscribes: async (contact) => {
          await account.act("unsubscribe", contact.email);
        },
        inject_throttle: async (count) => {
          await account.control("POST", "/__emulator/faults", {
            status: 429,
            count,
            path_prefix: "/v3/",
            body: [{ error_key: "throttled", error_message: "Too Many Requests" }],
          });
        },
        inject_quota_exceeded: async () => {
          await account.control("POST", "/__emulator/faults", {
            status: 429,
            count: 1,
            path_prefix: "/v3/",
            body: [{ error_key: "quota_exceeded", error_message: "Limit Exceeded" }],
          });
        },
        revoke_credentials: async () => {
          await account.control("POST", "/__emulator/oauth/revoke", {});
        },
        inspect: async (id) => {
          // Out-of-band reads count against the emulator's 4/s too: wait a (virtual) second when throttled.
          let r = await fetch(`${account.baseUrl}/v3/contacts/${id}`, { headers: bearer() });
          for (let i = 0; r.status === 429 && i < 5; i++) {
            await account.runtime.sleep(1000);
            r = await fetch(`${account.baseUrl}/v3/contacts/${id}`, { headers: bearer() });
          }
          if (r.status === 404) return null;
          if (r.status !== 200) throw new Error(`inspect answered ${r.status}: ${await r.text()}`);
          const body = (await r.json()) as {
            first_name?: string | null;
            email_address?: { address: string; permission_to_send?: string };
          };
          return {
            opted_out: body.email_address?.permission_to_send === "unsubscribed",
            email: body.email_address?.address ?? "",
            first_name: body.first_name ?? null,
          };
        },
        teardown: () => account.close(),
      };
    },
  };
}

runConnectorContract(harness());

runLiveConnectorContract(
  "constant-contact",
  ["CC_CLIENT_ID", "CC_CLIENT_SECRET", "CC_REFRESH_TOKEN"],
  (v): ContractHarness => {
    let stored: Record<string, string | undefined> = {
      client_id: v["CC_CLIENT_ID"],
      client_secret: v["CC_CLIENT_SECRET"],
      refresh_token: v["CC_REFRESH_TOKEN"],
    };
    // Rotating refresh tokens: the suite keeps the newest in memory; print nothing of it.
    const settings = (extra: Record<string, string> = {}): ConnectionSettings => ({
      connection_id: "cc-live",
      base_url: CONSTANT_CONTACT_BASE_URL,
      token_url: CONSTANT_CONTACT_TOKEN_URL,
      credentials: {
        get: async () => ({ ...stored, ...extra }),
        save: async (changes) => {
          stored = { ...stored, ...changes };
        },
      },
    });
    const runtime = {
      now: () => new Date(),
      sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
    };
    return {
      name: "constant-contact (live)",
      manifest: constantContactManifest,
      skip: liveSkips(),
      start: async () => ({
        settings: settings(),
        runtime,
        bad_settings: settings({ access_token: "not-a-token", refresh_token: "not-a-refresh-token" }),
        seed: (count, prefix) =>
          seedThroughConnector(constantContactManifest.connect(settings(), runtime), count, prefix),
        page_size: 3,
        teardown: async () => undefined,
      }),
    };
  },
);
