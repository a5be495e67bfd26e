/**
 * The sign-up form and its double opt-in, as `concord serve` mounts them, over the emulators and a
 * real local SMTP server: a request records no consent and emails a link; the person's confirmation
 * is their express opt-in (seed 003's lawful way back), adds a new person to the sign-up platform
 * and re-subscribes someone who had left; the form tells no one which addresses are known.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import { chromium } from "playwright-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConcordConfig } from "../config/concord-config";
import { appendConsentEvents, eventsForContact } from "../ledger/consent-ledger";
import { createLogger } from "../observability/logger";
import type { EngineRuntime } from "../runs/engine-runtime";
import { erasePerson } from "../runs/erase-person";
import { preferencesOf } from "../runs/personal-links";
import { checkConfirmation, confirmSignup, requestSignup, shownDigest } from "../runs/signup";
import { lockForTransaction } from "../store/advisory-lock";
import { heldTransaction } from "../../test/support/gate";
import { untilBlocked } from "../../test/support/lock-waits";
import {
  addToReList,
  engineContextOf,
  runtimeOf,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  TEST_ENV,
  TEST_KEY,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { SMTP_PASSWORD, SMTP_USER, startSmtp, type SmtpReceiver } from "../../test/support/smtp-receiver";
import { storeBackends } from "../../test/support/store-backends";
import { buildConcordApp } from "./concord-app";

const PASSWORD = "a long enough password";
const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const inCi = (process.env["CI"] ?? "") !== "";
const FORM = "application/x-www-form-urlencoded";

describe("the sign-up form and its confirmation email", () => {
  let h: SyncHarness;
  let smtp: SmtpReceiver;
  let runtime: EngineRuntime;
  let config: ConcordConfig;
  let app: Awaited<ReturnType<typeof buildConcordApp>>["app"];
  const logger = createLogger({ level: "silent" });

  beforeEach(async () => {
    smtp = await startSmtp();
    h = await startSyncHarness(sqliteBackend(), {
      configure: (raw) => {
        raw["server"] = { public_url: "https://concord.example.org" };
        raw["signup"] = {
          organisation: "Friends of the Park",
          connection: "cc-main",
          lists: [{ name: "Newsletter" }],
          smtp: {
            host: "127.0.0.1",
            port: smtp.port,
            username: SMTP_USER,
            password: { env: "SMTP_PASSWORD" },
            from: "hello@friends.example.org",
          },
          embed_origins: ["https://www.friends.example.org"],
          per_address_hourly: 4,
          // The form offers appeals; galas is a topic of the organisation's it does not offer.
          topics: ["appeals"],
        };
        (raw["topics"] as unknown[]).push({ key: "galas", label: "Galas" });
      },
    });
    config = h.config;
    const secrets = { env: { ...TEST_ENV, SMTP_PASSWORD, CONCORD_ADMIN_PASSWORD: PASSWORD }, key: TEST_KEY };
    runtime = runtimeOf(h, logger, { secrets });
    const built = await buildConcordApp(engineContextOf(h, config, logger), runtime, {
      version: "1",
      secrets,
      smtpTls: { rejectUnauthorized: false },
    });
    expect(built.problems).toEqual([]);
    app = built.app;
  });
  afterEach(async () => {
    await runtime.stop();
    await h.close();
    await smtp.close();
  });

  const signUp = (fields: Record<string, string | string[]>, ip = "203.0.113.7") => {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(fields)) for (const one of [v].flat()) body.append(k, one);
    return app.inject({
      method: "POST",
      url: "/l/signup",
      headers: { "content-type": FORM, "user-agent": "Browser/1.0" },
      payload: body.toString(),
      remoteAddress: ip,
    });
  };
  /** What the sign-up runs are given by `serve`, on `store`. */
  const signupDeps = (store: SyncHarness["store"]) => ({
    store,
    config,
    now: h.now,
    logger,
    secrets: { env: { ...TEST_ENV, SMTP_PASSWORD }, key: TEST_KEY },
    smtpTls: { rejectUnauthorized: false },
  });
  /** The confirmation link in the last email to `to`. */
  const linkIn = (to: string): string => {
    const mail = smtp.mails.filter((m) => m.to.includes(to)).at(-1);
    const url = /https:\/\/concord\.example\.org(\/l\/c\/[A-Za-z0-9_-]{43})/.exec(mail?.body ?? "")?.[1];
    if (url === undefined) throw new Error(`no confirmation link in an email to ${to}`);
    return url;
  };
  /** The Confirm button of the page `path` shows (as `page` was, when given: a page opened before). */
  const confirm = async (path: string, page?: string) => {
    const shown = /name="shown" value="([^"]*)"/.exec(
      page ?? (await app.inject({ method: "GET", url: path })).body,
    )?.[1];
    return app.inject({
      method: "POST",
      url: path,
      headers: { "content-type": FORM, "user-agent": "Browser/2.0" },
      payload: `confirm=yes${shown === undefined ? "" : `&shown=${shown}`}`,
      remoteAddress: "198.51.100.4",
    });
  };
  const eventsOf = async (email: string) => {
    const [contact] = await h.store.contacts.findByMatchKey(email);
    return contact ? (await eventsForContact(h.store, contact.id)).map((e) => e.event) : [];
  };

  it("a new person: the form, the email, a GET that only asks, then the confirmation adds them subscribed to the list", async () => {
    const form = await app.inject({ method: "GET", url: "/l/signup" });
    expect(form.statusCode).toBe(200);
    expect(form.body).toContain("Sign up for email from Friends of the Park");
    expect(form.body).toContain('name="topic" value="appeals"');
    expect(form.body).not.toContain("<script");
    // Only the organisation's own site may show it in a frame.
    expect(form.headers["content-security-policy"]).toContain(
      "frame-ancestors 'self' https://www.friends.example.org",
    );

    const sent = await signUp({ email: " Grace@Example.org ", first_name: "Grace", last_name: "Hopper" });
    expect(sent.statusCode).toBe(200);
    // The answer shows in the same frame as the form.
    expect(sent.headers["content-security-policy"]).toContain("https://www.friends.example.org");
    expect(sent.body).toContain("Check your inbox");
    // A request is not consent: nothing in the ledger, no contact in any system yet.
    expect(await eventsOf("grace@example.org")).toEqual([]);
    expect(h.ccContact(h.ccMain, "grace@example.org")).toBeUndefined();

    const [mail] = smtp.mails;
    expect(mail).toMatchObject({
      to: ["grace@example.org"],
      from: "hello@friends.example.org",
      secure: true,
    });
    expect(mail?.headers["subject"]).toContain("Confirm your subscription");
    const path = linkIn("grace@example.org");

    // A mail scanner opening the link confirms nothing.
    const asked = await app.inject({ method: "GET", url: path });
    expect(asked.statusCode).toBe(200);
    expect(asked.body).toContain("Confirm that you want to receive email from Friends of the Park?");
    // The page says what confirming records: whoever filled in the form, she confirms what she reads,
    // the name typed in it included.
    expect(asked.body).toContain("You will not receive: Fundraising appeals.");
    expect(asked.body).toContain("For grace@example.org, under the name: Grace Hopper.");
    expect(await eventsOf("grace@example.org")).toEqual([]);

    const done = await confirm(path);
    expect(done.statusCode).toBe(200);
    expect(done.body).toContain("your subscription to email from Friends of the Park is confirmed");
    const events = await eventsOf("grace@example.org");
    expect(events.find((e) => e.kind === "opt_in" && e.scope.kind === "global")).toMatchObject({
      basis: "express",
      mechanism: "double_opt_in_confirmation",
      actor: { kind: "contact" },
      source: { system: "concord", connection: "signup" },
      evidence: {
        ip: "198.51.100.4",
        user_agent: "Browser/2.0",
        form_wording: expect.stringMatching(
          /^Sign up for email from Friends of the Park \|.* \|\| Confirmation page: Confirm that you want to receive email from Friends of the Park\? \| For grace@example\.org, under the name: Grace Hopper\. \| You will not receive: Fundraising appeals\. \| Confirm$/,
        ),
        reason: expect.stringContaining("203.0.113.7"),
      },
    });
    // She ticked no topic: the form's choice is hers, so appeals is left.
    expect(events.find((e) => e.kind === "opt_out")).toMatchObject({
      scope: { kind: "topic", topic: "appeals" },
      mechanism: "signup_form",
      actor: { kind: "contact" },
    });
    // Galas, not offered, is no choice of hers either way: nothing is recorded for it.
    expect(events.filter((e) => e.kind === "opt_out").map((e) => e.scope)).toEqual([
      { kind: "topic", topic: "appeals" },
    ]);

    await runtime.idle();
    const contact = h.ccContact(h.ccMain, "grace@example.org");
    expect(contact?.email_address?.permission_to_send).not.toBe("unsubscribed");
    expect(contact?.fields["first_name"]).toBe("Grace");
    const newsletter = h.ccMain.store.activeLists().find((l) => l.name === "Newsletter");
    expect(contact?.list_memberships).toContain(newsletter?.list_id);
    const [grace] = await h.store.contacts.findByMatchKey("grace@example.org");
    expect((await h.store.links.forContact(grace!.id)).map((l) => [l.connection_id, l.origin])).toEqual([
      ["cc-main", "concord"],
    ]);

    // The link again: already confirmed, nothing recorded twice.
    const before = (await eventsOf("grace@example.org")).length;
    const again = await confirm(path);
    expect(again.body).toContain("already confirmed");
    await runtime.idle();
    expect(await eventsOf("grace@example.org")).toHaveLength(before);
  });

  it("someone who unsubscribed comes back only by confirming: the lawful resubscribe", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    h.advance(60_000);

    const sent = await signUp({ email: "ada@example.org", topic: "appeals" });
    expect(sent.statusCode).toBe(200);
    h.advance(60_000);
    // Unconfirmed, she stays out.
    await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");

    expect((await confirm(linkIn("ada@example.org"))).statusCode).toBe(200);
    await runtime.idle();
    // Her confirmed opt-in lifts every opt-out in Concord's ledger and in the CRM; Constant Contact
    // lets only the person resubscribe there, so it sends her its own confirmation email, once.
    expect(
      ((await h.reGet(`/constituent/v1/constituents/${ada!}`)) as { requests_no_email?: boolean })
        .requests_no_email,
    ).not.toBe(true);
    expect(h.ccContact(h.ccMain, "ada@example.org")?.resubscribe?.sent_at).toEqual(expect.any(String));
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    const optIns = (await eventsOf("ada@example.org")).filter(
      (e) => e.kind === "opt_in" && e.mechanism === "double_opt_in_confirmation",
    );
    // She kept appeals (she never left it): only the global opt-in is new.
    expect(optIns.map((e) => (e.kind === "opt_in" ? e.scope : undefined))).toEqual([{ kind: "global" }]);
    // Galas, which the form never showed her, stays as her unsubscribe left it.
    const contactId = (await h.store.links.find("re-nxt", ada!))?.contact_id ?? "";
    const lines = await preferencesOf(h.store, config, contactId, h.now());
    expect(lines.map((l) => [l.key, l.receiving])).toEqual([
      ["all", true],
      ["topic:appeals", true],
      ["topic:galas", false],
    ]);
    expect(lines.find((l) => l.key === "topic:galas")?.left_by_person).toBe(true);
    // Constant Contact cannot put her on its lists until she confirms there: the placement says so
    // once and is not tried again every minute (each try costs calls of the daily quota).
    const [placement] = await h.store.db.selectFrom("signups").selectAll().execute();
    expect(placement).toMatchObject({
      placed_at: expect.any(String),
      place_error: expect.stringContaining("cannot_add_to_list"),
    });
    h.advance(61_000);
    expect(await runtime.placeSignups()).toEqual([]);

    // She confirms in Constant Contact's email too: subscribed there, and nothing is asked again.
    await h.ccAct(h.ccMain, "confirm_resubscribe", "ada@example.org");
    h.advance(60_000);
    const after = await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).not.toBe(
      "unsubscribed",
    );
    expect(after.plan?.operations.filter((o) => o.kind === "request_resubscribe")).toEqual([]);
  });

  it("a sign-up confirmed from another contact's secondary address never lifts that person's own opt-out", async () => {
    // Jane moved to a new address; her old one is kept on her record as a further address. She
    // left all email herself. Whoever has her old mailbox now signs up.
    const [jane] = await h.seedRe([individual("jane@new.example", "Jane", "Doe")]);
    await addToReList(h, RE_LISTS.news, [jane!]);
    await h.sync();
    const [janeContact] = await h.store.contacts.findByMatchKey("jane@new.example");
    await h.store.contacts.addEmail(janeContact!.id, "jane@oldcorp.example", "jane@oldcorp.example");
    h.advance(60_000);
    await h.ccAct(h.ccMain, "unsubscribe", "jane@new.example");
    h.advance(1_000);
    await h.sync();
    const janeBefore = (await eventsForContact(h.store, janeContact!.id)).map((e) => e.event.id);
    h.advance(60_000);

    expect((await signUp({ email: "jane@oldcorp.example", first_name: "Sam" })).statusCode).toBe(200);
    expect((await confirm(linkIn("jane@oldcorp.example"))).statusCode).toBe(200);
    await runtime.idle();

    // Jane's history is as it was: the opt-in went to a contact of its own.
    expect((await eventsForContact(h.store, janeContact!.id)).map((e) => e.event.id)).toEqual(janeBefore);
    const holders = await h.store.contacts.findByMatchKey("jane@oldcorp.example");
    const made = holders.find((c) => c.id !== janeContact!.id);
    expect(made).toMatchObject({ given_name: "Sam", primary_email: "jane@oldcorp.example" });
    expect(
      (await eventsForContact(h.store, made!.id)).map((e) => e.event).find((e) => e.kind === "opt_in"),
    ).toMatchObject({ scope: { kind: "global" }, mechanism: "double_opt_in_confirmation" });
    // Jane's address stays unsubscribed in Constant Contact, and someone is asked who this is.
    h.advance(60_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "jane@new.example")?.email_address?.permission_to_send).toBe("unsubscribed");
    const [item] = (await h.store.reviewItems.list("open")).filter((i) => i.key.startsWith("signup:"));
    expect(item).toMatchObject({
      kind: "ambiguous_identity",
      contact_id: made!.id,
      detail: {
        reason: "signup_at_another_contacts_secondary",
        source: "signup",
        email: "jane@oldcorp.example",
        candidate_contact_ids: [janeContact!.id],
      },
    });

    // Sam signs up there again later: the contact made for his first sign-up is his, not a third.
    h.advance(11 * 60_000);
    expect((await signUp({ email: "jane@oldcorp.example", topic: "appeals" })).statusCode).toBe(200);
    expect((await confirm(linkIn("jane@oldcorp.example"))).statusCode).toBe(200);
    expect((await h.store.contacts.findByMatchKey("jane@oldcorp.example")).map((c) => c.id).sort()).toEqual(
      [janeContact!.id, made!.id].sort(),
    );
    expect(
      (await eventsForContact(h.store, made!.id)).filter(
        (e) => e.event.kind === "opt_in" && e.event.mechanism === "double_opt_in_confirmation",
      ).length,
    ).toBeGreaterThan(1);
    expect((await eventsForContact(h.store, janeContact!.id)).map((e) => e.event.id)).toEqual(janeBefore);
  });

  it("a page opened before another sign-up rewrote the request confirms nothing: the person reads what it asks now", async () => {
    await signUp({ email: "ada@example.org", first_name: "Ada" });
    const link = linkIn("ada@example.org");
    const opened = (await app.inject({ method: "GET", url: link })).body;
    expect(opened).toContain("You will not receive: Fundraising appeals.");
    // Someone else sends the form for her address at once: no email, the request now theirs.
    await signUp({ email: "ada@example.org", first_name: "Mallory", topic: "appeals" }, "203.0.113.66");
    expect(smtp.mails).toHaveLength(1);

    // Her press of Confirm on the page she read records nothing; the page shows what it asks now.
    const stale = await confirm(link, opened);
    expect(stale.statusCode).toBe(409);
    expect(stale.body).toContain("This sign-up changed after the page was opened");
    expect(stale.body).toContain("under the name: Mallory.");
    expect(stale.body).toContain("You will receive: Fundraising appeals.");
    expect(await eventsOf("ada@example.org")).toEqual([]);
    // A form without the page's mark (a tool posting to every link) confirms nothing either.
    expect(
      (
        await app.inject({
          method: "POST",
          url: link,
          headers: { "content-type": FORM },
          payload: "confirm=yes",
        })
      ).statusCode,
    ).toBe(409);
    expect(await eventsOf("ada@example.org")).toEqual([]);

    // Confirmed on the page as it reads now: the evidence names the request it confirms.
    expect((await confirm(link, stale.body)).statusCode).toBe(200);
    const [optIn] = await eventsOf("ada@example.org");
    expect(optIn).toMatchObject({
      kind: "opt_in",
      evidence: {
        reason: expect.stringContaining("from 203.0.113.66"),
        form_wording: expect.stringContaining("You will receive: Fundraising appeals."),
      },
    });
  });

  it("a second request soon after says nothing of the first, and one after a confirmed sign-up gets its own link", async () => {
    await signUp({ email: "ada@example.org" });
    h.advance(120_000);
    // Two minutes on, the same address and a new one: the same answer, the link's time the same
    // (it works as long as a new request's would), so nobody learns that someone asked before.
    const again = await signUp({ email: "ada@example.org", topic: "appeals" });
    const fresh = await signUp({ email: "nobody@example.org" });
    expect(again.body.replace("ada@example.org", "X")).toBe(fresh.body.replace("nobody@example.org", "X"));
    expect(smtp.mails.filter((m) => m.to.includes("ada@example.org"))).toHaveLength(1);
    expect((await confirm(linkIn("ada@example.org"))).statusCode).toBe(200);

    // Within ten minutes she signs up again (her name now): that link was used, so this one is mailed,
    // not dropped while the page says an email was sent.
    h.advance(60_000);
    await signUp({ email: "ada@example.org", first_name: "Ada" });
    const mailed = smtp.mails.filter((m) => m.to.includes("ada@example.org"));
    expect(mailed).toHaveLength(2);
    expect((await app.inject({ method: "GET", url: linkIn("ada@example.org") })).statusCode).toBe(200);
  });

  it("tells no one which addresses are known, mails an address once in ten minutes, and stops robots and floods", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();

    const known = await signUp({ email: "ada@example.org" });
    const unknown = await signUp({ email: "nobody@example.org" });
    expect(known.statusCode).toBe(unknown.statusCode);
    expect(known.body.replace("ada@example.org", "X")).toBe(unknown.body.replace("nobody@example.org", "X"));
    expect(smtp.mails).toHaveLength(2);

    // The same address again at once: the same answer, no second email; the link already sent
    // now asks for the choices sent last, and shows them before anyone confirms.
    const first = linkIn("ada@example.org");
    expect((await app.inject({ method: "GET", url: first })).body).toContain(
      "You will not receive: Fundraising appeals.",
    );
    expect((await signUp({ email: "ada@example.org", topic: "appeals" }, "203.0.113.8")).statusCode).toBe(
      200,
    );
    expect(smtp.mails).toHaveLength(2);
    expect((await app.inject({ method: "GET", url: first })).body).toContain(
      "You will receive: Fundraising appeals.",
    );
    h.advance(11 * 60_000);
    await signUp({ email: "ada@example.org" }, "203.0.113.8");
    expect(smtp.mails).toHaveLength(3);

    // The hidden field a person never fills in: the same answer, nothing sent or stored.
    const robot = await signUp({ email: "bot@example.org", website: "http://spam.example" }, "203.0.113.9");
    expect(robot.statusCode).toBe(200);
    expect(smtp.mails).toHaveLength(3);

    // One network may ask four times an hour here; the fifth is refused.
    for (const n of [1, 2, 3, 4])
      expect((await signUp({ email: `p${n}@example.org` }, "192.0.2.1")).statusCode).toBe(200);
    const flood = await signUp({ email: "p5@example.org" }, "192.0.2.1");
    expect(flood.statusCode).toBe(429);
    expect(flood.body).toContain("Too many sign-ups");

    // An IPv6 client is one client for its whole /64: new addresses in it buy no more requests.
    for (const n of [1, 2, 3, 4])
      expect((await signUp({ email: `v${n}@example.org` }, `2001:db8:7:7::${n}`)).statusCode).toBe(200);
    expect((await signUp({ email: "v5@example.org" }, "2001:db8:7:7:ffff::5")).statusCode).toBe(429);
    expect((await signUp({ email: "v6@example.org" }, "2001:db8:7:8::1")).statusCode).toBe(200);

    // Asking again for an address whose link is waiting sends nothing but rewrites the request: it
    // counts against the asking client too, so one network cannot rewrite everyone's requests.
    for (const n of [1, 2, 3, 4, 5])
      expect((await signUp({ email: `w${n}@example.org` }, `198.51.100.${60 + n}`)).statusCode).toBe(200);
    const sentBefore = smtp.mails.length;
    for (const n of [1, 2, 3, 4])
      expect((await signUp({ email: `w${n}@example.org` }, "192.0.2.77")).statusCode).toBe(200);
    expect((await signUp({ email: "w5@example.org" }, "192.0.2.77")).statusCode).toBe(429);
    expect(smtp.mails).toHaveLength(sentBefore);
  });

  for (const backend of storeBackends())
    it.skipIf(backend.skip_reason !== undefined)(
      `requests sent at the same moment are counted together on ${backend.name}: one email to the address, and the client's limit holds`,
      async () => {
        // On SQLite one write transaction at a time orders them; on PostgreSQL, the locks on the
        // address and the client do.
        const own = backend.name === "sqlite" ? undefined : await backend.create({ clock: h.now });
        const store = own?.store ?? h.store;
        try {
          const before = smtp.mails.length;
          const deps = signupDeps(store);
          const ask = (email: string, ip: string) =>
            requestSignup(deps, { email, topics: [], lang: "en", wording: "form", ip });
          // Fifteen at once for one address, from one client: one email, as one request would send.
          const answers = await Promise.all(
            Array.from({ length: 15 }, () => ask("victim@example.org", "198.51.100.23")),
          );
          expect(answers.filter((a) => !a.ok && a.error.code !== "too_many_requests")).toEqual([]);
          expect(smtp.mails.filter((m) => m.to.includes("victim@example.org"))).toHaveLength(1);
          // Fifteen at once for fifteen addresses from one client: only the client's hourly limit (4) are kept.
          await Promise.all(
            Array.from({ length: 15 }, (_, i) => ask(`many${i}@example.org`, "198.51.100.24")),
          );
          const kept = await store.db
            .selectFrom("signups")
            .select((eb) => eb.fn.countAll<number | string>().as("n"))
            .where("request_ip", "=", "198.51.100.24")
            .executeTakeFirstOrThrow();
          expect(Number(kept.n)).toBe(4);
          expect(smtp.mails.length - before).toBe(5);
        } finally {
          await own?.cleanup();
        }
      },
    );

  for (const backend of storeBackends())
    it.skipIf(backend.name !== "postgres" || backend.skip_reason !== undefined)(
      `a sign-up confirmed while a read makes a contact for the address ends with one contact on ${backend.name}`,
      async () => {
        const own = await backend.create({ clock: h.now });
        try {
          const deps = signupDeps(own.store);
          const sent = await requestSignup(deps, {
            email: "noor@example.org",
            topics: [],
            lang: "en",
            wording: "form",
            ip: "198.51.100.31",
          });
          expect(sent.ok).toBe(true);
          const token = linkIn("noor@example.org").slice("/l/c/".length);
          const page = await checkConfirmation(own.store, token, h.now());
          if (!page.ok) throw new Error(`the link does not work: ${page.error}`);
          // A read of a system is making a contact for the address: it holds the address's lock.
          const reading = await heldTransaction(own.store, async (tx) => {
            await lockForTransaction(tx, ["match:noor@example.org"]);
            await tx.contacts.create({
              type: "person",
              primary_email: "noor@example.org",
              email_match_key: "noor@example.org",
            });
          });
          const confirming = confirmSignup(deps, token, {
            shown: () => "Confirm",
            shown_digest: shownDigest(page.value),
          });
          // The confirmation either finished beside the open read (the defect) or waits for the lock.
          await Promise.race([confirming, untilBlocked(own.store.db, { advisory: true })]);
          await reading.commit();
          const confirmed = await confirming;
          expect(confirmed.ok).toBe(true);
          const holders = await own.store.contacts.findByMatchKey("noor@example.org");
          expect(holders).toHaveLength(1);
          expect(confirmed.ok && confirmed.value.contact_id).toBe(holders[0]?.id);
        } finally {
          await own.cleanup();
        }
      },
    );

  for (const backend of storeBackends())
    it.skipIf(backend.name !== "postgres" || backend.skip_reason !== undefined)(
      `a request for an address whose sign-up is being confirmed at that moment gets a link of its own on ${backend.name}`,
      async () => {
        const own = await backend.create({ clock: h.now });
        try {
          const deps = signupDeps(own.store);
          const ask = (topics: string[], ip: string) =>
            requestSignup(deps, { email: "rae@example.org", topics, lang: "en", wording: "form", ip });
          expect((await ask([], "198.51.100.41")).ok).toBe(true);
          const token = linkIn("rae@example.org").slice("/l/c/".length);
          const page = await checkConfirmation(own.store, token, h.now());
          if (!page.ok) throw new Error(`the link does not work: ${page.error}`);
          // Another person's consent is being recorded: the ledger's head is held.
          const other = await own.store.contacts.create({ type: "person", primary_email: "sam@example.org" });
          const recording = await heldTransaction(own.store, (tx) =>
            appendConsentEvents(tx, [
              {
                kind: "opt_out",
                contact_id: other.id,
                channel: "email",
                scope: { kind: "global" },
                source: { system: "concord", connection: "links" },
                mechanism: "unsubscribe_link",
                actor: { kind: "contact" },
                occurred_at: h.now().toISOString(),
                observed_at: h.now().toISOString(),
                evidence: {},
              },
            ]),
          );
          // Rae confirms: her sign-up is claimed, and the confirmation waits for the ledger.
          const confirming = confirmSignup(deps, token, {
            shown: () => "Confirm",
            shown_digest: shownDigest(page.value),
          });
          await untilBlocked(own.store.db, { row_lock_in: "consent_ledger_head" });
          // Meanwhile the form is sent again for her address, ticking appeals: it finds her sign-up
          // waiting and would rewrite it, which the confirmation holds.
          const asking = ask(["appeals"], "198.51.100.42");
          await Promise.race([asking, untilBlocked(own.store.db, { row_lock_in: "signups" })]);
          await recording.commit();
          expect((await confirming).ok).toBe(true);
          expect((await asking).ok).toBe(true);
          // The confirmed sign-up keeps what Rae confirmed; the new request waits with a link of its own.
          const rows = await own.store.db
            .selectFrom("signups")
            .select(["status", "topics_json"])
            .where("match_key", "=", "rae@example.org")
            .orderBy("requested_at")
            .execute();
          expect(rows).toEqual([
            { status: "confirmed", topics_json: "[]" },
            { status: "pending", topics_json: '["appeals"]' },
          ]);
          expect(smtp.mails.filter((m) => m.to.includes("rae@example.org"))).toHaveLength(2);
        } finally {
          await own.cleanup();
        }
      },
    );

  it("a failure of the server itself is answered as the route answers: a page, or the JSON API's error object", async () => {
    // The store fails under the form (here: the table it writes is gone).
    await sql`alter table signups rename to signups_gone`.execute(h.store.db);
    try {
      const api = await app.inject({
        method: "POST",
        url: "/l/signup",
        payload: { email: "lin@example.org" },
      });
      expect(api.statusCode).toBe(500);
      expect(api.json()).toEqual({ error: { code: "internal_error", message: expect.any(String) } });
      const form = await signUp({ email: "lin@example.org" });
      expect(form.statusCode).toBe(500);
      expect(form.headers["content-type"]).toContain("text/html");
      expect(form.body).toContain("try again in a minute");
    } finally {
      await sql`alter table signups_gone rename to signups`.execute(h.store.db);
    }
  });

  it("a bad request says what is wrong and keeps what was typed; the JSON API answers alike", async () => {
    const bad = await signUp({ email: "ada(at)example.org", first_name: "Ada" });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain("email: this is not an email address");
    expect(bad.body).toContain('value="Ada"');
    const topic = await signUp({ email: "ada@example.org", topic: "galas" });
    expect(topic.statusCode).toBe(400);
    expect(topic.body).toContain("is not offered here; expected some of: appeals");
    expect(smtp.mails).toHaveLength(0);

    const api = await app.inject({
      method: "POST",
      url: "/l/signup",
      payload: { email: "lin@example.org", topics: ["appeals"], lang: "fr", form_wording: "Our site's form" },
    });
    expect(api.statusCode).toBe(202);
    expect(api.json()).toEqual({ status: "confirmation_sent", expires_at: expect.any(String) });
    expect(smtp.mails.at(-1)?.headers["subject"]).toContain("Confirmez votre abonnement");
    const notJson = await app.inject({
      method: "POST",
      url: "/l/signup",
      headers: { "content-type": "application/json" },
      payload: "{email",
    });
    expect(notJson.statusCode).toBe(400);
    const extra = await app.inject({
      method: "POST",
      url: "/l/signup",
      payload: { email: "x@example.org", admin: true },
    });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().error.message).toContain("expected {email");
    // Bodies refused before the route reads them are answered as the route answers: the API's
    // error object, or the form's page, each saying what is expected.
    const hugeJson = await app.inject({
      method: "POST",
      url: "/l/signup",
      payload: { email: "x@example.org", form_wording: "x".repeat(20_000) },
    });
    expect(hugeJson.statusCode).toBe(413);
    expect(hugeJson.json()).toEqual({
      error: { code: "body_too_large", message: expect.stringContaining("larger than 16384 bytes") },
    });
    const hugeForm = await signUp({ email: "x@example.org", first_name: "x".repeat(20_000) });
    expect(hugeForm.statusCode).toBe(413);
    expect(hugeForm.headers["content-type"]).toContain("text/html");
    expect(hugeForm.body).toContain("16 KiB at most");
    const text = await app.inject({
      method: "POST",
      url: "/l/signup",
      headers: { "content-type": "text/plain" },
      payload: "email=x@example.org",
    });
    expect(text.statusCode).toBe(415);
    expect(text.headers["content-type"]).toContain("text/html");
    expect(text.body).toContain("This form could not be read");
    await confirm(linkIn("lin@example.org"));
    const lin = await eventsOf("lin@example.org");
    // The site's words are kept as its claim: Concord never showed them. Then what Concord's
    // confirmation page showed her.
    expect(lin.find((e) => e.kind === "opt_in")?.evidence.form_wording).toBe(
      "As the site that sent this sign-up says its form read (not shown by Concord): Our site's form || Confirmation page: Confirm that you want to receive email from Friends of the Park? | For lin@example.org, with no name. | You will receive: Fundraising appeals. | Confirm",
    );
    expect(lin.some((e) => e.kind === "opt_out")).toBe(false);
    // A site that sends no wording: the evidence is Concord's confirmation page alone, never
    // Concord's own form, which the person did not see.
    const bare = await app.inject({
      method: "POST",
      url: "/l/signup",
      payload: { email: "kay@example.org" },
    });
    expect(bare.statusCode).toBe(202);
    await confirm(linkIn("kay@example.org"));
    expect((await eventsOf("kay@example.org")).find((e) => e.kind === "opt_in")?.evidence.form_wording).toBe(
      "Confirmation page: Confirm that you want to receive email from Friends of the Park? | For kay@example.org, with no name. | You will not receive: Fundraising appeals. | Confirm",
    );
    // A site's wording as long as the API takes: the form's words are cut, never the page's.
    const long = await app.inject({
      method: "POST",
      url: "/l/signup",
      payload: { email: "lee@example.org", form_wording: "w".repeat(4000) },
    });
    expect(long.statusCode).toBe(202);
    await confirm(linkIn("lee@example.org"));
    const kept =
      (await eventsOf("lee@example.org")).find((e) => e.kind === "opt_in")?.evidence.form_wording ?? "";
    expect(kept.length).toBeLessThanOrEqual(4000);
    expect(kept).toMatch(
      /^As the site that sent this sign-up says its form read \(not shown by Concord\): w+ \|\| Confirmation page: .* \| Confirm$/,
    );
  });

  it("serve says at start when the sign-up email's password cannot be found", async () => {
    const built = await buildConcordApp(engineContextOf(h, config, logger), runtime, {
      version: "1",
      secrets: { env: { ...TEST_ENV, CONCORD_ADMIN_PASSWORD: PASSWORD }, key: TEST_KEY },
    });
    expect(built.problems).toEqual([expect.stringContaining("signup.smtp.password")]);
    await built.app.close();
  });

  it("a link not sent here is not found, an old one has expired; an email that cannot leave is said so", async () => {
    expect((await app.inject({ method: "GET", url: `/l/c/${"A".repeat(43)}` })).statusCode).toBe(404);
    expect((await app.inject({ method: "GET", url: "/l/c/short" })).statusCode).toBe(404);
    await signUp({ email: "ada@example.org" });
    const path = linkIn("ada@example.org");
    // Only the page's own form confirms: a POST with no body, another body or JSON records nothing.
    for (const post of [
      { payload: "" },
      { headers: { "content-type": FORM }, payload: "confirm=no" },
      { headers: { "content-type": "application/json" }, payload: '{"confirm":"yes"}' },
    ]) {
      const res = await app.inject({ method: "POST", url: path, ...post });
      expect(res.statusCode, JSON.stringify(post)).toBe(400);
      expect(res.body).toContain("use the Confirm button");
    }
    expect(await eventsOf("ada@example.org")).toEqual([]);
    h.advance(3 * 86_400_000 + 1);
    const late = await confirm(path);
    expect(late.statusCode).toBe(410);
    expect(late.body).toContain("expired");
    expect(await eventsOf("ada@example.org")).toEqual([]);

    await smtp.close();
    const down = await signUp({ email: "bob@example.org", first_name: "Bob" });
    expect(down.statusCode).toBe(503);
    expect(down.body).toContain("could not be sent");
    // What was typed is still in the form, to send again.
    expect(down.body).toContain('value="bob@example.org"');
    expect(down.body).toContain('value="Bob"');
    // Nothing was promised, so nothing of the address is kept.
    expect(
      await h.store.db.selectFrom("signups").select("email").where("email", "=", "bob@example.org").execute(),
    ).toEqual([]);
  });

  it("an erased person may sign up again: their confirmation lifts the suppression, and erasure takes waiting sign-ups", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    await signUp({ email: "ada@example.org" });
    const stale = linkIn("ada@example.org");
    const erased = await erasePerson(
      { store: h.store, config, connections: h.connections, now: h.now },
      { email: "ada@example.org", requested_by: "test" },
    );
    expect(erased.ok && erased.report.status).toBe("completed");
    // The waiting sign-up went with the rest.
    expect((await confirm(stale)).statusCode).toBe(404);
    expect(await h.store.db.selectFrom("signups").selectAll().execute()).toEqual([]);

    h.advance(11 * 60_000);
    await signUp({ email: "ada@example.org" });
    expect((await confirm(linkIn("ada@example.org"))).statusCode).toBe(200);
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).not.toBe(
      "unsubscribed",
    );
    const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
    expect(contact).toBeDefined();
    expect((await h.store.links.forContact(contact!.id)).map((l) => l.connection_id)).toContain("cc-main");
  });

  it("a platform down at the confirmation: consent recorded at once, the person added by a later tick; old sign-ups are forgotten", async () => {
    await signUp({ email: "ines@example.org", first_name: "Ines" });
    await post(h.ccMain.baseUrl, "/__emulator/faults", { status: 503, count: 1000, path_prefix: "/v3/" });
    const done = await confirm(linkIn("ines@example.org"));
    expect(done.statusCode).toBe(200);
    await runtime.idle();
    expect((await eventsOf("ines@example.org")).some((e) => e.kind === "opt_in")).toBe(true);
    expect(h.ccContact(h.ccMain, "ines@example.org")).toBeUndefined();
    const [waiting] = await h.store.db.selectFrom("signups").selectAll().execute();
    expect(waiting).toMatchObject({ status: "confirmed", placed_at: null, place_error: expect.any(String) });

    // The platform is back; a tick a minute later adds her.
    h.ccMain.kit.faults.length = 0;
    await runtime.tick();
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ines@example.org")).toBeUndefined(); // not yet: the retry waits a minute
    h.advance(61_000);
    await runtime.tick();
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ines@example.org")?.email_address?.permission_to_send).not.toBe(
      "unsubscribed",
    );

    // A request never confirmed is forgotten a week after its link expired; a placed one after a month.
    await signUp({ email: "never@example.org" }, "203.0.113.20");
    h.advance(11 * 86_400_000);
    await runtime.tick();
    const left = await h.store.db.selectFrom("signups").select(["email", "status"]).execute();
    expect(left).toEqual([{ email: "ines@example.org", status: "confirmed" }]);
    h.advance(20 * 86_400_000);
    await runtime.tick();
    expect(await h.store.db.selectFrom("signups").selectAll().execute()).toEqual([]);
    // The consent and its evidence stay in the ledger.
    expect(
      (await eventsOf("ines@example.org")).some((e) => e.mechanism === "double_opt_in_confirmation"),
    ).toBe(true);
  });

  it("a person who leaves all email between confirming and being placed is not placed, and it is said why", async () => {
    await signUp({ email: "ines@example.org", first_name: "Ines" });
    await post(h.ccMain.baseUrl, "/__emulator/faults", { status: 503, count: 1000, path_prefix: "/v3/" });
    expect((await confirm(linkIn("ines@example.org"))).statusCode).toBe(200);
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ines@example.org")).toBeUndefined();

    // While the platform is down, Ines unsubscribes (her own act, through an email's link).
    h.advance(10_000);
    const [ines] = await h.store.contacts.findByMatchKey("ines@example.org");
    const [left] = await appendConsentEvents(h.store, [
      {
        kind: "opt_out",
        contact_id: ines!.id,
        channel: "email",
        scope: { kind: "global" },
        source: { system: "concord", connection: "links" },
        mechanism: "one_click_header",
        actor: { kind: "contact" },
        occurred_at: h.now().toISOString(),
        observed_at: h.now().toISOString(),
        evidence: { source_record_id: "link:test" },
      },
    ]);
    expect(left?.kind).toBe("appended");

    // The platform is back: the placement reads her consent again and adds no one.
    h.ccMain.kit.faults.length = 0;
    h.advance(61_000);
    const placed = await runtime.placeSignups();
    expect(placed).toMatchObject([
      { status: "withdrawn", message: expect.stringContaining("left all email") },
    ]);
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ines@example.org")).toBeUndefined();
    const [row] = await h.store.db.selectFrom("signups").selectAll().execute();
    expect(row).toMatchObject({
      placed_at: expect.any(String),
      place_error: expect.stringContaining("left all"),
    });
    // Not tried again.
    h.advance(61_000);
    expect(await runtime.placeSignups()).toEqual([]);
  });

  it("works in Chromium without JavaScript: fill in, sign up, open the emailed link, confirm", async () => {
    if (!existsSync(chromiumPath)) {
      if (inCi)
        throw new Error(`The sign-up form test needs Chromium under CI: no Chromium at ${chromiumPath}.`);
      console.warn(`sign-up form browser test: skipped: no Chromium at ${chromiumPath}`);
      return;
    }
    const address = await app.listen({ port: 0, host: "127.0.0.1" });
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
    try {
      const context = await browser.newContext({ javaScriptEnabled: false, locale: "en-GB" });
      const page = await context.newPage();
      await page.goto(`${address}/l/signup`);
      await page.getByRole("heading", { name: "Sign up for email from Friends of the Park" }).waitFor();
      await page.getByLabel("Email address").fill("grace@example.org");
      await page.getByLabel("First name (optional)").fill("Grace");
      await page.getByRole("checkbox", { name: "Fundraising appeals" }).check();
      // The robots' field is out of sight, out of the tab order and hidden from screen readers.
      expect(await page.getByRole("textbox", { name: "Website" }).count()).toBe(0);
      const box = await page.locator("#website").boundingBox();
      expect((box?.x ?? 0) + (box?.width ?? 0)).toBeLessThanOrEqual(0);
      if (process.env["UPDATE_SCREENSHOTS"] === "1")
        await page.screenshot({
          path: join(import.meta.dirname, "..", "..", "docs", "screenshots", "signup.png"),
        });
      await page.getByRole("button", { name: "Sign up" }).click();
      await page.getByRole("status").filter({ hasText: "Check your inbox" }).waitFor();

      await page.goto(`${address}${linkIn("grace@example.org")}`);
      await page.getByRole("button", { name: "Confirm" }).click();
      await page.getByRole("status").filter({ hasText: "is confirmed" }).waitFor();
      await runtime.idle();
      const events = await eventsOf("grace@example.org");
      expect(
        events.filter((e) => e.kind === "opt_in" && e.mechanism === "double_opt_in_confirmation"),
      ).toHaveLength(1);
      expect(events.some((e) => e.kind === "opt_out")).toBe(false);
      expect(h.ccContact(h.ccMain, "grace@example.org")?.fields["first_name"]).toBe("Grace");
    } finally {
      await browser.close();
    }
  }, 60_000);
});
