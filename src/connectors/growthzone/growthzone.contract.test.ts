/** Runs the shared connector contract against the GrowthZone emulator (and the live service when a key is set). */
import type { ConnectionSettings, ConnectorRuntime } from "../connector";
import {
  liveSkips,
  runConnectorContract,
  runLiveConnectorContract,
  seedThroughConnector,
} from "../contract/contract-suite";
import type { ContractHarness, SeededContact } from "../contract/contract-harness";
import { postControl } from "../emulator-kit/world";
import { growthZoneManifest } from "./manifest";
import { startGrowthZoneEmulator } from "./emulator/growthzone-emulator";

const NO_QUOTA =
  "GrowthZone enforces no daily quota on its API; the 10,000 a day is Concord's own budget for the connection (tested in the engine's budget tests)";

const runtime: ConnectorRuntime = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const emulatorHarness: ContractHarness = {
  name: "growthzone (emulator)",
  manifest: growthZoneManifest,
  skip: {
    quota_exceeded_defers: NO_QUOTA,
    contact_unsubscribe_observed:
      "a person cannot unsubscribe in GrowthZone itself, and it keeps no history of an address's restriction: an opt-out read there is the account's",
    create_then_update:
      "Concord does not create GrowthZone contacts (its API has no lookup by address, so a retried create could make a second one)",
    partial_bulk_failure: "GrowthZone has no bulk write; each write is its own call with its own outcome",
  },
  start: async () => {
    const emulator = await startGrowthZoneEmulator({ ratePerSecond: null });
    const origin = emulator.baseUrl;
    const key = ((await postControl(origin, "/__emulator/token", {})) as { api_key: string }).api_key;
    const settings = (api_key: string): ConnectionSettings => ({
      connection_id: "growthzone-contract",
      base_url: origin,
      // The emulator has no rate here; the connection's own pace is not what this suite checks.
      limits: { requests_per_second: 1000 },
      credentials: { get: async () => ({ api_key }), save: async () => {} },
    });
    const group = (await postControl(origin, "/__emulator/act", {
      action: "create_group",
      name: "Newsletter",
    })) as {
      group: { GroupId: number };
    };
    let n = 0;
    return {
      settings: settings(key),
      runtime,
      bad_settings: settings("not-a-key"),
      seed: async (count, prefix) => {
        const people = Array.from({ length: count }, () => {
          n += 1;
          return {
            email: `${prefix}-${n}@example.org`.toLowerCase(),
            first_name: `First${n}`,
            last_name: "Seed",
          };
        });
        const answer = (await postControl(origin, "/__emulator/seed", {
          contacts: people.map((p) => ({
            FirstName: p.first_name,
            LastName: p.last_name,
            Emails: [{ EmailAddress: p.email, IsDefault: true }],
          })),
        })) as { contacts: number[] };
        return answer.contacts.map((id, i): SeededContact => ({ external_id: String(id), ...people[i]! }));
      },
      page_size: 3,
      list_id: String(group.group.GroupId),
      contact_unsubscribes: async (contact) => {
        await postControl(origin, "/__emulator/act", {
          action: "set_restriction",
          contact_id: contact.external_id,
          restriction: "DoNotContact",
        });
      },
      inject_throttle: async (count) => {
        await postControl(origin, "/__emulator/faults", {
          status: 429,
          count,
          path_prefix: "/api/contacts",
          headers: { "Retry-After": "1" },
          body: { Message: "Too many requests." },
        });
      },
      revoke_credentials: async () => {
        await postControl(origin, "/__emulator/oauth/revoke", {});
      },
      inspect: async (id) => {
        const c = emulator.contacts.get(Number(id));
        if (!c || c.IsDeleted) return null;
        const primary = c.Emails.find((e) => e.IsDefault) ?? c.Emails[0];
        return {
          opted_out: (primary?.Restriction ?? "None") !== "None",
          email: primary?.EmailAddress ?? "",
          first_name: c.FirstName,
        };
      },
      teardown: () => emulator.close(),
    };
  },
};

runConnectorContract(emulatorHarness);

runLiveConnectorContract("growthzone", ["GROWTHZONE_API_KEY", "GROWTHZONE_SUBDOMAIN"], (v) => {
  const settings = (api_key: string): ConnectionSettings => ({
    connection_id: "growthzone-live",
    credentials: {
      get: async () => ({ api_key, subdomain: v["GROWTHZONE_SUBDOMAIN"] }),
      save: async () => {},
    },
  });
  return {
    name: "growthzone (live)",
    manifest: growthZoneManifest,
    skip: {
      ...liveSkips(),
      quota_exceeded_defers: NO_QUOTA,
      create_then_update: "Concord does not create GrowthZone contacts",
    },
    start: async () => ({
      settings: settings(v["GROWTHZONE_API_KEY"] ?? ""),
      runtime,
      bad_settings: settings("not-a-key"),
      seed: (count, prefix) =>
        seedThroughConnector(
          growthZoneManifest.connect(settings(v["GROWTHZONE_API_KEY"] ?? ""), runtime),
          count,
          prefix,
        ),
      page_size: 3,
      teardown: async () => undefined,
    }),
  };
});
