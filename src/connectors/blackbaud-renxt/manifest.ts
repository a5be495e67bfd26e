/**
 * Raiser's Edge NXT (Blackbaud SKY API) as data: OAuth 2 plus a subscription key, 5 calls a second
 * and 25,000 a day on the Customer tier, CloudEvents webhooks, consent kept per consent category
 * with the constituent's own responses recorded as consent records, and the constituent fields
 * Concord reads and writes.
 */
import { controlApi } from "../emulator-kit/world";
import type { ConnectorManifest } from "../manifest";
import { SKY_API_BASE_URL, SKY_TOKEN_URL } from "./client";
import { BLACKBAUD_LIMITS, BlackbaudRenxtOptionsSchema, createBlackbaudRenxtSession } from "./connector";
import { handleBlackbaudWebhook, registerBlackbaudWebhooks, subscribeAndWait } from "./webhooks";

/** The OAuth client the emulated world connects with (the emulator takes any). */
const EMULATOR_CLIENT_ID = "concord";
const EMULATOR_CLIENT_SECRET = "concord-emulated-secret";

const text = (name: string, description?: string) =>
  ({ name, type: "string", read: true, write: true, ...(description ? { description } : {}) }) as const;

export const blackbaudRenxtManifest: ConnectorManifest = {
  id: "blackbaud-renxt",
  label: "Raiser's Edge NXT",
  role: "crm",
  words: {
    name: "Raiser's Edge",
    record: "constituent",
    opt_out_written: 'ticks "Requests No Email"',
    admin_opted_out: 'ticked "Requests No Email"',
    admin_cleared: 'cleared "Requests No Email"',
  },
  credentials: {
    client_id: { description: "the SKY application's id", secret: false, required: true },
    client_secret: { description: "the SKY application's secret", secret: true, required: true },
    refresh_token: {
      description: "a refresh token from the environment administrator's consent (valid 365 days)",
      secret: true,
      required: true,
    },
    subscription_key: {
      description: "the SKY developer subscription key (Bb-Api-Subscription-Key)",
      secret: true,
      required: true,
    },
  },
  options: BlackbaudRenxtOptionsSchema,
  limits: BLACKBAUD_LIMITS,
  // reference/apis.md §3.5: webhooks arrive within minutes, so it is polled as well. A quiet poll is
  // one page of constituents modified since the checkpoint, one membership read per mapped list and
  // one read per opt-out custom field category; the config check counts 3.
  polling: { calls_per_poll: 3, default_interval_ms: 300_000 },
  capabilities: {
    channels: ["email"],
    webhooks: true,
    resubscribe: "consent_record",
    can_create_contacts: true,
  },
  endpoints: { kind: "static", base_url: SKY_API_BASE_URL, token_url: SKY_TOKEN_URL },
  // reference/apis.md §3: Blackbaud's authorization page, the environment administrator's consent.
  oauth: {
    authorize_url: "https://app.blackbaud.com/oauth/authorize",
    token_hosts: ["oauth2.sky.blackbaud.com"],
    scopes: [],
    pkce: true,
    client_auth: "basic",
  },
  topics: {
    consent_category: { label: "consent category", identified_by: "name", shown_by: "facts" },
    // An organisation's own opt-out checkbox: a Yes/No constituent custom field, "Yes" is opted out.
    custom_field: { label: "Yes/No custom field", identified_by: "name", shown_by: "facts" },
  },
  fields: {
    fields: [
      { name: "first", type: "string", read: true, write: true, slot: "first_name" },
      { name: "last", type: "string", read: true, write: true, slot: "last_name" },
      text("middle"),
      text("preferred_name"),
      text("former_name"),
      text("suffix"),
      text("title", "the salutation title (Mr., Dr.), not a job title"),
      text("lookup_id", "the organisation's own constituent id"),
      text("name", "an organisation's name"),
      text("address_lines", "the preferred address's street lines"),
      text("city", "the preferred address's city"),
      text("state", "the preferred address's state or province"),
      text("postal_code", "the preferred address's postal code"),
      text("country", "the preferred address's country"),
      text("phone", "the primary phone's number"),
      { name: "gender", type: "string", read: true, write: false },
    ],
    patterns: [],
  },
  vendor_terms: [
    "requests_no_email",
    "do_not_email",
    "constituent_consent_response",
    "consent.email.",
    "solicit_code",
    "constituent_id",
    "date_modified",
  ],
  webhooks: { handle: handleBlackbaudWebhook, register: registerBlackbaudWebhooks },
  emulator: {
    start: async (options) => {
      const { startBlackbaudEmulator } = await import("./emulator/blackbaud-emulator");
      const world = await import("./emulator/world");
      const started = await startBlackbaudEmulator({
        ...(options.settings ?? {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.now !== undefined ? { now: options.now } : {}),
        logger: options.logger ?? false,
      });
      const origin = started.baseUrl;
      const control = controlApi(origin, {
        client: { id: EMULATOR_CLIENT_ID, secret: EMULATOR_CLIENT_SECRET },
        extra: { subscription_key: started.subscriptionKey },
        world,
      });
      return {
        origin,
        base_url: origin,
        token_url: `${origin}/oauth2/token`,
        describe: [
          `Blackbaud SKY API (Raiser's Edge NXT) emulator listening on ${origin}`,
          `  Bb-Api-Subscription-Key: ${started.subscriptionKey}`,
          `  Get a token: curl -X POST ${origin}/__emulator/token`,
        ],
        ...control,
        subscribe: async (receiverUrl, secret) =>
          subscribeAndWait(
            { base_url: origin, token_url: `${origin}/oauth2/token` },
            await control.grant(),
            receiverUrl,
            secret,
          ),
        native: started,
        close: started.close,
      };
    },
  },
  connect: createBlackbaudRenxtSession,
};
