/** Runs the shared connector contract against the Kindful emulator (and the live service when a token is set). */
import type { ConnectionSettings, ConnectorRuntime } from "../connector";
import {
  liveSkips,
  runConnectorContract,
  runLiveConnectorContract,
  seedThroughConnector,
} from "../contract/contract-suite";
import type { ContractHarness, SeededContact } from "../contract/contract-harness";
import { postControl } from "../emulator-kit/world";
import { KINDFUL_BASE_URL } from "./client";
import { kindfulManifest } from "./manifest";
import { startKindfulEmulator } from "./emulator/kindful-emulator";

const NO_QUOTA = "Kindful publishes no daily quota (reference/apis.md §4)";

const runtime: ConnectorRuntime = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const emulatorHarness: ContractHarness = {
  name: "kindful (emulator)",
  manifest: kindfulManifest,
  skip: {
    quota_exceeded_defers: NO_QUOTA,
    contact_unsubscribe_observed:
      "a person cannot unsubscribe in Kindful itself, and Kindful keeps no history of Integration Email Opt-in: an opt-out read there is the account's",
  },
  start: async () => {
    const emulator = await startKindfulEmulator();
    const origin = emulator.baseUrl;
    const token = ((await postControl(origin, "/__emulator/token", {})) as { token: string }).token;
    const settings = (api_token: string): ConnectionSettings => ({
      connection_id: "kindful-contract",
      base_url: origin,
      credentials: { get: async () => ({ api_token }), save: async () => {} },
    });
    const group = (await postControl(origin, "/__emulator/act", {
      action: "create_group",
      name: "Newsletter",
    })) as {
      group: { id: number };
    };
    let n = 0;
    return {
      settings: settings(token),
      runtime,
      bad_settings: settings("not-a-token"),
      seed: async (count, prefix) => {
        const people: SeededContact[] = [];
        const bodies = Array.from({ length: count }, () => {
          n += 1;
          return {
            email: `${prefix}-${n}@example.org`.toLowerCase(),
            first_name: `First${n}`,
            last_name: "Seed",
          };
        });
        const answer = (await postControl(origin, "/__emulator/seed", {
          contacts: bodies.map((b) => ({ ...b, updated_at: new Date().toISOString() })),
        })) as { contacts: number[] };
        answer.contacts.forEach((id, i) => people.push({ external_id: String(id), ...bodies[i]! }));
        return people;
      },
      page_size: 3,
      list_id: String(group.group.id),
      // Kindful has no footer link: an email platform's integration sets Integration Email Opt-in to No.
      contact_unsubscribes: async (contact) => {
        await postControl(origin, "/__emulator/act", {
          action: "update_contact",
          contact_id: contact.external_id,
          changes: { email_opt_in: "No" },
        });
      },
      inject_throttle: async (count) => {
        await postControl(origin, "/__emulator/faults", {
          status: 429,
          count,
          path_prefix: "/api/v1/contacts",
        });
      },
      revoke_credentials: async () => {
        await postControl(origin, "/__emulator/oauth/revoke", {});
      },
      inspect: async (id) => {
        const c = emulator.contacts.get(Number(id));
        return c
          ? { opted_out: c.email_opt_in === "No", email: c.email ?? "", first_name: c.first_name }
          : null;
      },
      teardown: () => emulator.close(),
    };
  },
};

runConnectorContract(emulatorHarness);

runLiveConnectorContract("kindful", ["KINDFUL_API_TOKEN"], (v) => {
  const settings = (api_token: string): ConnectionSettings => ({
    connection_id: "kindful-live",
    base_url: v["KINDFUL_BASE_URL"] ?? KINDFUL_BASE_URL,
    credentials: { get: async () => ({ api_token }), save: async () => {} },
  });
  return {
    name: "kindful (live)",
    manifest: kindfulManifest,
    skip: { ...liveSkips(), quota_exceeded_defers: NO_QUOTA },
    start: async () => ({
      settings: settings(v["KINDFUL_API_TOKEN"] ?? ""),
      runtime,
      bad_settings: settings("not-a-token"),
      seed: (count, prefix) =>
        seedThroughConnector(
          kindfulManifest.connect(settings(v["KINDFUL_API_TOKEN"] ?? ""), runtime),
          count,
          prefix,
        ),
      page_size: 3,
      teardown: async () => undefined,
    }),
  };
});
