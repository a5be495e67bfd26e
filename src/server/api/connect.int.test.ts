/**
 * Connect over HTTP, without a browser: the authorization URL (state, PKCE, scopes, the emulator's
 * own page), the callback's checks (a state it did not make, a state used twice, a refusal), the
 * tokens sealed under the connection's name, and a system that takes no OAuth. The browser test
 * (test/ui/connect.e2e.test.ts) clicks through the same flow for three vendors.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSecret } from "../../config/secret-box";
import { rotatedTokensName } from "../../connections/connection-credentials";
import { startApiHarness, type ApiHarness } from "../../../test/support/api-harness";
import { TEST_KEY } from "../../../test/support/test-credentials";

describe("Connect (OAuth 2) over the API", () => {
  let a: ApiHarness;
  /** What the operator's log is told of each Connect's answer. */
  let told: { connection_id: string; outcome: string; message?: string }[] = [];
  beforeEach(async () => {
    told = [];
    a = await startApiHarness({ api: { onConnect: (e) => told.push(e) } });
    await a.signIn();
  });
  afterEach(async () => {
    await a.close();
  });

  /** Follows the emulator's authorization page as a program does (it approves at once). */
  const approve = async (authorizeUrl: string): Promise<URL> => {
    const res = await fetch(authorizeUrl, { redirect: "manual" });
    expect(res.status).toBe(302);
    return new URL(res.headers.get("location") ?? "");
  };
  /** The message the callback sends the overview. */
  const errorOf = (location: string | string[] | number | undefined): string =>
    new URLSearchParams(String(location ?? "").replace(/^\/\?/, "")).get("connect_error") ?? "";
  /** The cookie Connect set in the starting browser (the answer must come back to it). */
  let browser = "";
  const connect = async (id: string) => {
    const res = await a.call("POST", `/api/connections/${id}/connect`);
    const set = res.headers["set-cookie"];
    browser = String(Array.isArray(set) ? set[0] : (set ?? "")).split(";")[0] ?? "";
    return res;
  };
  const callback = (back: URL, cookie = browser) =>
    a.call("GET", `${back.pathname}${back.search}`, undefined, { csrf: null, headers: { cookie } });

  it("sends the browser to the vendor's page with a state and PKCE, and seals the tokens the code buys", async () => {
    const started = await connect("cc-main");
    expect(started.statusCode, started.body).toBe(200);
    const url = new URL(started.json<{ authorize_url: string }>().authorize_url);
    expect(url.origin).toBe(new URL(a.h.ccMain.baseUrl).origin);
    expect(url.pathname).toBe("/oauth2/default/v1/authorize");
    expect(url.searchParams.get("state")?.length).toBeGreaterThanOrEqual(40);
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("scope")).toBe("contact_data offline_access");
    expect(url.searchParams.get("redirect_uri")).toMatch(/\/api\/connections\/cc-main\/callback$/);

    // A browser asking for HTML gets the vendor's Allow page, not a redirect.
    const page = await fetch(url, { headers: { accept: "text/html" }, redirect: "manual" });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Allow");

    const back = await approve(url.toString());
    // Parameters the vendor adds (RFC 9207's `iss`, its own) are not Concord's to refuse.
    back.searchParams.set("iss", url.origin);
    back.searchParams.set("vendor_trace", "abc");
    const done = await callback(back);
    expect(done.statusCode, done.body).toBe(303);
    expect(done.headers["location"]).toMatch(/^\/\?connected=cc-main/);
    const row = await a.h.store.credentials.get(rotatedTokensName("cc-main"));
    expect(row).toBeDefined();
    const tokens = openSecret(row!.ciphertext, TEST_KEY, rotatedTokensName("cc-main"));
    expect(tokens.ok && (JSON.parse(tokens.value) as Record<string, string>)["refresh_token"]).toBeTruthy();
    // The ciphertext holds no token in the clear.
    expect(row!.ciphertext).not.toContain(
      tokens.ok ? (JSON.parse(tokens.value) as { refresh_token: string }).refresh_token : "x",
    );
    expect((await a.h.store.health.get("cc-main"))?.status).toBe("ok");
    expect(told).toEqual([{ connection_id: "cc-main", outcome: "connected" }]);

    // The same answer again is refused: a state is used once.
    const again = await callback(back);
    expect(again.statusCode).toBe(303);
    expect(again.headers["location"]).toContain("connect_error=");
  });

  it("refuses an answer with a state it did not make, or for another connection, and changes nothing", async () => {
    const started = await connect("cc-main");
    const url = new URL(started.json<{ authorize_url: string }>().authorize_url);
    const back = await approve(url.toString());
    const forged = new URL(back);
    forged.searchParams.set("state", "not-a-state-concord-made");
    const refused = await callback(forged);
    expect(errorOf(refused.headers["location"])).toBe("connect_state_invalid");
    // The right answer, but in another browser (no cookie, or another one): refused.
    expect(errorOf((await callback(back, "")).headers["location"])).toBe("connect_state_invalid");
    expect(errorOf((await callback(back, "concord_connect=someone-else")).headers["location"])).toBe(
      "connect_state_invalid",
    );
    const other = new URL(back.toString().replace("/cc-main/", "/cc-appeals/"));
    expect((await callback(other)).headers["location"]).toContain("connect_error=");
    expect(await a.h.store.credentials.get(rotatedTokensName("cc-main"))).toBeUndefined();
  });

  it("says what went wrong when the vendor refuses, and refuses a connection that takes no OAuth or does not exist", async () => {
    const started = await connect("re-nxt");
    const url = new URL(started.json<{ authorize_url: string }>().authorize_url);
    const res = await fetch(url, {
      method: "POST",
      body: new URLSearchParams({ ...Object.fromEntries(url.searchParams), decision: "deny" }),
      redirect: "manual",
    });
    const back = new URL(res.headers.get("location") ?? "");
    expect(back.searchParams.get("error")).toBe("access_denied");
    const done = await callback(back);
    expect(errorOf(done.headers["location"])).toBe("connect_refused");
    expect(done.headers["location"]).toContain("vendor_error=access_denied");

    // A code the vendor will not exchange: the overview shows a code only; the log keeps why.
    const again = new URL((await connect("cc-main")).json<{ authorize_url: string }>().authorize_url);
    const approved = await approve(again.toString());
    approved.searchParams.set("code", "not-a-code-the-vendor-gave");
    expect(errorOf((await callback(approved)).headers["location"])).toBe("connect_exchange_failed");
    expect(told).toEqual([
      {
        connection_id: "re-nxt",
        outcome: "connect_refused",
        message: expect.stringContaining("access_denied"),
      },
      {
        connection_id: "cc-main",
        outcome: "connect_exchange_failed",
        message: expect.stringMatching(/HTTP 4\d\d/),
      },
    ]);
    expect((await a.call("POST", "/api/connections/nope/connect")).statusCode).toBe(404);
    // Without the CSRF token a session cannot start one.
    expect((await a.call("POST", "/api/connections/cc-main/connect", {}, { csrf: null })).statusCode).toBe(
      403,
    );
  });
});
