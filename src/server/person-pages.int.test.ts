/**
 * The one-click unsubscribe URL (RFC 8058) as `concord serve` mounts it, over the emulators: the
 * person's POST is recorded before the answer, with no cookie, session or redirect, idempotently,
 * and reaches every linked system at once; GET only asks; a forged, expired or revoked link is refused.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import { chromium } from "playwright-core";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConcordConfig } from "../config/concord-config";
import { eventsForContact } from "../ledger/consent-ledger";
import { explainContact, formatExplanation } from "../explain/explain-contact";
import { createLogger } from "../observability/logger";
import { createEngineRuntime, type EngineRuntime } from "../runs/engine-runtime";
import { linkSigner, personalLinks, preferencesOf, revokeLinks } from "../runs/personal-links";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  engineContextOf,
  TEST_ENV,
  TEST_KEY,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { buildConcordApp } from "./concord-app";

const PASSWORD = "a long enough password";
const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const inCi = (process.env["CI"] ?? "") !== "";

describe("the pages a person reaches from an email", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  let config: ConcordConfig;
  let app: Awaited<ReturnType<typeof buildConcordApp>>["app"];
  const logger = createLogger({ level: "silent" });

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend());
    config = { ...h.config, server: { ...h.config.server, public_url: "https://concord.example.org/" } };
    runtime = createEngineRuntime({
      store: h.store,
      config,
      connections: h.connections,
      now: h.now,
      logger,
      secrets: { env: TEST_ENV, key: TEST_KEY },
    });
    const context = engineContextOf(h, config, logger);
    const built = await buildConcordApp(context, runtime, {
      version: "1",
      secrets: { env: { CONCORD_ADMIN_PASSWORD: PASSWORD }, key: TEST_KEY },
    });
    expect(built.problems).toEqual([]);
    app = built.app;
  });
  afterEach(async () => {
    await runtime.stop();
    await h.close();
  });

  let reId = "";
  const seedAda = async (): Promise<string> => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    reId = ada!;
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
    return contact!.id;
  };
  const signer = () => {
    const s = linkSigner(TEST_KEY, config);
    if (!s.ok) throw new Error(s.error);
    return s.value;
  };
  const pathOf = (url: string): string => new URL(url).pathname;

  it("GET asks; POST List-Unsubscribe=One-Click unsubscribes from all email everywhere, once", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    if (!links) throw new Error("no links");
    expect(links.one_click_url).toMatch(
      /^https:\/\/concord\.example\.org\/l\/u\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{27}$/,
    );
    expect(links.list_unsubscribe).toBe(`<${links.one_click_url}>`);
    expect(links.list_unsubscribe_post).toBe("List-Unsubscribe=One-Click");

    // A mail scanner fetching the link unsubscribes no one.
    const asked = await app.inject({ method: "GET", url: pathOf(links.one_click_url) });
    expect(asked.statusCode).toBe(200);
    expect(asked.headers["content-type"]).toContain("text/html");
    expect(asked.body).toContain('name="List-Unsubscribe" value="One-Click"');
    expect(asked.body).not.toContain("<script");
    const french = await app.inject({
      method: "GET",
      url: pathOf(links.one_click_url),
      headers: { "accept-language": "fr-CA,fr;q=0.9" },
    });
    expect(french.body).toContain("Me désabonner");
    expect((await eventsForContact(h.store, id)).some((e) => e.event.kind === "opt_out")).toBe(false);

    // The mail client's one-click POST: no cookie, no session, no redirect.
    const done = await app.inject({
      method: "POST",
      url: pathOf(links.one_click_url),
      headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "MailClient/1.0" },
      payload: "List-Unsubscribe=One-Click",
    });
    expect(done.statusCode).toBe(200);
    expect(done.headers["location"]).toBeUndefined();
    expect(done.headers["set-cookie"]).toBeUndefined();
    expect(done.headers["cache-control"]).toBe("no-store");
    expect(done.body).toContain("You are unsubscribed from all email");
    // Recorded before the answer, as the person's one-click act with its evidence.
    const [optOut] = (await eventsForContact(h.store, id))
      .map((e) => e.event)
      .filter((e) => e.kind === "opt_out");
    expect(optOut).toMatchObject({
      scope: { kind: "global" },
      mechanism: "one_click_header",
      actor: { kind: "contact" },
      source: { system: "concord", connection: "links" },
      evidence: { user_agent: "MailClient/1.0", ip: expect.any(String) },
    });
    // The ledger names the link by a digest: no part of the token (its signature) is kept, so a
    // proof bundle or a ledger export cannot rebuild the link.
    const token = pathOf(links.one_click_url).split("/").at(-1)!;
    const recordId = optOut?.evidence.source_record_id ?? "";
    expect(recordId).toMatch(/^link:[A-Za-z0-9_-]{27}$/);
    for (let i = 0; i + 8 <= token.length; i += 4) expect(recordId).not.toContain(token.slice(i, i + 8));

    // explain says how she left.
    const why = formatExplanation(await explainContact(h.store, config, "ada@example.org"));
    expect(why).toMatch(/one-click|one_click/i);
    expect(why).toContain("concord");
    // It reaches every linked system now: Raiser's Edge NXT's flag, Constant Contact's unsubscribe.
    await runtime.idle();
    expect(
      ((await h.reGet(`/constituent/v1/constituents/${reId}`)) as { requests_no_email?: boolean })
        .requests_no_email,
    ).toBe(true);
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");

    // Again, as multipart (some clients send that): idempotent, no second event.
    const boundary = "----concord";
    const again = await app.inject({
      method: "POST",
      url: pathOf(links.one_click_url),
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      payload: `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`,
    });
    expect(again.statusCode).toBe(200);
    expect(again.body).toContain("already unsubscribed");
    expect(
      (await eventsForContact(h.store, id)).filter((e) => e.event.mechanism === "one_click_header"),
    ).toHaveLength(1);
  });

  it("the person pressing the page's button is recorded as their unsubscribe through the link, with the words the page showed", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    if (!links) throw new Error("no links");
    const asked = await app.inject({
      method: "GET",
      url: pathOf(links.one_click_url),
      headers: { "accept-language": "fr-CA,fr;q=0.9" },
    });
    // The form posts what the page's own fields hold, as a browser does.
    const fields = [...asked.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]+)">/g)].map(
      ([, name, value]) => `${encodeURIComponent(name ?? "")}=${encodeURIComponent(value ?? "")}`,
    );
    const done = await app.inject({
      method: "POST",
      url: pathOf(links.one_click_url),
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "Browser/1.0",
        "accept-language": "fr-CA,fr;q=0.9",
      },
      payload: fields.join("&"),
    });
    expect(done.statusCode).toBe(200);
    const [optOut] = (await eventsForContact(h.store, id))
      .map((e) => e.event)
      .filter((e) => e.kind === "opt_out");
    expect(optOut).toMatchObject({
      mechanism: "unsubscribe_link",
      actor: { kind: "contact" },
      evidence: {
        user_agent: "Browser/1.0",
        form_wording: "Vous désabonner de tous les courriels de cet organisme ? [Me désabonner]",
      },
    });
  });

  it("a one-click made while the organisation's own opt-out stands is recorded: the admin undoing theirs re-subscribes no one", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    // A Constant Contact admin unsubscribes Ada: the account's opt-out, which the account may undo.
    h.advance(60_000);
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org", "admin");
    h.advance(1_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");

    // Ada's own one-click, while that stands: her act, recorded beside the admin's.
    h.advance(60_000);
    const done = await app.inject({
      method: "POST",
      url: pathOf(links!.one_click_url),
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "List-Unsubscribe=One-Click",
    });
    expect(done.statusCode).toBe(200);
    expect(done.body).toContain("You are unsubscribed from all email");
    const own = (await eventsForContact(h.store, id)).filter((e) => e.event.mechanism === "one_click_header");
    expect(own).toHaveLength(1);
    await runtime.idle();

    // The admin undoes their own unsubscribe: Ada's stands, and is written back.
    h.advance(60_000);
    await h.ccAct(h.ccMain, "resubscribe", "ada@example.org", "admin");
    h.advance(1_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    const why = await explainContact(h.store, config, "ada@example.org");
    expect(formatExplanation(why)).toMatch(/one.click/i);

    // A second click now finds her own opt-out and records nothing more.
    const again = await app.inject({
      method: "POST",
      url: pathOf(links!.one_click_url),
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "List-Unsubscribe=One-Click",
    });
    expect(again.body).toContain("already unsubscribed");
    expect(
      (await eventsForContact(h.store, id)).filter((e) => e.event.mechanism === "one_click_header"),
    ).toHaveLength(1);
  });

  it("takes a one-click whose media type is in other case, or whose value ends a line, as the one-click it is", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    const answer = await app.inject({
      method: "POST",
      url: pathOf(links!.one_click_url),
      headers: { "content-type": "Application/X-WWW-Form-Urlencoded; Charset=UTF-8" },
      payload: "List-Unsubscribe=One-Click\r\n",
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toContain("You are unsubscribed from all email");
    const multipart = await app.inject({
      method: "POST",
      url: pathOf(links!.one_click_url),
      headers: { "content-type": "Multipart/Form-Data; boundary=XX" },
      payload:
        '--XX\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XX--\r\n',
    });
    expect(multipart.statusCode).toBe(200);
    expect(
      (await eventsForContact(h.store, id)).filter((e) => e.event.mechanism === "one_click_header"),
    ).toHaveLength(1);
  });

  it("answers a failure of the server itself with a page, in the person's language, never the API's JSON", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    if (!links) throw new Error("no links");
    // The store fails under the page (here: a table it reads is gone).
    await sql`alter table contacts rename to contacts_gone`.execute(h.store.db);
    try {
      for (const [lang, words] of [
        ["en", "try again in a minute"],
        ["fr", "Réessayez dans une minute"],
      ] as const) {
        const res = await app.inject({
          method: "GET",
          url: pathOf(links.preferences_url),
          headers: { "accept-language": lang },
        });
        expect(res.statusCode).toBe(500);
        expect(res.headers["content-type"]).toMatch(/^text\/html/);
        expect(res.body).toContain(words);
        expect(res.body).not.toContain("internal_error");
      }
    } finally {
      await sql`alter table contacts_gone rename to contacts`.execute(h.store.db);
    }
  });

  it("answers a store another writer holds with a page and Retry-After, and has recorded nothing", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    if (!links) throw new Error("no links");
    // Another process holds the store's write lock for longer than the service waits for it.
    const { rows } = await sql<{ name: string; file: string }>`pragma database_list`.execute(h.store.db);
    const other = new BetterSqlite3(rows.find((r) => r.name === "main")!.file);
    other.exec("begin immediate");
    try {
      const refused = await app.inject({
        method: "POST",
        url: pathOf(links.one_click_url),
        headers: { "content-type": "application/x-www-form-urlencoded", "accept-language": "fr" },
        payload: "List-Unsubscribe=One-Click",
      });
      expect(refused.statusCode).toBe(503);
      expect(refused.headers["retry-after"]).toBe("5");
      expect(refused.headers["content-type"]).toMatch(/^text\/html/);
      expect(refused.body).toContain("Réessayez dans une minute");
      expect(refused.body).not.toContain("store_busy");
    } finally {
      other.exec("rollback");
      other.close();
    }
    expect((await eventsForContact(h.store, id)).some((e) => e.event.kind === "opt_out")).toBe(false);
  });

  it("refuses a POST that is not a one-click request, and forged, expired and revoked links, with a page that says so", async () => {
    const id = await seedAda();
    const links = await personalLinks(h.store, signer(), id, h.now());
    if (!links) throw new Error("no links");
    const path = pathOf(links.one_click_url);

    const notOneClick = await app.inject({
      method: "POST",
      url: path,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "List-Unsubscribe=Maybe",
    });
    expect(notOneClick.statusCode).toBe(400);
    expect(notOneClick.body).toContain("List-Unsubscribe=One-Click");
    const json = await app.inject({ method: "POST", url: path, payload: { any: 1 } });
    expect(json.statusCode).toBe(415);
    // Refused before the route reads it, and still answered as these pages answer: a page saying
    // what is expected, in the person's language.
    expect(json.headers["content-type"]).toContain("text/html");
    expect(json.body).toContain("expected List-Unsubscribe=One-Click");
    const huge = await app.inject({
      method: "POST",
      url: path,
      headers: { "content-type": "application/x-www-form-urlencoded", "accept-language": "fr" },
      payload: `List-Unsubscribe=One-Click&pad=${"x".repeat(20_000)}`,
    });
    expect(huge.statusCode).toBe(413);
    expect(huge.headers["content-type"]).toContain("text/html");
    expect(huge.body).toContain("16 Kio au plus");

    const forged = `${path.slice(0, -3)}${path.endsWith("AAA") ? "BBB" : "AAA"}`;
    const refused = await app.inject({ method: "GET", url: forged });
    expect(refused.statusCode).toBe(403);
    expect(refused.body).toContain("This link is not valid.");
    expect((await app.inject({ method: "GET", url: "/l/u/nonsense" })).statusCode).toBe(400);

    await revokeLinks(h.store, id, h.now());
    const revoked = await app.inject({
      method: "POST",
      url: path,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "List-Unsubscribe=One-Click",
    });
    expect(revoked.statusCode).toBe(410);
    expect(revoked.body).toContain("no longer valid");
    // A new link works after a revocation.
    const fresh = await personalLinks(h.store, signer(), id, h.now());
    expect((await app.inject({ method: "GET", url: pathOf(fresh!.one_click_url) })).statusCode).toBe(200);

    // Past its validity (400 days by default) a link has expired.
    h.advance(401 * 86_400_000);
    const expired = await app.inject({ method: "GET", url: pathOf(fresh!.one_click_url) });
    expect(expired.statusCode).toBe(410);
    expect(expired.body).toContain("expired");
    expect((await eventsForContact(h.store, id)).some((e) => e.event.kind === "opt_out")).toBe(false);
  });

  describe("the preference centre", () => {
    const form = (fields: Record<string, string>) => ({
      headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "Browser/1.0" },
      payload: new URLSearchParams(fields).toString(),
    });
    /** The state a page showed, as its hidden fields send it back. */
    const shownBy = (html: string): Record<string, string> =>
      Object.fromEntries(
        [...html.matchAll(/name="(shown:[^"]+)" value="([01])"/g)].map((m) => [m[1]!, m[2]!]),
      );
    /** Opens the page and saves it with `ticked` (the boxes as the person leaves them). */
    const save = async (path: string, ticked: Record<string, string>) => {
      const shown = shownBy((await app.inject({ method: "GET", url: path })).body);
      return app.inject({ method: "POST", url: path, ...form({ ...shown, ...ticked }) });
    };

    it("shows all email and every topic with its state; each choice is the person's own act, everywhere", async () => {
      const id = await seedAda();
      await addToReList(h, RE_LISTS.appeals, [reId]);
      h.advance(1_000);
      await h.sync();
      expect(h.ccContact(h.ccAppeals, "ada@example.org")?.email_address?.permission_to_send).toBe("implicit");
      const links = await personalLinks(h.store, signer(), id, h.now());
      const path = pathOf(links!.preferences_url);
      // The one-click link does not open the preference centre, nor the reverse.
      expect(
        (await app.inject({ method: "GET", url: pathOf(links!.one_click_url).replace("/l/u/", "/l/p/") }))
          .statusCode,
      ).toBe(403);

      const shown = await app.inject({ method: "GET", url: path });
      expect(shown.statusCode).toBe(200);
      expect(shown.body).toMatch(/<input type="checkbox" id="all" name="all" checked>/);
      expect(shown.body).toContain('name="topic:appeals" checked');
      expect(shown.body).toContain("Fundraising appeals");
      expect(shown.body).toContain("<title>Your email preferences</title>");

      // Ada leaves the appeals topic only: a topic opt-out, Constant Contact's appeals account follows.
      h.advance(60_000);
      const saved = await save(path, { all: "on" });
      expect(saved.statusCode).toBe(200);
      expect(saved.body).toContain("Your choices are saved.");
      expect(saved.body).toContain('name="topic:appeals">');
      await runtime.idle();
      const [left] = (await eventsForContact(h.store, id))
        .map((e) => e.event)
        .filter((e) => e.mechanism === "preference_page");
      expect(left).toMatchObject({
        kind: "opt_out",
        scope: { kind: "topic", topic: "appeals" },
        actor: { kind: "contact" },
        evidence: {
          user_agent: "Browser/1.0",
          form_wording: expect.stringContaining("Your email preferences"),
        },
      });
      expect(h.ccContact(h.ccAppeals, "ada@example.org")?.email_address?.permission_to_send).toBe(
        "unsubscribed",
      );
      expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("implicit");

      // A body the page never sends is refused, saying what was expected.
      const multipart = await app.inject({
        method: "POST",
        url: path,
        headers: { "content-type": "multipart/form-data; boundary=x" },
        payload: '--x\r\nContent-Disposition: form-data; name="all"\r\n\r\non\r\n--x--\r\n',
      });
      expect(multipart.statusCode).toBe(415);
      expect(multipart.body).toContain("This form could not be read");
      // Saving the same choices again records nothing.
      const same = await save(path, { all: "on" });
      expect(same.body).toContain("Nothing changed.");

      // She takes appeals back: her own opt-in, which lifts her opt-out.
      h.advance(60_000);
      await save(path, { all: "on", "topic:appeals": "on" });
      const back = (await eventsForContact(h.store, id))
        .map((e) => e.event)
        .filter((e) => e.mechanism === "preference_page");
      expect(back.at(-1)).toMatchObject({
        kind: "opt_in",
        basis: "express",
        scope: { kind: "topic", topic: "appeals" },
      });
      expect((await app.inject({ method: "GET", url: path })).body).toContain('name="topic:appeals" checked');

      // Then all email: one global opt-out; the topics are moot.
      h.advance(60_000);
      await save(path, { "topic:appeals": "on" });
      await runtime.idle();
      const last = (await eventsForContact(h.store, id))
        .map((e) => e.event)
        .filter((e) => e.mechanism === "preference_page");
      expect(last.at(-1)).toMatchObject({ kind: "opt_out", scope: { kind: "global" } });
      expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe(
        "unsubscribed",
      );
      expect(
        ((await h.reGet(`/constituent/v1/constituents/${reId}`)) as { requests_no_email?: boolean })
          .requests_no_email,
      ).toBe(true);
    });

    it("a line the organisation stopped is not one the person left: saving it unticked records their own opt-out", async () => {
      const id = await seedAda();
      const links = await personalLinks(h.store, signer(), id, h.now());
      const path = pathOf(links!.preferences_url);
      h.advance(60_000);
      await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org", "admin");
      h.advance(1_000);
      await h.sync();

      // The page says who stopped it; saving with nothing ticked is Ada leaving all email herself.
      h.advance(60_000);
      const shown = await app.inject({ method: "GET", url: path });
      expect(shown.body).toMatch(/id="all" name="all">/);
      expect(shown.body).toContain("not receiving — Stopped by the organisation on");
      const saved = await save(path, {});
      expect(saved.body).toContain("Your choices are saved.");
      expect(saved.body).toContain("not receiving — You left this on");
      const mine = (await eventsForContact(h.store, id))
        .map((e) => e.event)
        .filter((e) => e.mechanism === "preference_page");
      expect(mine).toMatchObject([
        { kind: "opt_out", scope: { kind: "global" }, actor: { kind: "contact" } },
      ]);
      // Saving again records nothing: she has left it.
      expect((await save(path, {})).body).toContain("Nothing changed.");
      await runtime.idle();

      // The admin undoes their own unsubscribe; Ada's choice stands.
      h.advance(60_000);
      await h.ccAct(h.ccMain, "resubscribe", "ada@example.org", "admin");
      h.advance(1_000);
      await h.sync();
      expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe(
        "unsubscribed",
      );
    });

    const oneClick = (url: string) =>
      app.inject({
        method: "POST",
        url: pathOf(url),
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: "List-Unsubscribe=One-Click",
      });
    const receiving = async (id: string) =>
      Object.fromEntries(
        (await preferencesOf(h.store, config, id, h.now())).map((l) => [l.key, l.receiving]),
      );
    const pageEvents = async (id: string) =>
      (await eventsForContact(h.store, id))
        .map((e) => e.event)
        .filter((e) => e.mechanism === "preference_page");

    it("a page opened before an unsubscribe saves nothing: its boxes are not the person's choice of the state now", async () => {
      const id = await seedAda();
      const links = await personalLinks(h.store, signer(), id, h.now());
      const path = pathOf(links!.preferences_url);
      // Ada opens the page (everything ticked), then uses the unsubscribe link of an email.
      const opened = shownBy((await app.inject({ method: "GET", url: path })).body);
      expect(opened).toEqual({ "shown:all": "1", "shown:topic:appeals": "1" });
      h.advance(60_000);
      expect((await oneClick(links!.one_click_url)).statusCode).toBe(200);
      // Back in the open tab she unticks appeals only and saves: all email stays ticked as shown.
      h.advance(60_000);
      const saved = await app.inject({ method: "POST", url: path, ...form({ ...opened, all: "on" }) });
      expect(saved.statusCode).toBe(409);
      expect(saved.body).toContain("Your preferences changed since this page was opened");
      expect(saved.body).toMatch(/id="all" name="all">/); // the state now
      expect(await pageEvents(id)).toEqual([]);
      expect(await receiving(id)).toEqual({ all: false, "topic:appeals": false });
      // A form without the state it showed is no choice either.
      const bare = await app.inject({ method: "POST", url: path, ...form({ all: "on" }) });
      expect(bare.statusCode).toBe(409);
      expect(await pageEvents(id)).toEqual([]);
    });

    it("the same form sent twice (a double click) is answered as saved, and recorded once", async () => {
      const id = await seedAda();
      const links = await personalLinks(h.store, signer(), id, h.now());
      const path = pathOf(links!.preferences_url);
      const opened = shownBy((await app.inject({ method: "GET", url: path })).body);
      h.advance(60_000);
      // Appeals unticked, and the button pressed twice: the second post carries the same page.
      const first = await app.inject({ method: "POST", url: path, ...form({ ...opened, all: "on" }) });
      const second = await app.inject({ method: "POST", url: path, ...form({ ...opened, all: "on" }) });
      for (const answer of [first, second]) {
        expect(answer.statusCode).toBe(200);
        expect(answer.body).toContain("Your choices are saved.");
        expect(answer.body).toMatch(/id="topic-appeals" name="topic:appeals">/);
      }
      expect(
        (await pageEvents(id)).map((e) => [e.kind, e.kind === "deliverability" ? null : e.scope]),
      ).toEqual([["opt_out", { kind: "topic", topic: "appeals" }]]);
      // That page sent again with another choice is a stale form: nothing is recorded.
      const other = await app.inject({ method: "POST", url: path, ...form({ ...opened }) });
      expect(other.statusCode).toBe(409);
      expect(other.body).toContain("Your preferences changed since this page was opened");
      expect(await pageEvents(id)).toHaveLength(1);
    });

    it("ticking all email back with a topic left unticked leaves that topic: the state is the form saved", async () => {
      const id = await seedAda();
      const links = await personalLinks(h.store, signer(), id, h.now());
      const path = pathOf(links!.preferences_url);
      h.advance(60_000);
      await oneClick(links!.one_click_url);
      h.advance(60_000);
      const saved = await save(path, { all: "on" });
      expect(saved.statusCode).toBe(200);
      expect(await receiving(id)).toEqual({ all: true, "topic:appeals": false });
      expect(
        (await pageEvents(id)).map((e) => [e.kind, e.kind === "deliverability" ? null : e.scope]),
      ).toEqual([
        ["opt_in", { kind: "global" }],
        ["opt_out", { kind: "topic", topic: "appeals" }],
      ]);
      expect(saved.body).toMatch(/id="topic-appeals" name="topic:appeals">/);
    });

    it("a second one-click after taking a topic back stops that topic too", async () => {
      const id = await seedAda();
      const links = await personalLinks(h.store, signer(), id, h.now());
      h.advance(60_000);
      await oneClick(links!.one_click_url);
      h.advance(60_000);
      await save(pathOf(links!.preferences_url), { "topic:appeals": "on" });
      expect(await receiving(id)).toEqual({ all: false, "topic:appeals": true });
      h.advance(86_400_000);
      const again = await oneClick(links!.one_click_url);
      expect(again.body).toContain("You are unsubscribed from all email");
      expect(await receiving(id)).toEqual({ all: false, "topic:appeals": false });
      // And a third is idempotent: nothing is sent any more.
      expect((await oneClick(links!.one_click_url)).body).toContain("You were already unsubscribed");
    });

    it("works in Chromium without JavaScript: untick, save, and the page says so", async () => {
      if (!existsSync(chromiumPath)) {
        if (inCi)
          throw new Error(
            `The preference centre test needs Chromium under CI: no Chromium at ${chromiumPath}.`,
          );
        console.warn(`preference centre browser test: skipped: no Chromium at ${chromiumPath}`);
        return;
      }
      const id = await seedAda();
      const links = await personalLinks(h.store, signer(), id, h.now());
      const address = await app.listen({ port: 0, host: "127.0.0.1" });
      const browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
      try {
        const context = await browser.newContext({ javaScriptEnabled: false, locale: "en-GB" });
        const page = await context.newPage();
        await page.goto(`${address}${pathOf(links!.preferences_url)}`);
        await page.getByRole("heading", { name: "Your email preferences" }).waitFor();
        const all = page.getByRole("checkbox", { name: "Email from this organisation" });
        expect(await all.isChecked()).toBe(true);
        const appeals = page.getByRole("checkbox", { name: "Fundraising appeals" });
        expect(await appeals.isChecked()).toBe(true);
        if (process.env["UPDATE_SCREENSHOTS"] === "1")
          await page.screenshot({
            path: join(import.meta.dirname, "..", "..", "docs", "screenshots", "preferences.png"),
          });
        await appeals.uncheck();
        await page.getByRole("button", { name: "Save my choices" }).click();
        await page.getByRole("status").filter({ hasText: "Your choices are saved." }).waitFor();
        expect(await page.getByRole("checkbox", { name: "Fundraising appeals" }).isChecked()).toBe(false);
        await page.getByText(/not receiving — You left this on \d{4}-\d{2}-\d{2}/).waitFor();
        const events = (await eventsForContact(h.store, id)).map((e) => e.event);
        expect(events.some((e) => e.mechanism === "preference_page" && e.kind === "opt_out")).toBe(true);
      } finally {
        await browser.close();
      }
    }, 60_000);
  });
});
