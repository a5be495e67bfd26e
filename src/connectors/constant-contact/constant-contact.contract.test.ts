// The shared connector contract suite, run against the Constant Contact emulator.
import { runConnectorContract } from "../contract/contract-suite";
import type { ContractHarness, SeededContact } from "../contract/contract-harness";
import type { ConnectionSettings, ConnectorDefinition } from "../connector";
import { constantContactConnector, createConstantContactConnector } from "./connector";
import { startTestAccount } from "./test-support";

const PAGE_SIZE = 3;

function harness(): ContractHarness {
  // ConnectionSettings carries no page size, so the small-page session is chosen by settings identity.
  const smallPages = createConstantContactConnector({ page_size: PAGE_SIZE });
  let pageSettings: ConnectionSettings | undefined;
  const definition: ConnectorDefinition = {
    ...constantContactConnector,
    connect: (settings, runtime) =>
      (settings === pageSettings ? smallPages : constantContactConnector).connect(settings, runtime),
  };

  return {
    name: "constant-contact (emulator)",
    definition,
    skip: {
      // Covered in connector.int.test.ts with a list id; the suite has no way to ask the harness for one.
      resubscribe_requires_contact_action:
        "the suite sends list_ids: [] and Constant Contact's resubscribe needs a list to add the person to (400)",
    },
    start: async () => {
      const account = await startTestAccount({ connection_id: "cc-contract" });
      pageSettings = { ...account.settings };
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
        page_size: { size: PAGE_SIZE, settings: pageSettings },
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
