import { describe, expect, it } from "vitest";
import { buildServer } from "./app";

describe("server app", () => {
  it("answers health, readiness and unknown routes as JSON with stable codes", async () => {
    let ready = true;
    const app = buildServer({ version: "9.9.9", ready: async () => ready });
    expect((await app.inject({ method: "GET", url: "/healthz" })).json()).toEqual({
      status: "ok",
      version: "9.9.9",
    });
    expect((await app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
    ready = false;
    const notReady = await app.inject({ method: "GET", url: "/readyz" });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toMatchObject({ code: "store_unavailable" });
    const missing = await app.inject({ method: "GET", url: "/nope?x=1" });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ code: "not_found", message: "No route for GET /nope." });
  });

  it("limits request bodies", async () => {
    const app = buildServer({ version: "1", ready: async () => true, bodyLimitBytes: 100 });
    app.post("/echo", async (request) => request.body);
    const big = await app.inject({ method: "POST", url: "/echo", payload: { x: "y".repeat(500) } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: "body_too_large" });
  });
});
