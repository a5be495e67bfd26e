import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { describeWithSpecs, SPECS_DIR as SPECS } from "../../../test/support/official-specs";
import { createOpenApiValidator, loadOpenApiValidator } from "./openapi-validator";

// The vendor specs live outside the repository (see shared/specs SOURCE.txt for their licences).

const spec = {
  openapi: "3.0.0",
  info: { title: "t", version: "1" },
  servers: [{ url: "https://api.example.com/v9" }],
  paths: {
    "/things/{id}": {
      get: {
        operationId: "getThing",
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": {
            description: "ok",
            content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } },
          },
          "404": { description: "missing" },
        },
      },
    },
    "/things/special": {
      get: { operationId: "getSpecial", responses: { "204": { description: "none" } } },
    },
    "/things": {
      post: {
        operationId: "createThing",
        requestBody: {
          required: true,
          content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } },
        },
        responses: { default: { description: "any" } },
      },
    },
    "/trees/{id}": {
      get: {
        responses: {
          "2XX": {
            description: "ok",
            content: { "application/json": { schema: { $ref: "#/components/schemas/Tree" } } },
          },
        },
      },
    },
  },
  components: {
    schemas: {
      Thing: {
        type: "object",
        required: ["id", "name"],
        properties: {
          id: { type: "string", format: "uuid", readOnly: true },
          name: { type: "string", maxLength: 5 },
          note: { type: "string", nullable: true },
          kind: { type: "string", enum: ["a", "b"], nullable: true },
          size: { type: "number", minimum: 0, exclusiveMinimum: true },
          at: { type: "string", format: "date-time" },
        },
      },
      // Recursive: stays a $ref after dereferencing and must still resolve.
      Tree: {
        type: "object",
        properties: {
          label: { type: "string" },
          children: { type: "array", items: { $ref: "#/components/schemas/Tree" } },
        },
      },
    },
  },
};

const ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

describe("openapi-validator", async () => {
  const v = await createOpenApiValidator(spec);

  it.each([
    ["GET", "/v9/things/special", "/things/special"],
    ["GET", "/v9/things/abc?x=1", "/things/{id}"],
    ["GET", "https://api.example.com/v9/things/abc", "/things/{id}"],
    ["GET", "/things/abc", "/things/{id}"],
    ["POST", "/v9/things", "/things"],
  ])("finds %s %s → %s", (method, path, template) => {
    expect(v.basePath).toBe("/v9");
    expect(v.findOperation(method, path)?.template).toBe(template);
  });

  it("reports unknown operations", () => {
    expect(v.findOperation("DELETE", "/v9/things")).toBeUndefined();
    expect(v.validateResponse({ method: "GET", path: "/v9/nothing", status: 200, body: {} })).toEqual({
      ok: false,
      errors: ["no operation in the spec for GET /v9/nothing"],
    });
  });

  it.each<[string, number, unknown, boolean]>([
    ["/v9/things/1", 200, { id: ID, name: "abc" }, true],
    ["/v9/things/1", 200, { id: ID, name: "abc", note: null, kind: null }, true],
    ["/v9/things/1", 200, { id: ID, name: "abc", kind: "c" }, false],
    ["/v9/things/1", 200, { id: "nope", name: "abc" }, false],
    ["/v9/things/1", 200, { id: ID, name: "toolong" }, false],
    ["/v9/things/1", 200, { id: ID, name: "a", size: 0 }, false],
    ["/v9/things/1", 200, { id: ID, name: "a", at: "yesterday" }, false],
    ["/v9/things/1", 200, { name: "abc" }, false],
    ["/v9/things/1", 404, [{ error_key: "x" }], true],
    ["/v9/things/1", 500, {}, false],
    ["/v9/trees/1", 201, { label: "r", children: [{ label: "c", children: [{ label: 3 }] }] }, false],
    ["/v9/trees/1", 200, { label: "r", children: [{ label: "c", children: [] }] }, true],
  ])("response %s %i %j → ok=%s", (path, status, body, ok) => {
    const result = v.validateResponse({ method: "GET", path, status, body });
    expect(result.ok, JSON.stringify(result)).toBe(ok);
  });

  it("gives readable messages", () => {
    const result = v.validateResponse({
      method: "GET",
      path: "/v9/things/1",
      status: 200,
      body: { id: ID, name: "a", kind: "c" },
    });
    expect(result).toEqual({
      ok: false,
      errors: ['GET /things/{id} → 200: /kind must be one of ["a","b",null]'],
    });
  });

  it.each<[unknown, boolean]>([
    [{ name: "abc" }, true], // readOnly id is not required in a request
    [{ name: 1 }, false],
    [undefined, false], // required body
  ])("request body %j → ok=%s", (body, ok) => {
    expect(v.validateRequest({ method: "POST", path: "/v9/things", body }).ok).toBe(ok);
  });
});

describeWithSpecs("openapi-validator on the vendors' specs", () => {
  it("loads and caches the Constant Contact spec from YAML", async () => {
    const file = join(SPECS, "constant-contact/csharp-client-openapi/openapi.yaml");
    const [a, b] = await Promise.all([loadOpenApiValidator(file), loadOpenApiValidator(file)]);
    expect(a).toBe(b);
    expect(a.findOperation("PUT", "/v3/contacts/resubscribe/x")?.operationId).toBe("resubscribeContact");
    expect(a.findOperation("POST", "/v3/contacts/sign_up_form")?.operationId).toBe("createOrUpdateContact");
  });

  it("supports Swagger 2.0 documents and named schemas", async () => {
    const s = await loadOpenApiValidator(
      join(SPECS, "constant-contact/swagger-3.0.178/constant-contact-v3-openapi.yml"),
    );
    expect(s.basePath).toBe("/v3");
    expect(
      s.validateSchema("#/definitions/APIErrorSchema", [{ error_key: "a", error_message: "b" }]).ok,
    ).toBe(true);
    expect(s.validateSchema("#/definitions/APIErrorSchema", { error_key: "a" }).ok).toBe(false);
  });
});
