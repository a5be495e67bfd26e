import { once } from "node:events";
import { connect, type AddressInfo } from "node:net";
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

  it("answers the router's own refusals in its form: a path part too long, a malformed escape", async () => {
    const app = buildServer({ version: "1", ready: async () => true });
    app.get("/l/u/:token", async (request) => ({ token: (request.params as { token: string }).token }));
    // A person's link token well past today's length still reaches its route.
    const token = `${"A".repeat(150)}.${"b".repeat(27)}`;
    expect((await app.inject({ method: "GET", url: `/l/u/${token}` })).json()).toEqual({ token });
    const long = await app.inject({ method: "GET", url: `/l/u/${"x".repeat(600)}` });
    expect(long.statusCode).toBe(414);
    expect(long.json()).toEqual({
      code: "uri_too_long",
      message: expect.stringMatching(/^A part of the path "\/l\/u\/x+"… is longer than 500 characters\.$/),
    });
    const bad = await app.inject({ method: "GET", url: "/l/u/%E0%A4%A" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: "bad_url" });
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

  it("sends security headers on every answer, and HSTS behind https", async () => {
    const plain = buildServer({ version: "1", ready: async () => true });
    const res = await plain.inject({ method: "GET", url: "/healthz" });
    expect(res.headers).toMatchObject({
      "x-content-type-options": "nosniff",
      "referrer-policy": "same-origin",
      "content-security-policy": expect.stringContaining("frame-ancestors 'none'"),
    });
    expect(res.headers["strict-transport-security"]).toBeUndefined();
    expect((await plain.inject({ method: "GET", url: "/nope" })).headers["x-content-type-options"]).toBe(
      "nosniff",
    );
    const secure = buildServer({
      version: "1",
      ready: async () => true,
      publicUrl: "https://concord.example.org",
    });
    expect(
      (await secure.inject({ method: "GET", url: "/healthz" })).headers["strict-transport-security"],
    ).toContain("max-age=");
  });

  it("answers only for the public address's host (and loopback); probes answer whatever the Host", async () => {
    const app = buildServer({
      version: "1",
      ready: async () => true,
      publicUrl: "https://concord.example.org",
    });
    app.get("/api/x", async () => ({ ok: true }));
    const get = (url: string, host: string) => app.inject({ method: "GET", url, headers: { host } });
    expect((await get("/api/x", "concord.example.org")).statusCode).toBe(200);
    expect((await get("/api/x", "CONCORD.example.org:443")).statusCode).toBe(200);
    expect((await get("/api/x", "localhost:8080")).statusCode).toBe(200);
    expect((await get("/api/x", "[::1]:8080")).statusCode).toBe(200);
    const evil = await get("/api/x", "evil.example");
    expect(evil.statusCode).toBe(421);
    expect(evil.json()).toMatchObject({ code: "misdirected_request" });
    expect((await get("/healthz", "10.0.0.7:8080")).statusCode).toBe(200);
    // Without a public address, any Host is answered.
    const open = buildServer({ version: "1", ready: async () => true });
    expect(
      (await open.inject({ method: "GET", url: "/healthz", headers: { host: "anything" } })).statusCode,
    ).toBe(200);
  });
});

describe("slow clients", () => {
  it("a request sent a byte at a time is cut off at the request timeout, and the server goes on", async () => {
    const app = buildServer({ version: "1", ready: async () => true, timeouts: { request_ms: 300 } });
    app.post("/echo", async (request) => request.body);
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as AddressInfo;
    try {
      const socket = connect(port, "127.0.0.1");
      await once(socket, "connect");
      socket.write(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
      );
      let answer = "";
      socket.on("data", (d: Buffer) => (answer += d.toString()));
      // Keep trickling bytes until the server gives up on the request.
      const trickle = setInterval(() => socket.write(" "), 50);
      await once(socket, "close");
      clearInterval(trickle);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
