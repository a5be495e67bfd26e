/**
 * Integration tests of the Raiser's Edge NXT emulator over real HTTP on 127.0.0.1: auth, paging,
 * filters, email addresses, consent, solicit codes, lists, limits, faults and control routes.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeSortToken, encodeSortToken } from "./blackbaud-emulator";
import { startHarness, T0, type Harness } from "../../../../test/support/connectors/blackbaud-renxt-emulator";

let h: Harness;
afterEach(async () => {
  await h.close();
});

const people = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    type: "Individual",
    first: `P${i}`,
    last: `Person${i}`,
    email: { address: `p${i}@example.org`, type: "Email" },
  }));

describe("auth at the gateway", () => {
  beforeEach(async () => {
    h = await startHarness({ accessTokenTtlSeconds: 60 });
  });

  it.each([
    ["no subscription key", { "Bb-Api-Subscription-Key": "" }, 401, "missing subscription key"],
    ["wrong subscription key", { "Bb-Api-Subscription-Key": "nope" }, 401, "invalid subscription key"],
    ["no bearer token", { Authorization: "" }, 401, "Access token is missing or invalid"],
    ["unknown bearer token", { Authorization: "Bearer nope" }, 401, "Access token is missing or invalid"],
    ["valid key and token", {}, 200, undefined],
  ])("%s → %i", async (_name, headers, status, message) => {
    const clean = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== ""));
    const res = await fetch(`${h.emu.baseUrl}/constituent/v1/constituents`, {
      headers: {
        ...("Bb-Api-Subscription-Key" in headers ? {} : { "Bb-Api-Subscription-Key": h.emu.subscriptionKey }),
        ...("Authorization" in headers ? {} : { Authorization: `Bearer ${h.token}` }),
        ...clean,
      },
    });
    expect(res.status).toBe(status);
    const body = (await res.json()) as any;
    if (message) expect(body).toEqual({ statusCode: 401, message: expect.stringContaining(message) });
  });

  it("accepts the key as the subscription-key query parameter", async () => {
    const res = await fetch(
      `${h.emu.baseUrl}/constituent/v1/constituents?subscription-key=${h.emu.subscriptionKey}`,
      {
        headers: { Authorization: `Bearer ${h.token}` },
      },
    );
    expect(res.status).toBe(200);
  });

  it("expires access tokens on the injected clock and honours revocation", async () => {
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(200);
    h.clock.advance(61_000);
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(401);
    const fresh = String(h.emu.mintToken().access_token);
    expect(
      (await h.call("GET", "/constituent/v1/constituents", undefined, { Authorization: `Bearer ${fresh}` }))
        .status,
    ).toBe(200);
    expect((await h.control("POST", "/__emulator/oauth/revoke")).status).toBe(200);
    expect(
      (await h.call("GET", "/constituent/v1/constituents", undefined, { Authorization: `Bearer ${fresh}` }))
        .status,
    ).toBe(401);
  });

  it("runs the authorization-code flow with PKCE, single-use codes and rotating refresh tokens", async () => {
    const verifier = randomBytes(32).toString("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const authorize = new URL(`${h.emu.baseUrl}/oauth2/authorization`);
    for (const [k, v] of Object.entries({
      client_id: "app-1",
      response_type: "code",
      redirect_uri: "http://localhost:5000/callback",
      state: "xyz",
      code_challenge: challenge,
      code_challenge_method: "S256",
    })) {
      authorize.searchParams.set(k, v);
    }
    const redirect = await fetch(authorize, { redirect: "manual" });
    expect(redirect.status).toBe(302);
    const location = new URL(redirect.headers.get("location")!);
    expect(location.searchParams.get("state")).toBe("xyz");
    const code = location.searchParams.get("code")!;
    const exchange = (form: Record<string, string>) =>
      fetch(`${h.emu.baseUrl}/oauth2/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form).toString(),
      });
    const bad = await exchange({
      grant_type: "authorization_code",
      code,
      redirect_uri: "http://localhost:5000/callback",
      code_verifier: "wrong",
      client_id: "app-1",
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error).toBe("invalid_grant");

    // The failed exchange spent the code: start over.
    const again = await fetch(authorize, { redirect: "manual" });
    const code2 = new URL(again.headers.get("location")!).searchParams.get("code")!;
    const ok = await exchange({
      grant_type: "authorization_code",
      code: code2,
      redirect_uri: "http://localhost:5000/callback",
      code_verifier: verifier,
      client_id: "app-1",
    });
    expect(ok.status).toBe(200);
    const tokens = (await ok.json()) as any;
    expect(tokens).toMatchObject({
      token_type: "bearer",
      expires_in: 60,
      environment_id: h.emu.environmentId,
      refresh_token_expires_in: 365 * 86400,
    });
    const reuse = await exchange({
      grant_type: "authorization_code",
      code: code2,
      redirect_uri: "http://localhost:5000/callback",
      code_verifier: verifier,
    });
    expect(reuse.status).toBe(400);

    const refreshed = (await (
      await exchange({ grant_type: "refresh_token", refresh_token: tokens.refresh_token })
    ).json()) as any;
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(
      (await exchange({ grant_type: "refresh_token", refresh_token: tokens.refresh_token })).status,
    ).toBe(400);
    const kept = (await (
      await exchange({
        grant_type: "refresh_token",
        refresh_token: refreshed.refresh_token,
        preserve_refresh_token: "true",
      })
    ).json()) as any;
    expect(kept.refresh_token).toBe(refreshed.refresh_token);
    const use = await h.call("GET", "/constituent/v1/constituents", undefined, {
      Authorization: `Bearer ${kept.access_token}`,
    });
    expect(use.status).toBe(200);
  });

  it("requires a client secret when no PKCE challenge was made", async () => {
    const loc = await fetch(
      `${h.emu.baseUrl}/oauth2/authorization?client_id=app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb`,
      { redirect: "manual" },
    );
    const code = new URL(loc.headers.get("location")!).searchParams.get("code")!;
    const res = await fetch(`${h.emu.baseUrl}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: "http://localhost/cb",
        client_id: "app",
      }).toString(),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error).toBe("invalid_client");
  });
});

describe("constituent list paging and filters", () => {
  beforeEach(async () => {
    h = await startHarness();
  });

  const follow = async (first: string) => {
    const pages: any[] = [];
    let path: string | undefined = first;
    while (path) {
      const res = await h.call("GET", path);
      expect(res.status).toBe(200);
      pages.push(res.body);
      path = res.body.next_link
        ? new URL(res.body.next_link).pathname + new URL(res.body.next_link).search
        : undefined;
    }
    return pages;
  };

  it("sort_token encodes an 8-byte counter the way SKY shows it", () => {
    expect(encodeSortToken(0x2f88e)).toBe("AAAAAAAC+I4=");
    expect(decodeSortToken("AAAAAAAC+I4=")).toBe(0x2f88e);
  });

  it.each([
    [3, 2, [2, 1]],
    [4, 2, [2, 2]],
    [5, 5, [5]],
    [6, 5, [5, 1]],
  ])("%i records with limit %i page as %j; count ignores limit", async (n, limit, sizes) => {
    await h.control("POST", "/__emulator/seed", { constituents: people(n) });
    const pages = await follow(
      `/constituent/v1/constituents?limit=${limit}&last_modified=2000-01-01T00:00:00-04:00`,
    );
    expect(pages.map((p) => p.value.length)).toEqual(sizes);
    expect(pages[0].count).toBe(n);
    expect(pages.at(-1).next_link).toBeUndefined();
    for (const p of pages.slice(0, -1)) {
      expect(p.next_link).toMatch(/sort_token=/);
      expect(p.next_link).toMatch(/last_modified=/);
      expect(p.next_link).not.toMatch(/offset=/);
    }
    expect(new Set(pages.flatMap((p) => p.value.map((c: any) => c.id))).size).toBe(n);
  });

  it("a record modified during paging is neither skipped nor breaks the order", async () => {
    const seeded = (await h.control("POST", "/__emulator/seed", { constituents: people(5) })).body;
    const ids: string[] = seeded.constituents.map((c: any) => c.id);
    const first = await h.call(
      "GET",
      "/constituent/v1/constituents?limit=2&last_modified=2000-01-01T00:00:00Z",
    );
    expect(first.body.value.map((c: any) => c.id)).toEqual(ids.slice(0, 2));
    h.clock.advance(1000);
    // One already read, one not yet read.
    expect(
      (await h.call("PATCH", `/constituent/v1/constituents/${ids[1]}`, { first: "Changed1" })).status,
    ).toBe(200);
    expect(
      (await h.call("PATCH", `/constituent/v1/constituents/${ids[2]}`, { first: "Changed2" })).status,
    ).toBe(200);
    const next = new URL(first.body.next_link);
    const rest = await follow(next.pathname + next.search);
    const seen = rest.flatMap((p) => p.value.map((c: any) => c.id));
    expect(seen).toEqual([ids[3], ids[4], ids[1], ids[2]]);
    expect(rest.flatMap((p) => p.value).find((c: any) => c.id === ids[2]).first).toBe("Changed2");
    const all = new Set([...first.body.value.map((c: any) => c.id), ...seen]);
    expect(all.size).toBe(5);
  });

  it("last_modified is inclusive and respects the offset in the timestamp", async () => {
    const seeded = (await h.control("POST", "/__emulator/seed", { constituents: people(3) })).body;
    const ids: string[] = seeded.constituents.map((c: any) => c.id);
    h.clock.advance(1_800_000);
    await h.call("PATCH", `/constituent/v1/constituents/${ids[2]}`, { last: "Later" });
    const changedAt = new Date(T0 + 1_800_000);
    // The same instant written in UTC-04:00.
    const local = new Date(changedAt.getTime() - 4 * 3_600_000)
      .toISOString()
      .replace("Z", "")
      .concat("-04:00");
    const res = await h.call(
      "GET",
      `/constituent/v1/constituents?last_modified=${encodeURIComponent(local)}`,
    );
    expect(res.body.value.map((c: any) => c.id)).toEqual([ids[2]]);
    const bad = await h.call("GET", "/constituent/v1/constituents?last_modified=yesterday");
    expect(bad.status).toBe(400);
    expect(bad.body[0]).toMatchObject({ error_code: 400 });
  });

  it.each([
    ["", 1],
    ["include_inactive=true", 2],
    ["include_deceased=true", 2],
    ["include_inactive=true&include_deceased=true", 3],
  ])("inactive and deceased are excluded unless asked for (%s)", async (query, expected) => {
    await h.control("POST", "/__emulator/seed", {
      constituents: [
        { type: "Individual", last: "Active" },
        { type: "Individual", last: "Gone", inactive: true },
        { type: "Individual", last: "Late", deceased: true },
      ],
    });
    const res = await h.call("GET", `/constituent/v1/constituents?${query}`);
    expect(res.body.count).toBe(expected);
  });

  it.each([
    ["limit=5001"],
    ["limit=-1"],
    ["offset=x"],
    ["sort=last&sort_token=AAAAAAAAAAE="],
    ["sort_token=zz"],
  ])("rejects %s with a 400 in Blackbaud's error shape", async (query) => {
    const res = await h.call("GET", `/constituent/v1/constituents?${query}`);
    expect(res.status).toBe(400);
    expect(res.body[0]).toMatchObject({
      error_code: 400,
      error_name: expect.any(String),
      message: expect.any(String),
    });
  });

  it("pages with offset and next_link when no stable-sort filter is given", async () => {
    await h.control("POST", "/__emulator/seed", { constituents: people(5) });
    const pages = await follow("/constituent/v1/constituents?limit=2");
    expect(pages.map((p) => p.value.length)).toEqual([2, 2, 1]);
    expect(pages[0].next_link).toMatch(/offset=2/);
  });

  it("list_id returns the list's members and ignores other filters", async () => {
    const seeded = (
      await h.control("POST", "/__emulator/seed", {
        constituents: [
          { type: "Individual", last: "A", id: "501" },
          { type: "Individual", last: "B", id: "502", inactive: true },
          { type: "Individual", last: "C", id: "503" },
        ],
        lists: [{ id: "11111111-1111-4111-8111-111111111111", name: "Newsletter", ids: ["501", "502"] }],
      })
    ).body;
    const listId = seeded.lists[0].id;
    const res = await h.call(
      "GET",
      `/constituent/v1/constituents?list_id=${listId}&last_modified=2100-01-01T00:00:00Z`,
    );
    expect(res.body.value.map((c: any) => c.id)).toEqual(["501", "502"]);
    expect((await h.call("GET", "/constituent/v1/constituents?list_id=missing")).status).toBe(404);
  });

  it("list items are the spec's ConstituentListItem: no requests_no_email, which the record itself has", async () => {
    const id = (await h.control("POST", "/__emulator/seed", { constituents: people(1) })).body.constituents[0]
      .id;
    const item = (await h.call("GET", "/constituent/v1/constituents")).body.value[0];
    expect(item).toMatchObject({ id, last: "Person0" });
    expect(item).not.toHaveProperty("requests_no_email");
    const record = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    expect(record).toHaveProperty("requests_no_email", false);
  });

  it("fields limits the returned properties but always includes id", async () => {
    await h.control("POST", "/__emulator/seed", { constituents: people(1) });
    const res = await h.call("GET", "/constituent/v1/constituents?fields=last,email");
    expect(Object.keys(res.body.value[0]).sort()).toEqual(["email", "id", "last"]);
  });
});

describe("constituent records and email addresses", () => {
  beforeEach(async () => {
    h = await startHarness();
  });

  it("two saves in one millisecond get two date_modified stamps, in order (SKY's are 100 ns ticks)", async () => {
    const created = await h.call("POST", "/constituent/v1/constituents", {
      type: "Individual",
      last: "Tick",
    });
    const id = created.body.id;
    const stamps: string[] = [];
    for (const first of ["A", "B", "C"]) {
      expect((await h.call("PATCH", `/constituent/v1/constituents/${id}`, { first })).status).toBe(200);
      stamps.push((await h.call("GET", `/constituent/v1/constituents/${id}`)).body.date_modified);
    }
    expect(new Set(stamps).size).toBe(3);
    expect([...stamps].sort()).toEqual(stamps);
  });

  it("creates, reads, patches and deletes constituents, moving date_modified on the injected clock", async () => {
    const created = await h.call("POST", "/constituent/v1/constituents", {
      type: "Individual",
      first: "Kilgore",
      last: "Trout",
      email: { address: "kt@example.org", type: "Email", primary: true },
    });
    expect(created.status).toBe(200);
    const id = created.body.id;
    const read = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    expect(read).toMatchObject({
      id,
      type: "Individual",
      first: "Kilgore",
      last: "Trout",
      name: "Kilgore Trout",
      requests_no_email: false,
      email: { address: "kt@example.org", primary: true },
    });
    // Seven fractional digits, as SKY writes them: saves in one millisecond take the next 100 ns tick.
    expect(read.date_modified).toMatch(/^2026-03-02T12:00:00\.000\d{4}\+00:00$/);
    h.clock.advance(5000);
    expect(
      (
        await h.call("PATCH", `/constituent/v1/constituents/${id}`, {
          requests_no_email: true,
          inactive: true,
        })
      ).status,
    ).toBe(200);
    const after = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    expect(after).toMatchObject({
      requests_no_email: true,
      inactive: true,
    });
    expect(after.date_modified).toMatch(/^2026-03-02T12:00:05\.000\d{4}\+00:00$/);
    expect((await h.call("DELETE", `/constituent/v1/constituents/${id}`)).status).toBe(200);
    expect((await h.call("GET", `/constituent/v1/constituents/${id}`)).status).toBe(404);
  });

  it.each([
    [{ first: "NoType", last: "X" }],
    [{ type: "Individual", first: "NoLast" }],
    [{ type: "Organization" }],
    [{ type: "Individual", last: "x".repeat(101) }],
  ])("rejects invalid constituents %j", async (body) => {
    const res = await h.call("POST", "/constituent/v1/constituents", body);
    expect(res.status).toBe(400);
    expect(Array.isArray(res.body)).toBe(true);
  });

  it("keeps one primary email, reflects it on the constituent and touches date_modified", async () => {
    const { id } = (
      await h.call("POST", "/constituent/v1/constituents", {
        type: "Individual",
        last: "Lee",
        email: { address: "old@example.org", type: "Email" },
      })
    ).body;
    const before = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    h.clock.advance(1000);
    const added = await h.call("POST", "/constituent/v1/emailaddresses", {
      constituent_id: id,
      address: "new@example.org",
      type: "Email 2",
      primary: true,
    });
    expect(added.status).toBe(200);
    const list = (await h.call("GET", `/constituent/v1/constituents/${id}/emailaddresses`)).body;
    expect(list.value.map((e: any) => [e.address, e.primary])).toEqual([
      ["old@example.org", false],
      ["new@example.org", true],
    ]);
    const after = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    expect(after.email.address).toBe("new@example.org");
    expect(after.date_modified > before.date_modified).toBe(true);

    h.clock.advance(1000);
    expect(
      (await h.call("PATCH", `/constituent/v1/emailaddresses/${added.body.id}`, { do_not_email: true }))
        .status,
    ).toBe(200);
    const flagged = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    expect(flagged.email.do_not_email).toBe(true);
    expect(flagged.date_modified).toMatch(/^2026-03-02T12:00:02\.000\d{4}\+00:00$/);

    expect(
      (await h.call("PATCH", `/constituent/v1/emailaddresses/${added.body.id}`, { inactive: true })).status,
    ).toBe(200);
    expect((await h.call("GET", `/constituent/v1/constituents/${id}/emailaddresses`)).body.count).toBe(1);
    expect(
      (await h.call("GET", `/constituent/v1/constituents/${id}/emailaddresses?include_inactive=true`)).body
        .count,
    ).toBe(2);
    expect((await h.call("DELETE", `/constituent/v1/emailaddresses/${added.body.id}`)).status).toBe(200);
    expect(
      (await h.call("PATCH", `/constituent/v1/emailaddresses/${added.body.id}`, { inactive: false })).status,
    ).toBe(404);
  });

  it.each([
    [{ address: "not-an-email", type: "Email" }, 400],
    [{ address: "a@example.org", type: "Carrier pigeon" }, 400],
    [{ address: "a@example.org" }, 400],
  ])("validates email address %j", async (body, status) => {
    const { id } = (await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "V" }))
      .body;
    expect(
      (await h.call("POST", "/constituent/v1/emailaddresses", { ...body, constituent_id: id })).status,
    ).toBe(status);
  });

  it("relates an organization to its contact person, both ways", async () => {
    const org = (
      await h.call("POST", "/constituent/v1/constituents", { type: "Organization", name: "Acme Foundation" })
    ).body.id;
    const person = (
      await h.call("POST", "/constituent/v1/constituents", {
        type: "Individual",
        first: "Rita",
        last: "Cole",
      })
    ).body.id;
    const rel = await h.call("POST", "/constituent/v1/relationships", {
      constituent_id: person,
      relation_id: org,
      type: "Employee",
      reciprocal_type: "Employer",
      is_organization_contact: true,
      position: "Director",
    });
    expect(rel.status).toBe(200);
    const orgSide = (await h.call("GET", `/constituent/v1/constituents/${org}/relationships`)).body;
    expect(orgSide.value[0]).toMatchObject({
      relation_id: person,
      type: "Employer",
      name: "Rita Cole",
      first_name: "Rita",
      last_name: "Cole",
    });
  });

  it("lists email addresses and relationships of all constituents, the addresses by repeated constituent_id", async () => {
    const seeded = (await h.control("POST", "/__emulator/seed", { constituents: people(4) })).body;
    const ids: string[] = seeded.constituents.map((c: any) => c.id);
    await h.call("POST", "/constituent/v1/emailaddresses", {
      constituent_id: ids[1],
      address: "second@example.org",
      type: "Email",
      inactive: true,
    });
    const some = await h.call(
      "GET",
      `/constituent/v1/emailaddresses?constituent_id=${ids[1]}&constituent_id=${ids[3]}&include_inactive=true`,
    );
    expect(some.body.value.map((e: any) => [e.constituent_id, e.address])).toEqual([
      [ids[1], "p1@example.org"],
      [ids[3], "p3@example.org"],
      [ids[1], "second@example.org"],
    ]);
    const active = await h.call("GET", `/constituent/v1/emailaddresses?constituent_id=${ids[1]}`);
    expect(active.body.value.map((e: any) => e.address)).toEqual(["p1@example.org"]);

    await h.call("POST", "/constituent/v1/relationships", {
      constituent_id: ids[0],
      relation_id: ids[2],
      type: "Friend",
      reciprocal_type: "Friend",
    });
    const page = await h.call("GET", "/constituent/v1/relationships?limit=1");
    expect(page.body.count).toBe(2); // both directions
    expect(page.body.value[0]).toMatchObject({ constituent_id: ids[0], relation_id: ids[2] });
    const next = new URL(page.body.next_link);
    const rest = await h.call("GET", next.pathname + next.search);
    expect(rest.body.value[0]).toMatchObject({ constituent_id: ids[2], relation_id: ids[0] });
    expect(rest.body.next_link).toBeUndefined();
  });

  it("all-constituents lists show a change only after their latency", async () => {
    await h.close();
    h = await startHarness({ allConstituentsListLatencyMs: 10 * 60_000 });
    const id = (await h.control("POST", "/__emulator/seed", { constituents: people(1) })).body.constituents[0]
      .id;
    h.clock.advance(11 * 60_000);
    await h.call("POST", "/constituent/v1/emailaddresses", {
      constituent_id: id,
      address: "new@example.org",
      type: "Email",
    });
    const listed = async () =>
      (await h.call("GET", `/constituent/v1/emailaddresses?constituent_id=${id}`)).body.value.map(
        (e: any) => e.address,
      );
    expect(await listed()).toEqual(["p0@example.org"]);
    expect(
      (await h.call("GET", `/constituent/v1/constituents/${id}/emailaddresses`)).body.value,
    ).toHaveLength(2);
    h.clock.advance(10 * 60_000);
    expect(await listed()).toEqual(["p0@example.org", "new@example.org"]);
  });

  it("answers malformed JSON, wrong content types and oversize bodies with clear errors", async () => {
    const bad = await h.call("POST", "/constituent/v1/constituents", "{nope");
    expect(bad.status).toBe(400);
    expect(bad.body[0].message).toMatch(/not valid JSON/);
    const plain = await h.call("POST", "/constituent/v1/constituents", "x", { "content-type": "text/plain" });
    expect(plain.status).toBe(415);
    await h.close();
    h = await startHarness({ bodyLimit: 1024 });
    const big = await h.call("POST", "/constituent/v1/constituents", {
      type: "Individual",
      last: "x".repeat(5000),
    });
    expect(big.status).toBe(413);
  });
});

describe("communication preferences: consent and solicit codes", () => {
  beforeEach(async () => {
    h = await startHarness();
  });

  it("lists the configured channels and categories", async () => {
    expect((await h.call("GET", "/commpref/v1/consent/channels")).body).toEqual({
      count: 1,
      value: [{ description: "Email" }],
    });
    const cats = (await h.call("GET", "/commpref/v1/consent/categories")).body;
    expect(cats.value.map((c: any) => c.description)).toEqual([
      "Newsletter",
      "Appeals",
      "Events",
      "Fundraising",
    ]);
  });

  it("appends consent records and answers most_recent_only per channel and category", async () => {
    const { id } = (
      await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "Consent" })
    ).body;
    const add = (category: string, response: string, date: string) =>
      h.call("POST", "/commpref/v1/consent/consents", {
        constituent_id: id,
        channel: "Email",
        category,
        source: "Web form",
        consent_date: date,
        constituent_consent_response: response,
        consent_statement: "I agree",
      });
    expect((await add("Newsletter", "OptIn", "2026-01-01T00:00:00+00:00")).status).toBe(200);
    expect((await add("Newsletter", "OptOut", "2026-02-01T00:00:00+00:00")).status).toBe(200);
    expect((await add("Events", "OptIn", "2026-01-15T00:00:00+00:00")).status).toBe(200);
    const all = (await h.call("GET", `/commpref/v1/constituents/${id}/consents`)).body;
    expect(all.count).toBe(3);
    expect(all.value[0]).toMatchObject({
      category: "Newsletter",
      constituent_consent_response: "OptOut",
      user_name: expect.any(String),
      date_added: expect.any(String),
    });
    const latest = (await h.call("GET", `/commpref/v1/constituents/${id}/consents?most_recent_only=true`))
      .body;
    expect(latest.value.map((r: any) => [r.category, r.constituent_consent_response])).toEqual([
      ["Newsletter", "OptOut"],
      ["Events", "OptIn"],
    ]);
    const events = (await h.call("GET", `/commpref/v1/constituents/${id}/consents?categories=Events`)).body;
    expect(events.count).toBe(1);
    const paged = (await h.call("GET", `/commpref/v1/constituents/${id}/consents?limit=1&skip=1`)).body;
    expect(paged.value).toHaveLength(1);
    expect(paged.count).toBe(3);
    // Append-only: there is no route to change or remove a record.
    const recordId = all.value[0].id;
    expect(
      (
        await h.call("PATCH", `/commpref/v1/consent/consents/${recordId}`, {
          constituent_consent_response: "OptIn",
        })
      ).status,
    ).toBe(404);
    expect((await h.call("DELETE", `/commpref/v1/consents/${recordId}`)).status).toBe(404);
    // Consent is its own store: the constituent record does not change.
    const c = (await h.call("GET", `/constituent/v1/constituents/${id}`)).body;
    expect(c.requests_no_email).toBe(false);
  });

  it.each([
    [
      {
        channel: "Fax",
        category: "Newsletter",
        constituent_consent_response: "OptIn",
        consent_date: "2026-01-01T00:00:00Z",
      },
    ],
    [
      {
        channel: "Email",
        category: "Gossip",
        constituent_consent_response: "OptIn",
        consent_date: "2026-01-01T00:00:00Z",
      },
    ],
    [
      {
        channel: "Email",
        category: "Newsletter",
        constituent_consent_response: "Maybe",
        consent_date: "2026-01-01T00:00:00Z",
      },
    ],
    [{ channel: "Email", category: "Newsletter", constituent_consent_response: "OptIn" }],
  ])("rejects consent %j", async (body) => {
    const { id } = (await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "Bad" }))
      .body;
    const res = await h.call("POST", "/commpref/v1/consent/consents", { ...body, constituent_id: id });
    expect(res.status).toBe(400);
  });

  it("links requests_no_email to the 'Requests no email' solicit code both ways", async () => {
    const { id } = (
      await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "Quiet" })
    ).body;
    const table = (await h.call("GET", "/commpref/v1/solicitcodes")).body;
    expect(table.value.map((s: any) => s.description)).toContain("Requests no email");
    const code = await h.call("POST", "/commpref/v1/constituentsolicitcodes", {
      constituent_id: id,
      solicit_code: "Requests no email",
      start_date: "2026-03-01T00:00:00Z",
    });
    expect(code.status).toBe(200);
    expect((await h.call("GET", `/constituent/v1/constituents/${id}`)).body.requests_no_email).toBe(true);
    await h.call("PATCH", `/commpref/v1/constituentsolicitcodes/${code.body.id}`, {
      end_date: "2026-03-02T11:00:00Z",
    });
    expect((await h.call("GET", `/constituent/v1/constituents/${id}`)).body.requests_no_email).toBe(false);
    await h.call("PATCH", `/constituent/v1/constituents/${id}`, { requests_no_email: true });
    const codes = (await h.call("GET", `/commpref/v1/constituents/${id}/constituentsolicitcodes`)).body;
    expect(
      codes.value.filter((s: any) => s.solicit_code === "Requests no email" && s.end_date === undefined),
    ).toHaveLength(1);
    expect(
      (
        await h.call("POST", "/commpref/v1/constituentsolicitcodes", {
          constituent_id: id,
          solicit_code: "Not a code",
        })
      ).status,
    ).toBe(400);
  });
});

describe("lists", () => {
  beforeEach(async () => {
    h = await startHarness();
  });

  it("creates a static list from ids, appends ids and serves members via list_id", async () => {
    const a = (await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "A" })).body
      .id;
    const b = (await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "B" })).body
      .id;
    const created = await h.call("POST", "/list/v1/createlistfromids", {
      name: "Donors",
      description: "d",
      list_type: "Constituent",
      list_permissions: "OthersCanView",
      ids: [a],
    });
    expect(created.status).toBe(200);
    const listId = created.body.id;
    expect(
      (
        await h.call("POST", "/list/v1/appendidstolist", {
          list_id: listId,
          list_type: "Constituent",
          ids: [b, a],
        })
      ).status,
    ).toBe(200);
    const members = (await h.call("GET", `/constituent/v1/constituents?list_id=${listId}`)).body;
    expect(members.value.map((c: any) => c.id)).toEqual([a, b]);
    const lists = (await h.call("GET", "/list/v1/lists?list_type=Constituent")).body;
    expect(lists.value[0]).toMatchObject({ id: listId, name: "Donors", record_count: 2 });
    expect((await h.call("POST", "/list/v1/createlistfromids", { name: "x" })).status).toBe(400);
  });
});

describe("rate limit and quota on the injected clock", () => {
  it("answers 429 with Retry-After: 1 beyond the per-second rate", async () => {
    h = await startHarness({ ratePerSecond: 3 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1)
      statuses.push((await h.call("GET", "/constituent/v1/constituents")).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await h.call("GET", "/constituent/v1/constituents");
    expect(limited.headers.get("retry-after")).toBe("1");
    expect(limited.body).toEqual({
      statusCode: 429,
      message: "Rate limit is exceeded. Try again in 1 second.",
    });
    h.clock.advance(1000);
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(200);
  });

  it("answers 403 with the time to replenishment once the daily quota is spent", async () => {
    h = await startHarness({ dailyQuota: 2, accessTokenTtlSeconds: 86_400 });
    h.clock.set("2026-03-02T23:59:00.000Z");
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(200);
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(200);
    const out = await h.call("GET", "/constituent/v1/constituents");
    expect(out.status).toBe(403);
    expect(out.headers.get("retry-after")).toBe("60");
    expect(out.body).toEqual({
      statusCode: 403,
      message: "Out of call volume quota. Quota will be replenished in 00:01:00.",
    });
    h.clock.set("2026-03-03T00:00:00.000Z");
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(200);
  });
});

describe("faults, request log and control routes", () => {
  beforeEach(async () => {
    h = await startHarness();
  });

  it("injects faults by path prefix and logs served calls", async () => {
    await h.control("POST", "/__emulator/faults", { status: 503, count: 1, path_prefix: "/constituent/v1" });
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(503);
    expect((await h.call("GET", "/constituent/v1/constituents")).status).toBe(200);
    await h.control("POST", "/__emulator/faults", { status: 429, count: 1, path_prefix: "/commpref/v1" });
    const limited = await h.call("GET", "/commpref/v1/consent/channels");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("1");
    expect(limited.body).toEqual({
      statusCode: 429,
      message: "Rate limit is exceeded. Try again in 1 second.",
    });
    const log = (await h.control("GET", "/__emulator/requests")).body;
    expect(log.requests.map((r: any) => r.status)).toEqual([503, 200, 429]);
  });

  it("acts as an admin through the same code paths as the API", async () => {
    await h.control("POST", "/__emulator/seed", {
      constituents: [
        { type: "Individual", last: "Admin", email: { address: "a@example.org", type: "Email" } },
      ],
    });
    const set = await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "set_requests_no_email",
      email: "a@example.org",
    });
    expect(set.body.constituent.requests_no_email).toBe(true);
    const dne = await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "set_do_not_email",
      email: "a@example.org",
    });
    expect(dne.body.email_address.do_not_email).toBe(true);
    const moved = await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "change_primary_email",
      email: "a@example.org",
      new_address: "b@example.org",
    });
    expect(moved.body.email_address).toMatchObject({ address: "b@example.org", primary: true });
    const consent = await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "add_consent",
      email: "b@example.org",
      category: "Newsletter",
      response: "OptOut",
    });
    expect(consent.body.consent).toMatchObject({
      channel: "Email",
      category: "Newsletter",
      constituent_consent_response: "OptOut",
    });
    const unknown = await h.control("POST", "/__emulator/act", { as: "admin", action: "dance" });
    expect(unknown.status).toBe(400);
    const state = (await h.control("GET", "/__emulator/state")).body;
    expect(state.constituents[0]).toMatchObject({
      requests_no_email: true,
      email: { address: "b@example.org" },
    });
    expect(state.consents).toHaveLength(1);
    await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "delete_constituent",
      email: "b@example.org",
    });
    expect((await h.control("GET", "/__emulator/state")).body.constituents).toHaveLength(0);
    expect((await h.control("POST", "/__emulator/reset")).status).toBe(200);
  });
});
