/**
 * Constant Contact V3 as data: OAuth 2 credentials, 4 calls a second and 10,000 a day (reset at
 * 00:00 UTC), no contact webhooks (polled), opt-outs scoped to the whole account, resubscribe only
 * by the person's confirmation email, bulk imports, and the fields a contact carries.
 */
import { controlApi } from "../emulator-kit/world";
import type { ConnectorManifest } from "../manifest";

/** The OAuth client the emulated world connects with (the emulator takes any). */
const EMULATOR_CLIENT_ID = "concord";
const EMULATOR_CLIENT_SECRET = "concord-emulated-secret";
import { CONSTANT_CONTACT_BASE_URL, CONSTANT_CONTACT_TOKEN_URL } from "./client";
import {
  CONSTANT_CONTACT_LIMITS,
  ConstantContactOptionsSchema,
  createConstantContactSession,
} from "./connector";

const UUID = /^custom_field:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const constantContactManifest: ConnectorManifest = {
  id: "constant-contact",
  label: "Constant Contact",
  role: "email_platform",
  credentials: {
    client_id: {
      description: "the application's API key (client id) from the Constant Contact developer portal",
      secret: false,
      required: true,
    },
    client_secret: {
      description: "the application's client secret (none for a PKCE application)",
      secret: true,
      required: false,
    },
    refresh_token: {
      description: "a refresh token from the account owner's consent (offline_access)",
      secret: true,
      required: true,
    },
  },
  options: ConstantContactOptionsSchema,
  limits: CONSTANT_CONTACT_LIMITS,
  // reference/apis.md §1: no contact webhooks for ordinary apps, so each poll reads contacts updated
  // since and contacts opted out since the checkpoint: two calls when nothing changed.
  polling: { calls_per_poll: 2, default_interval_ms: 60_000 },
  capabilities: {
    channels: ["email"],
    webhooks: false,
    resubscribe: "confirmation_email",
    can_create_contacts: true,
    account_resubscribe: true,
  },
  endpoints: { kind: "static", base_url: CONSTANT_CONTACT_BASE_URL, token_url: CONSTANT_CONTACT_TOKEN_URL },
  // reference/apis.md §1: the authorization-code flow with PKCE; offline_access for a refresh token.
  oauth: {
    authorize_url: "https://authz.constantcontact.com/oauth2/default/v1/authorize",
    token_hosts: ["authz.constantcontact.com"],
    scopes: ["contact_data", "offline_access"],
    pkce: true,
    client_auth: "basic",
  },
  topics: {
    account: { label: "the whole account", identified_by: "none", shown_by: "facts" },
    list: { label: "contact list", identified_by: "id_or_name", lookup: "lists", shown_by: "membership" },
  },
  fields: {
    fields: [
      { name: "first_name", type: "string", read: true, write: true, slot: "first_name" },
      { name: "last_name", type: "string", read: true, write: true, slot: "last_name" },
      { name: "job_title", type: "string", read: true, write: true },
      { name: "company_name", type: "string", read: true, write: true },
      { name: "birthday_month", type: "number", read: true, write: true },
      { name: "birthday_day", type: "number", read: true, write: true },
      { name: "anniversary", type: "date", read: true, write: true },
    ],
    patterns: [
      {
        pattern: UUID,
        form: "custom_field:<the custom field's id, a UUID>",
        type: "string",
        read: true,
        write: true,
        description: "a custom field, by its custom_field_id (GET /contact_custom_fields lists them)",
      },
      {
        pattern: /^phone:(home|work|mobile|fax|other)$/,
        form: "phone:<home|work|mobile|fax|other>",
        type: "string",
        read: true,
        write: true,
      },
      {
        pattern: /^address:(home|work|other):(street|city|state|postal_code|country)$/,
        form: "address:<home|work|other>:<street|city|state|postal_code|country>",
        type: "string",
        read: true,
        write: true,
      },
    ],
  },
  vendor_terms: [
    "permission_to_send",
    "opt_out_source",
    "opt_in_source",
    "opt_out_reason",
    "update_source",
    "create_source",
    "confirm_status",
    "cannot_add_to_list_count",
  ],
  emulator: {
    start: async (options) => {
      const { startConstantContactEmulator } = await import("./emulator/constant-contact-emulator");
      const world = await import("./emulator/world");
      const started = await startConstantContactEmulator({
        ...(options.settings ?? {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.now !== undefined ? { now: options.now } : {}),
        logger: options.logger ?? false,
      });
      const origin = started.baseUrl;
      return {
        origin,
        base_url: `${origin}/v3`,
        token_url: `${origin}/oauth2/default/v1/token`,
        describe: [
          `Constant Contact V3 emulator listening on ${origin} (API ${origin}/v3)`,
          `  Get a token: curl -X POST ${origin}/__emulator/token`,
        ],
        ...controlApi(origin, {
          client: { id: EMULATOR_CLIENT_ID, secret: EMULATOR_CLIENT_SECRET },
          world,
        }),
        pending_confirmations: () => world.pendingConfirmations(origin),
        native: started,
        close: started.close,
      };
    },
  },
  connect: createConstantContactSession,
};
