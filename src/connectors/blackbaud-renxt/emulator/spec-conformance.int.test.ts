/**
 * Checks the emulator's Constituent API answers (constituents, email addresses, relationships,
 * list members) against Blackbaud's official OpenAPI document, shared/specs/blackbaud/constituent.json.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  loadOpenApiValidator,
  officialSpecPath,
  type OpenApiValidator,
} from "../../contract/openapi-validator";
import { startHarness, type Harness } from "../../../../test/support/connectors/blackbaud-renxt-emulator";
import { describeWithSpecs } from "../../../../test/support/official-specs";

const specFile = officialSpecPath("blackbaud", "constituent.json");

let h: Harness;
let spec: OpenApiValidator;
let ids: { org: string; person: string; email: string; list: string };

describeWithSpecs("Constituent API responses match constituent.json", () => {
  beforeAll(async () => {
    spec = await loadOpenApiValidator(specFile);
    h = await startHarness();
    const seeded = (
      await h.control("POST", "/__emulator/seed", {
        constituents: [
          { type: "Organization", name: "Acme Foundation", lookup_id: "ORG-1" },
          {
            type: "Individual",
            first: "Rita",
            last: "Cole",
            title: "Dr.",
            email_addresses: [
              { address: "rita@example.org", type: "Email", primary: true },
              { address: "rita.work@example.org", type: "Work Email", do_not_email: true },
            ],
            solicit_codes: [{ solicit_code: "Do not mail", start_date: "2025-01-01T00:00:00Z" }],
          },
        ],
        lists: [
          {
            id: "6a2a6f60-6c55-4bcb-8b8e-27b1f25a9f7a",
            name: "Board",
            description: "Board members",
            ids: [],
          },
        ],
      })
    ).body;
    const [org, person] = seeded.constituents;
    ids = { org: org.id, person: person.id, email: person.email_address_ids[0], list: seeded.lists[0].id };
    await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "add_to_list",
      list_id: ids.list,
      ids: [ids.person, ids.org],
    });
    await h.call("POST", "/constituent/v1/relationships", {
      constituent_id: ids.person,
      relation_id: ids.org,
      type: "Employee",
      reciprocal_type: "Employer",
      is_organization_contact: true,
    });
  });

  afterAll(async () => {
    await h.close();
  });

  const cases: [string, () => string][] = [
    ["constituent list", () => "/constituent/v1/constituents?limit=1&last_modified=2000-01-01T00:00:00Z"],
    ["constituent list by list_id", () => `/constituent/v1/constituents?list_id=${ids.list}`],
    ["constituent (individual)", () => `/constituent/v1/constituents/${ids.person}`],
    ["constituent (organization)", () => `/constituent/v1/constituents/${ids.org}`],
    [
      "email addresses of a constituent",
      () => `/constituent/v1/constituents/${ids.person}/emailaddresses?include_inactive=true`,
    ],
    ["email addresses of all constituents", () => "/constituent/v1/emailaddresses"],
    ["relationships of a constituent", () => `/constituent/v1/constituents/${ids.org}/relationships`],
    [
      "communication preferences (solicit codes)",
      () => `/constituent/v1/constituents/${ids.person}/communicationpreferences`,
    ],
  ];

  it.each(cases)("GET %s", async (_name, path) => {
    const p = path();
    const res = await h.call("GET", p);
    expect(res.status).toBe(200);
    expect(spec.findOperation("GET", p)).toBeDefined();
    expect(spec.validateResponse({ method: "GET", path: p, status: res.status, body: res.body })).toEqual({
      ok: true,
    });
  });

  it.each([
    [
      "/constituent/v1/constituents",
      {
        type: "Individual",
        first: "New",
        last: "Person",
        email: { address: "n@example.org", type: "Email", primary: true },
      },
    ],
    [
      "/constituent/v1/emailaddresses",
      () => ({ constituent_id: ids.org, address: "info@acme.example.org", type: "Email" }),
    ],
  ] as const)("POST %s: our request and the {id} answer both match", async (path, bodyOrFn) => {
    const body = typeof bodyOrFn === "function" ? bodyOrFn() : bodyOrFn;
    expect(spec.validateRequest({ method: "POST", path, body })).toEqual({ ok: true });
    const res = await h.call("POST", path, body);
    expect(res.status).toBe(200);
    expect(spec.validateResponse({ method: "POST", path, status: res.status, body: res.body })).toEqual({
      ok: true,
    });
  });

  it("PATCH bodies the emulator accepts are valid ConstituentEdit / EmailAddressEdit", async () => {
    const edit = { requests_no_email: true, first: "Rita", inactive: false };
    expect(
      spec.validateRequest({
        method: "PATCH",
        path: `/constituent/v1/constituents/${ids.person}`,
        body: edit,
      }),
    ).toEqual({ ok: true });
    expect((await h.call("PATCH", `/constituent/v1/constituents/${ids.person}`, edit)).status).toBe(200);
    const emailEdit = { do_not_email: true, primary: true };
    expect(
      spec.validateRequest({
        method: "PATCH",
        path: `/constituent/v1/emailaddresses/${ids.email}`,
        body: emailEdit,
      }),
    ).toEqual({ ok: true });
    expect((await h.call("PATCH", `/constituent/v1/emailaddresses/${ids.email}`, emailEdit)).status).toBe(
      200,
    );
  });
});
