/**
 * Kindful as data: an API token, no published limits (Concord keeps to 5 calls a second), no
 * contact webhooks (changes come from its linked/changed query), consent for all email in
 * "Integration Email Opt-in" and a topic's in a Yes/No custom field, groups as the CRM's lists,
 * "Email Deliverable" as the field where a platform's bounces are recorded, and the contact columns
 * Concord reads and writes.
 */
import { controlApi, postControl } from "../emulator-kit/world";
import type { ConnectorManifest } from "../manifest";
import { KINDFUL_BASE_URL } from "./client";
import { createKindfulSession, KINDFUL_LIMITS, KindfulOptionsSchema } from "./connector";
import { CUSTOM_FIELD_FORM } from "./mapping";

const text = (name: string, description?: string) =>
  ({ name, type: "string", read: true, write: true, ...(description ? { description } : {}) }) as const;

export const kindfulManifest: ConnectorManifest = {
  id: "kindful",
  label: "Kindful",
  role: "crm",
  words: {
    name: "Kindful",
    record: "contact",
    opt_out_written: 'sets "Integration Email Opt-in" to No',
    admin_opted_out: 'set "Integration Email Opt-in" to No',
    admin_cleared: 'set "Integration Email Opt-in" back to Yes',
  },
  credentials: {
    api_token: {
      description:
        'the API token of the organisation\'s Kindful account (sent as Authorization: Token token="…")',
      secret: true,
      required: true,
    },
  },
  options: KindfulOptionsSchema,
  limits: KINDFUL_LIMITS,
  // A quiet poll asks for contacts not linked yet and linked contacts that changed, plus one
  // membership query per mapped group.
  polling: { calls_per_poll: 3, default_interval_ms: 300_000 },
  capabilities: {
    channels: ["email"],
    webhooks: false,
    // Integration Email Opt-in is a Yes/No flag with no history: Concord sets it back to Yes only
    // for the person's own opt-in, which it records in its ledger.
    resubscribe: "consent_record",
    can_create_contacts: true,
    deliverability_field: { name: "email_deliverable", undeliverable: "No" },
  },
  endpoints: { kind: "static", base_url: KINDFUL_BASE_URL },
  topics: {
    custom_field: {
      label: "Yes/No custom field",
      identified_by: "name",
      shown_by: "facts",
      profile_field: "custom_field:{name}",
    },
  },
  fields: {
    fields: [
      { name: "first_name", type: "string", read: true, write: true, slot: "first_name" },
      { name: "last_name", type: "string", read: true, write: true, slot: "last_name" },
      text("company_name", "an organisation's name (a contact with a company name is an organisation)"),
      text("addr1", "address line 1"),
      text("addr2", "address line 2"),
      text("city"),
      text("state", "state or province (abbreviated)"),
      text("postal", "postal code"),
      text("country", "country name or ISO code"),
      text("primary_phone"),
      text("email_deliverable", "Email Deliverable: Yes or No"),
      text("email_deliverable_error_reason", "Reason address undeliverable"),
    ],
    patterns: [
      {
        pattern: CUSTOM_FIELD_FORM,
        form: "custom_field:<the custom field's name>",
        type: "string",
        read: true,
        write: true,
        description: "a Kindful custom field, by name",
      },
    ],
  },
  // "email_opt_in" is also a canonical consent word Concord refuses as a profile field: not listed.
  vendor_terms: ["email_deliverable", "query_token", "sync_version", "not_linked"],
  emulator: {
    start: async (options) => {
      const { startKindfulEmulator } = await import("./emulator/kindful-emulator");
      const world = await import("./emulator/world");
      const started = await startKindfulEmulator({
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.now !== undefined ? { now: options.now } : {}),
        logger: options.logger ?? false,
      });
      const origin = started.baseUrl;
      const control = controlApi(origin, { client: { id: "concord", secret: "" }, world });
      return {
        origin,
        base_url: origin,
        token_url: `${origin}/admin/oauth2/token`,
        describe: [
          `Kindful API emulator listening on ${origin}`,
          `  Get an API token: curl -X POST ${origin}/__emulator/token`,
        ],
        grant: async () => {
          const answer = (await postControl(origin, "/__emulator/token", {})) as { token?: unknown };
          if (typeof answer.token !== "string")
            throw new Error(`${origin}/__emulator/token answered no token`);
          return { api_token: answer.token };
        },
        seed: control.seed,
        act: control.act,
        native: started,
        close: started.close,
      };
    },
  },
  connect: createKindfulSession,
};
