// The shared connector contract suite, run against the Mailchimp emulator (and the live service
// when credentials are given).
import {
  liveSkips,
  runConnectorContract,
  runLiveConnectorContract,
  seedThroughConnector,
} from "../contract/contract-suite";
import type { ConnectionSettings } from "../connector";
import type { ContractHarness, SeededContact } from "../contract/contract-harness";
import { mailchimpManifest } from "./manifest";
import { startMailchimpTestAccount } from "../../../test/support/connectors/mailchimp";

const NO_QUOTA = "Mailchimp has no daily quota (its limit is 10 simultaneous connections)";

function harness(): ContractHarness {
  return {
    name: "mailchimp (emulator)",
    manifest: mailchimpManifest,
    skip: { quota_exceeded_defers: NO_QUOTA },
    start: async () => {
      const account = await startMailchimpTestAccount({ connection_id: "mc-contract" });
      const lists = await mailchimpManifest.connect(account.settings, account.runtime).lists();
      if (!lists.ok) throw new Error(lists.error.message);
      return {
        settings: account.settings,
        runtime: account.runtime,
        bad_settings: {
          ...account.settings,
          credentials: {
            get: async () => ({ api_key: "0123456789abcdef0123456789abcdef-us6" }),
            save: async () => {},
          },
        },
        seed: async (count, prefix): Promise<SeededContact[]> => {
          const people = Array.from({ length: count }, (_, i) => ({
            email: `${prefix}-${i}@example.org`.toLowerCase(),
            first_name: `First${i}`,
            last_name: `Last${i}`,
          }));
          const members = await account.seed(
            people.map((p) => ({
              email: p.email,
              status: "subscribed",
              first_name: p.first_name,
              last_name: p.last_name,
            })),
          );
          return people.map((p) => ({
            ...p,
            external_id: members.find((m) => m.email_address === p.email)!.contact_id,
          }));
        },
        page_size: 3,
        list_id: lists.value[0]!.external_id,
        contact_unsubscribes: async (contact) => {
          await account.act({ as: "contact", action: "unsubscribe", email: contact.email });
        },
        inject_throttle: async (count) => {
          await account.control("POST", "/__emulator/faults", {
            status: 429,
            count,
            path_prefix: "/3.0/",
            body: {
              type: "https://mailchimp.com/developer/marketing/docs/errors/",
              title: "Too Many Requests",
              status: 429,
              detail: "You have exceeded the limit of 10 simultaneous connections.",
              instance: "x",
            },
          });
        },
        revoke_credentials: async () => {
          await account.control("POST", "/__emulator/oauth/revoke", {});
        },
        inspect: async (id) => {
          const r = await account.control<{
            audiences: {
              members: {
                id: string;
                contact_id: string;
                email_address: string;
                status: string;
                merge_fields: Record<string, string>;
              }[];
            }[];
          }>("GET", "/__emulator/state");
          const m = r.audiences[0]!.members.find((x) => x.contact_id === id);
          return m
            ? {
                // A pending member (a resubscribe awaiting confirmation) is sent nothing either.
                opted_out: m.status === "unsubscribed" || m.status === "pending",
                email: m.email_address,
                first_name: m.merge_fields["FNAME"] || null,
              }
            : null;
        },
        teardown: () => account.close(),
      };
    },
  };
}

runConnectorContract(harness());

runLiveConnectorContract("mailchimp", ["MAILCHIMP_API_KEY", "MAILCHIMP_AUDIENCE"], (v): ContractHarness => {
  const settings = (key: string | undefined = v["MAILCHIMP_API_KEY"]): ConnectionSettings => ({
    connection_id: "mc-live",
    credentials: { get: async () => ({ api_key: key }), save: async () => {} },
    options: { audience: v["MAILCHIMP_AUDIENCE"], overlap_seconds: 300 },
  });
  const runtime = {
    now: () => new Date(),
    sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  };
  return {
    name: "mailchimp (live)",
    manifest: mailchimpManifest,
    skip: { ...liveSkips(), quota_exceeded_defers: NO_QUOTA },
    start: async () => ({
      settings: settings(),
      runtime,
      bad_settings: settings("0123456789abcdef0123456789abcdef-us1"),
      seed: (count, prefix) =>
        seedThroughConnector(mailchimpManifest.connect(settings(), runtime), count, prefix),
      page_size: 3,
      teardown: async () => undefined,
    }),
  };
});
