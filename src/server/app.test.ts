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

  it("answers an unexpected failure with internal_error only, and reports it", async () => {
    const seen: { error: unknown; url: string }[] = [];
    const app = buildServer({
      version: "1",
      ready: async () => true,
      onError: (error, request) => seen.push({ error, url: request.url }),
    });
    app.get("/boom", async () => {
      throw new Error("secret detail");
    });
    const res = await app.inject({ method: "GET", url: "/boom?x=1" });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      code: "internal_error",
      message: "Something went wrong on our side; it has been logged.",
    });
    expect(seen).toEqual([{ error: new Error("secret detail"), url: "/boom" }]);
  });
});
