/**
 * Fields beyond names (seed 002's nine): the preferred address, the primary phone and an
 * organisation's name travel between Raiser's Edge NXT and Constant Contact by the pair's field
 * mappings, each with its owner; organisation contacts keep the company name.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { TEST_SUBSCRIPTION_KEY } from "../../test/support/test-credentials";

describe("profile fields beyond names (SQLite)", () => {
  let h: SyncHarness;
  let ada = "";

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      configure: (raw) => {
        const pair = (raw.pairs as { fields: unknown[] }[])[0]!;
        pair.fields.push(
          { canonical: "street", crm: "address_lines", platform: "address:home:street", owner: "crm" },
          { canonical: "city", crm: "city", platform: "address:home:city", owner: "crm" },
          { canonical: "region", crm: "state", platform: "address:home:state", owner: "crm" },
          {
            canonical: "postal_code",
            crm: "postal_code",
            platform: "address:home:postal_code",
            owner: "crm",
          },
          { canonical: "country", crm: "country", platform: "address:home:country", owner: "crm" },
          // The phone is kept where it last changed.
          { canonical: "phone", crm: "phone", platform: "phone:home", owner: "latest" },
          {
            canonical: "organisation",
            crm: "name",
            platform: "company_name",
            direction: "crm_to_platform",
            owner: "crm",
          },
        );
      },
    });
    const ids = await h.seedRe([
      individual("ada@example.org", "Ada", "Lovelace", {
        address: {
          address_lines: "12 St James's Square",
          city: "London",
          state: "Greater London",
          postal_code: "SW1Y 4JH",
          country: "United Kingdom",
        },
        phone: { number: "+44 20 7946 0001", type: "Home" },
      }),
      {
        type: "Organization",
        name: "Analytical Engines Ltd",
        email: {
          address: "info@engines.example.org",
          type: "Email",
          primary: true,
          do_not_email: false,
          inactive: false,
        },
      },
    ]);
    ada = ids[0] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
    const first = await h.sync();
    expect(first.execution?.operations.failed).toBe(0);
    h.advance(60_000);
  });
  afterEach(async () => {
    await h.close();
  });

  const reCall = async (method: string, path: string, body?: unknown) => {
    const token = h.re.mintToken();
    const res = await fetch(`${h.re.baseUrl}${path}`, {
      method,
      headers: {
        "Bb-Api-Subscription-Key": TEST_SUBSCRIPTION_KEY,
        Authorization: `Bearer ${String(token.access_token)}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    expect(res.status, `${method} ${path}`).toBeLessThan(300);
    const text = await res.text();
    return text === "" ? undefined : JSON.parse(text);
  };

  it("the first sync carries the address, the phone and an organisation's name", () => {
    const c = h.ccContact(h.ccMain, "ada@example.org");
    expect(c?.street_addresses).toEqual([
      expect.objectContaining({
        kind: "home",
        street: "12 St James's Square",
        city: "London",
        state: "Greater London",
        postal_code: "SW1Y 4JH",
        country: "United Kingdom",
      }),
    ]);
    expect(c?.phone_numbers).toEqual([
      expect.objectContaining({ kind: "home", phone_number: "+44 20 7946 0001" }),
    ]);
    const org = h.ccContact(h.ccMain, "info@engines.example.org");
    expect(org?.fields.company_name).toBe("Analytical Engines Ltd");
    expect(org?.fields.first_name ?? null).toBeNull();
  });

  it("a move in the CRM follows to the platform; a phone changed on the platform follows to the CRM", async () => {
    const constituent = await reCall("GET", `/constituent/v1/constituents/${ada}`);
    await reCall("PATCH", `/constituent/v1/addresses/${String(constituent.address.id)}`, {
      address_lines: "1 Infinite Loop",
      city: "Cupertino",
      state: "CA",
      postal_code: "95014",
      country: "United States",
    });
    h.advance(1_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.street_addresses).toEqual([
      expect.objectContaining({ street: "1 Infinite Loop", city: "Cupertino", postal_code: "95014" }),
    ]);

    // The person updates their phone on the platform's profile page.
    const cc = h.ccContact(h.ccMain, "ada@example.org")!;
    cc.phone_numbers[0]!.phone_number = "+1 408 555 0199";
    await h.ccAdmin(h.ccMain, "update", "ada@example.org", { fields: {} });
    h.advance(1_000);
    const run = await h.sync();
    expect(run.execution?.operations.failed).toBe(0);
    const after = await reCall("GET", `/constituent/v1/constituents/${ada}`);
    expect(after.phone).toMatchObject({ number: "+1 408 555 0199" });
    // The address the CRM owns stayed as the CRM has it.
    expect(after.address).toMatchObject({ city: "Cupertino" });
  });
});
