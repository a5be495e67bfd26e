/**
 * Mailchimp Marketing as data: an API key (or an OAuth token with its data centre), the API found
 * from the key's `-usNN` suffix, no daily quota but 10 connections at once, audience webhooks
 * (form-encoded, the secret in the URL), one audience per connection with its groups (interests)
 * and tags as topics and lists, its GDPR marketing permissions as topics, resubscribe only by Mailchimp's own confirmation email, and merge
 * fields as profile fields.
 */
import { controlApi, postControl } from "../emulator-kit/world";
import type { ConnectorManifest } from "../manifest";
import { baseUrlFromCredentials } from "./client";
import {
  MAILCHIMP_LIMITS,
  MailchimpOptionsSchema,
  createMailchimpSession,
  registerMailchimpWebhook,
} from "./connector";
import { MERGE_TAG, unreadMemberOptOut } from "./mapping";
import { handleMailchimpWebhook } from "./webhooks";
import { errorMessage } from "../../core/error-code";

export const mailchimpManifest: ConnectorManifest = {
  id: "mailchimp",
  label: "Mailchimp",
  role: "email_platform",
  credentials: {
    api_key: {
      description:
        "an API key from Account → Extras → API keys (it ends in -usNN, the account's data centre)",
      secret: true,
      required: false,
    },
    access_token: {
      description: "instead of an API key: an OAuth 2 access token (Mailchimp's never expire)",
      secret: true,
      required: false,
    },
    dc: {
      description:
        "with an access token: the data centre (e.g. us6) that https://login.mailchimp.com/oauth2/metadata answers",
      secret: false,
      required: false,
    },
    client_id: {
      description:
        "for Connect in Concord's UI: the client id of the organisation's registered Mailchimp app",
      secret: false,
      required: false,
    },
    client_secret: {
      description: "for Connect in Concord's UI: that app's client secret",
      secret: true,
      required: false,
    },
  },
  options: MailchimpOptionsSchema,
  limits: MAILCHIMP_LIMITS,
  // A quiet poll reads members changed since the checkpoint, and those archived since: two calls.
  polling: { calls_per_poll: 2, default_interval_ms: 60_000 },
  capabilities: {
    channels: ["email"],
    webhooks: true,
    resubscribe: "confirmation_email",
    can_create_contacts: true,
  },
  endpoints: {
    kind: "from_credentials",
    token_url: "https://login.mailchimp.com/oauth2/token",
    resolve: baseUrlFromCredentials,
    explain:
      "https://<dc>.api.mailchimp.com/3.0, the data centre from the API key's -usNN suffix or the dc credential",
  },
  topics: {
    account: { label: "the whole audience", identified_by: "none", shown_by: "facts" },
    interest: {
      label: "group (interest)",
      identified_by: "id_or_name",
      lookup: "lists",
      list_id_prefix: "interest:",
      shown_by: "membership",
    },
    tag: {
      label: "tag",
      identified_by: "id_or_name",
      lookup: "lists",
      list_id_prefix: "tag:",
      shown_by: "membership",
    },
    // An audience's GDPR fields: Mailchimp lists them on its members only, by their text.
    marketing_permission: {
      label: "GDPR marketing permission",
      identified_by: "name",
      shown_by: "facts",
    },
  },
  fields: {
    fields: [
      {
        name: "first_name",
        type: "string",
        read: true,
        write: true,
        slot: "first_name",
        description: "the FNAME merge field",
      },
      {
        name: "last_name",
        type: "string",
        read: true,
        write: true,
        slot: "last_name",
        description: "the LNAME merge field",
      },
    ],
    patterns: [
      {
        pattern: MERGE_TAG,
        form: "<a merge tag of the audience, e.g. PHONE or ADDRESS>",
        type: "string",
        read: true,
        write: true,
        description: "a merge field, by its tag (GET /lists/{id}/merge-fields lists them)",
      },
    ],
  },
  vendor_terms: [
    "unsubscribe_reason",
    "merge_fields",
    "status_if_new",
    "subscriber_hash",
    "marketing_permissions",
  ],
  // Mailchimp's OAuth: no PKCE, the secret in the body, tokens that never expire; the data centre
  // comes from the metadata endpoint beside the token endpoint.
  oauth: {
    authorize_url: "https://login.mailchimp.com/oauth2/authorize",
    token_hosts: ["login.mailchimp.com"],
    scopes: [],
    pkce: false,
    client_auth: "body",
    after_grant: async (accessToken, { token_url, transport }) => {
      const url = new URL("/oauth2/metadata", token_url).toString();
      try {
        const res = await transport(url, {
          method: "GET",
          headers: { authorization: `OAuth ${accessToken}`, accept: "application/json" },
          body: null,
          timeout_ms: 30_000,
          max_bytes: 64 * 1024,
        });
        const dc = res.status === 200 ? (JSON.parse(res.text) as { dc?: unknown }).dc : undefined;
        return typeof dc === "string" && dc !== ""
          ? { ok: true, value: { dc } }
          : {
              ok: false,
              error: `Mailchimp's metadata (${url}) answered ${res.status} without a data centre.`,
            };
      } catch (error) {
        return {
          ok: false,
          error: `Mailchimp's metadata (${url}) failed: ${errorMessage(error)}`,
        };
      }
    },
  },
  webhooks: {
    handle: handleMailchimpWebhook,
    announcedOptOuts: (changes) =>
      changes.flatMap((change) => {
        const observed = unreadMemberOptOut(change);
        return observed === undefined ? [] : [observed];
      }),
    register: async (settings, runtime, receiver) => {
      const r = await registerMailchimpWebhook(settings, runtime, receiver.url, receiver.secret);
      return r.ok ? { ok: true, value: r.value } : r;
    },
  },
  emulator: {
    start: async (options) => {
      const { startMailchimpEmulator } = await import("./emulator/mailchimp-emulator");
      const world = await import("./emulator/world");
      const started = await startMailchimpEmulator({
        ...(options.settings ?? {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.now !== undefined ? { now: options.now } : {}),
        logger: options.logger ?? false,
      });
      const origin = started.baseUrl;
      const control = controlApi(origin, { client: { id: "concord", secret: "" }, world });
      const grant = async (): Promise<Record<string, string>> => {
        const answer = (await postControl(origin, "/__emulator/token", {})) as { api_key?: unknown };
        if (typeof answer.api_key !== "string")
          throw new Error(`${origin}/__emulator/token answered no API key`);
        return { api_key: answer.api_key };
      };
      return {
        origin,
        base_url: `${origin}/3.0`,
        token_url: `${origin}/oauth2/token`,
        describe: [
          `Mailchimp Marketing API emulator listening on ${origin} (API ${origin}/3.0)`,
          `  Get an API key: curl -X POST ${origin}/__emulator/token`,
        ],
        grant,
        seed: control.seed,
        act: control.act,
        subscribe: async (receiverUrl, secret) => {
          const credentials = await grant();
          const registered = await registerMailchimpWebhook(
            {
              connection_id: "emulator",
              base_url: `${origin}/3.0`,
              credentials: { get: () => Promise.resolve(credentials), save: () => Promise.resolve() },
            },
            { now: () => new Date(), sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) },
            receiverUrl,
            secret,
          );
          return registered.ok;
        },
        pending_confirmations: () => world.pendingConfirmations(origin),
        native: started,
        close: started.close,
      };
    },
  },
  connect: createMailchimpSession,
};
