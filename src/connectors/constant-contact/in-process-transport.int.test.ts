/**
 * A runtime's transport carries every HTTP call of a session — API calls and the OAuth token
 * refresh alike: here they go straight into the emulator's Fastify app in the same process, and
 * the API's host does not even resolve.
 */
import { describe, expect, it } from "vitest";
import type { HttpTransport } from "../connector";
import { createConstantContactEmulator } from "./emulator/constant-contact-emulator";
import { constantContactManifest } from "./manifest";

describe("a session over an injected transport", () => {
  it("checks, reads lists and records an opt-out without touching the network", async () => {
    const emulator = createConstantContactEmulator({ logger: false });
    await emulator.app.ready();
    try {
      const seed = await emulator.app.inject({
        method: "POST",
        url: "/__emulator/seed",
        payload: {
          lists: [{ list_id: "7c1e1a4e-0000-4000-8000-000000000001", name: "Newsletter" }],
          contacts: [
            {
              contact_id: "0b6f5a4e-0000-4000-8000-000000000001",
              email_address: { address: "ada@example.org", permission_to_send: "implicit" },
              list_memberships: ["7c1e1a4e-0000-4000-8000-000000000001"],
            },
          ],
        },
      });
      expect(seed.statusCode).toBe(200);
      const { refresh_token } = emulator.mintToken();

      const carried: string[] = [];
      const transport: HttpTransport = async (url, init) => {
        const u = new URL(url);
        carried.push(`${init.method} ${u.pathname}`);
        const res = await emulator.app.inject({
          method: init.method as "GET" | "POST" | "PUT",
          url: `${u.pathname}${u.search}`,
          headers: init.headers,
          ...(init.body !== null ? { payload: init.body } : {}),
        });
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = String(v);
        return { status: res.statusCode, headers, text: res.body };
      };

      let held: Record<string, string | undefined> = {
        client_id: "concord",
        client_secret: "s",
        refresh_token,
      };
      const session = constantContactManifest.connect(
        {
          connection_id: "cc-in-process",
          base_url: "http://cc.emulated.invalid/v3",
          token_url: "http://cc.emulated.invalid/oauth2/default/v1/token",
          credentials: {
            get: () => Promise.resolve(held),
            save: (changes) => {
              held = { ...held, ...changes };
              return Promise.resolve();
            },
          },
        },
        { now: () => new Date(), sleep: () => Promise.resolve(), transport },
      );

      expect((await session.check()).ok).toBe(true);
      const lists = await session.lists();
      expect(lists.ok && lists.value.map((l) => l.name)).toEqual(["Newsletter"]);
      const out = await session.apply([
        {
          kind: "record_opt_out",
          op_id: "op_in_process",
          external_id: "0b6f5a4e-0000-4000-8000-000000000001",
          email: "ada@example.org",
          scope: { kind: "account" },
          initiated_by: "contact",
          occurred_at: "2026-06-01T11:00:00.000Z",
          origin: { system: "blackbaud-renxt", connection: "re", mechanism: "phone_request" },
        },
      ]);
      expect(out).toEqual([
        { op_id: "op_in_process", status: "succeeded", external_id: "0b6f5a4e-0000-4000-8000-000000000001" },
      ]);
      expect(carried[0]).toBe("POST /oauth2/default/v1/token");
      expect(carried).toContain("PUT /v3/contacts/0b6f5a4e-0000-4000-8000-000000000001");
      // The rotated refresh token came back through the same transport and was saved at once.
      expect(held["refresh_token"]).not.toBe(refresh_token);
    } finally {
      await emulator.app.close();
    }
  });
});
