/** Runs the shared connector contract against the Raiser's Edge NXT emulator (and the live service when credentials are set). */
import type { ConnectionSettings } from "../connector";
import {
  liveSkips,
  runConnectorContract,
  runLiveConnectorContract,
  seedThroughConnector,
} from "../contract/contract-suite";
import type { ContractHarness, SeededContact } from "../contract/contract-harness";
import { blackbaudRenxtManifest } from "./manifest";
import { SKY_API_BASE_URL, SKY_TOKEN_URL } from "./client";
import { startEmulatorFixture } from "../../../test/support/connectors/blackbaud-renxt";

const PAGE = 3;

const emulatorHarness: ContractHarness = {
  name: "blackbaud-renxt (emulator)",
  manifest: blackbaudRenxtManifest,
  start: async () => {
    const f = await startEmulatorFixture();
    let n = 0;
    return {
      settings: f.settings(),
      runtime: f.runtime,
      bad_settings: f.settings({ subscription_key: "not-the-key" }),
      seed: async (count, prefix) => {
        const out: SeededContact[] = [];
        for (let i = 0; i < count; i++) {
          const email = `${prefix}-${n++}@example.org`;
          const first = `First${n}`;
          out.push({
            external_id: await f.createConstituent(email, first, "Seed"),
            email,
            first_name: first,
            last_name: "Seed",
          });
        }
        return out;
      },
      page_size: PAGE,
      // RE NXT has no footer link: a person's unsubscribe reaches it through an email platform's
      // integration, which ticks Requests No Email and records the opt-out with its source.
      contact_unsubscribes: async (contact) => {
        await f.api("PATCH", `/constituent/v1/constituents/${contact.external_id}`, {
          requests_no_email: true,
        });
        await f.api("POST", "/commpref/v1/consent/consents", {
          constituent_id: contact.external_id,
          channel: "Email",
          source: "Constant Contact unsubscribe",
          constituent_consent_response: "OptOut",
          consent_date: f.runtime.now().toISOString(),
          consent_statement: "Unsubscribed through the email footer link.",
        });
      },
      inject_throttle: async (count) => {
        await f.control("/__emulator/faults", {
          status: 429,
          count,
          path_prefix: "/constituent/v1",
          latency_ms: 0,
        });
      },
      inject_quota_exceeded: async () => {
        await f.control("/__emulator/faults", {
          status: 403,
          count: 1,
          path_prefix: "/constituent/v1",
          latency_ms: 0,
          headers: { "Retry-After": "3600" },
          body: {
            statusCode: 403,
            message: "Out of call volume quota. Quota will be replenished in 01:00:00.",
          },
        });
      },
      revoke_credentials: async () => {
        await f.control("/__emulator/oauth/revoke", {});
      },
      inspect: async (id) => {
        const res = await f.api("GET", `/constituent/v1/constituents/${id}`);
        if (res.status !== 200) return null;
        const c = res.body as { requests_no_email?: boolean; first?: string; email?: { address: string } };
        return {
          opted_out: c.requests_no_email === true,
          email: c.email?.address ?? "",
          first_name: c.first ?? null,
        };
      },
      teardown: () => f.close(),
    };
  },
};

runConnectorContract(emulatorHarness);

runLiveConnectorContract(
  "blackbaud-renxt",
  ["RENXT_CLIENT_ID", "RENXT_CLIENT_SECRET", "RENXT_REFRESH_TOKEN", "RENXT_SUBSCRIPTION_KEY"],
  (v) => {
    let store: Record<string, string | undefined> = {
      client_id: v["RENXT_CLIENT_ID"],
      client_secret: v["RENXT_CLIENT_SECRET"],
      refresh_token: v["RENXT_REFRESH_TOKEN"],
      subscription_key: v["RENXT_SUBSCRIPTION_KEY"],
    };
    const settings = (extra: Record<string, string> = {}): ConnectionSettings => ({
      connection_id: "conn_renxt_live",
      base_url: SKY_API_BASE_URL,
      token_url: SKY_TOKEN_URL,
      credentials: {
        get: async () => ({ ...store, ...extra }),
        save: async (changes) => {
          store = { ...store, ...changes };
        },
      },
    });
    const runtime = {
      now: () => new Date(),
      sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
    };
    return {
      name: "blackbaud-renxt (live)",
      manifest: blackbaudRenxtManifest,
      skip: liveSkips(),
      start: async () => ({
        settings: settings(),
        runtime,
        bad_settings: settings({ subscription_key: "not-a-key" }),
        seed: (count, prefix) =>
          seedThroughConnector(blackbaudRenxtManifest.connect(settings(), runtime), count, prefix),
        page_size: 3,
        teardown: async () => undefined,
      }),
    };
  },
);
