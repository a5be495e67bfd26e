/**
 * GrowthZone as data: an API key and the organisation's subdomain, 4 calls a second and GrowthZone's
 * 10,000 records a day as the connection's budget (consent first), no contact webhooks (the
 * contacts delta is polled), consent on each email address (Do Not Contact, Transactional Only) and
 * on each list's membership, lists and committees as the CRM's lists (with their newsletter-sync
 * setting), and the contact fields Concord reads and writes.
 */
import { controlApi, postControl } from "../emulator-kit/world";
import type { ConnectorManifest } from "../manifest";
import { baseUrlFromCredentials } from "./client";
import { createGrowthZoneSession, GROWTHZONE_LIMITS, GrowthZoneOptionsSchema } from "./connector";

export const growthZoneManifest: ConnectorManifest = {
  id: "growthzone",
  label: "GrowthZone",
  role: "crm",
  words: {
    name: "GrowthZone",
    record: "contact",
    opt_out_written: 'marks the address "Transactional Only" (no mass email)',
    admin_opted_out: 'set "Do Not Contact" on the address',
    admin_cleared: 'cleared "Do Not Contact"',
  },
  credentials: {
    api_key: {
      description: "the API key GrowthZone's WebSupport issues for the organisation's API configuration",
      secret: true,
      required: true,
    },
    subdomain: {
      description: "the organisation's subdomain: the part before .growthzoneapp.com",
      secret: false,
      required: false,
    },
  },
  options: GrowthZoneOptionsSchema,
  limits: GROWTHZONE_LIMITS,
  // A quiet poll: the delta (one page), one members read per list it reads (the pairs' lists and
  // the topics'), and the list of groups once when a topic stands for a list.
  polling: {
    calls_per_poll: 1,
    default_interval_ms: 120_000,
    calls_per_poll_reading: ({ lists, topic_lists }) => 1 + lists + (topic_lists > 0 ? 1 : 0),
  },
  capabilities: {
    channels: ["email"],
    webhooks: false,
    resubscribe: "consent_record",
    can_create_contacts: false,
  },
  endpoints: {
    kind: "from_credentials",
    resolve: baseUrlFromCredentials,
    explain: "https://<subdomain>.growthzoneapp.com, the subdomain from the credentials",
  },
  topics: {
    list: {
      label: "list or committee",
      identified_by: "id_or_name",
      lookup: "lists",
      shown_by: "facts",
      members_only: true,
    },
  },
  fields: {
    fields: [
      { name: "FirstName", type: "string", read: true, write: true, slot: "first_name" },
      { name: "LastName", type: "string", read: true, write: true, slot: "last_name" },
      {
        name: "OrganizationName",
        type: "string",
        read: true,
        write: true,
        description: "an organisation's name",
      },
    ],
    patterns: [],
  },
  vendor_terms: ["TransactionalOnly", "DoNotContact", "TotalRecordAvailable", "SyncWithNewsletter"],
  emulator: {
    start: async (options) => {
      const { startGrowthZoneEmulator } = await import("./emulator/growthzone-emulator");
      const world = await import("./emulator/world");
      const settings = options.settings ?? {};
      const started = await startGrowthZoneEmulator({
        ...(settings["ratePerSecond"] !== undefined
          ? { ratePerSecond: settings["ratePerSecond"] as number | null }
          : {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.now !== undefined ? { now: options.now } : {}),
        logger: options.logger ?? false,
      });
      const origin = started.baseUrl;
      const control = controlApi(origin, { client: { id: "concord", secret: "" }, world });
      return {
        origin,
        base_url: origin,
        token_url: `${origin}/oauth/token`,
        describe: [
          `GrowthZone API emulator listening on ${origin}`,
          `  Get an API key: curl -X POST ${origin}/__emulator/token`,
        ],
        grant: async () => {
          const answer = (await postControl(origin, "/__emulator/token", {})) as { api_key?: unknown };
          if (typeof answer.api_key !== "string")
            throw new Error(`${origin}/__emulator/token answered no API key`);
          return { api_key: answer.api_key };
        },
        seed: control.seed,
        act: control.act,
        native: started,
        close: started.close,
      };
    },
  },
  connect: createGrowthZoneSession,
};
