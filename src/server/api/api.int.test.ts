/**
 * The REST API over the real engine (emulators, SQLite store, runtime) through `app.inject`:
 * sign-in and CSRF, every route's happy path over data a sync made, validation and limits, the
 * OpenAPI document and the metrics exposition.
 */
import { verifyProof } from "../../runs/proof-bundle";
import { recordWebhookChanges } from "../../pipeline/pull-connection";
import SwaggerParser from "@apidevtools/swagger-parser";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { addToReList, individual, RE_LISTS } from "../../../test/support/sync-harness";
import { describeOnBackends, storeBackends } from "../../../test/support/store-backends";
import { ADMIN_PASSWORD, startApiHarness, type ApiHarness } from "../../../test/support/api-harness";

let a: ApiHarness;
const re: Record<string, string> = {};

/** Ada, Bob and Grace (who ticked Requests No Email) with addresses, Alan without, all in the newsletter list. */
async function seed(): Promise<void> {
  const people = [
    individual("ada@example.org", "Ada", "Lovelace"),
    individual("bob@example.org", "Bob", "Example"),
    individual("grace@example.org", "Grace", "Hopper", { requests_no_email: true }),
    individual(null, "Alan", "Turing"),
  ];
  const ids = await a.h.seedRe(people);
  for (const [i, n] of ["ada", "bob", "grace", "alan"].entries()) re[n] = ids[i] ?? "";
  await addToReList(a.h, RE_LISTS.news, ids);
}

async function contactIdOf(email: string): Promise<string> {
  const [c] = await a.h.store.contacts.findByMatchKey(email);
  if (!c) throw new Error(`no contact ${email}`);
  return c.id;
}

describe("sign-in, sessions and CSRF", () => {
  beforeEach(async () => {
    a = await startApiHarness();
  });
  afterEach(async () => {
    await a.close();
  });

  it("every /api route but sign-in needs a session", async () => {
    const res = await a.call("GET", "/api/overview");
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({
      code: "not_signed_in",
      message: "Sign in first: POST /api/session with the admin password.",
    });
    expect((await a.call("GET", "/api/session")).json()).toEqual({ signed_in: false, csrf_token: null });
  });

  it("a wrong password is refused; the right one sets a secure session cookie and returns the CSRF token", async () => {
    const wrong = await a.app.inject({ method: "POST", url: "/api/session", payload: { password: "guess" } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ code: "wrong_password" });
    expect(wrong.headers["set-cookie"]).toBeUndefined();

    const right = await a.app.inject({
      method: "POST",
      url: "/api/session",
      payload: { password: ADMIN_PASSWORD },
    });
    expect(right.statusCode).toBe(200);
    const body = right.json<{ signed_in: boolean; csrf_token: string }>();
    expect(body.signed_in).toBe(true);
    expect(body.csrf_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const cookie = String(right.headers["set-cookie"]);
    expect(cookie).toMatch(/^concord_session=[A-Za-z0-9_-]{43};/);
    for (const flag of ["HttpOnly", "SameSite=Strict", "Secure", "Path=/api"]) expect(cookie).toContain(flag);
    expect(right.headers["cache-control"]).toBe("no-store");

    const session = await a.app.inject({
      method: "GET",
      url: "/api/session",
      headers: { cookie: cookie.split(";")[0] ?? "" },
    });
    expect(session.json()).toEqual({ signed_in: true, csrf_token: body.csrf_token });
  });

  it("a state-changing request without the session's CSRF token is refused", async () => {
    const { csrf } = await a.signIn();
    for (const token of [null, "not-the-token"]) {
      const res = await a.call("POST", "/api/pairs/re-cc/sync", { dry_run: true }, { csrf: token });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: "csrf_invalid" });
    }
    expect(await a.h.store.db.selectFrom("runs").selectAll().execute()).toEqual([]);
    const ok = await a.call("POST", "/api/pairs/re-cc/sync", { dry_run: true }, { csrf });
    expect(ok.statusCode).toBe(200);
  });

  it("signing out ends the session; an idle session expires", async () => {
    await a.signIn();
    expect((await a.call("GET", "/api/overview")).statusCode).toBe(200);
    expect((await a.call("DELETE", "/api/session", undefined, { csrf: null })).statusCode).toBe(403);
    const out = await a.call("DELETE", "/api/session");
    expect(out.json()).toEqual({ signed_in: false, csrf_token: null });
    expect((await a.call("GET", "/api/overview")).statusCode).toBe(401);

    await a.signIn();
    a.h.advance(11 * 3_600_000);
    expect((await a.call("GET", "/api/overview")).statusCode).toBe(200); // use restarts the idle clock
    a.h.advance(12 * 3_600_000 + 1);
    expect((await a.call("GET", "/api/overview")).json()).toMatchObject({ code: "not_signed_in" });
  });

  it("failed sign-ins slow their client down, twice as long each time; others and the right password after the wait go through", async () => {
    const attempt = (password: string, ip = "203.0.113.7") =>
      a.app.inject({ method: "POST", url: "/api/session", payload: { password }, remoteAddress: ip });
    for (let i = 0; i < 5; i += 1) expect((await attempt(`guess-${i}`)).statusCode).toBe(401);
    // The fifth failure starts the waits: 1 s, then 2 s, 4 s…
    const waiting = await attempt(ADMIN_PASSWORD);
    expect(waiting.statusCode).toBe(429);
    expect(waiting.json()).toMatchObject({ code: "too_many_attempts" });
    expect(waiting.headers["retry-after"]).toBe("1");
    a.h.advance(1_000);
    expect((await attempt("guess-5")).statusCode).toBe(401);
    expect((await attempt(ADMIN_PASSWORD)).headers["retry-after"]).toBe("2");
    expect((await attempt(ADMIN_PASSWORD, "198.51.100.9")).statusCode).toBe(200); // another client
    a.h.advance(2_000);
    expect((await attempt(ADMIN_PASSWORD)).statusCode).toBe(200);
  });

  it("counts an IPv6 client by its /64; past a ceiling of failures from everyone, no failure is free", async () => {
    const attempt = (password: string, ip: string) =>
      a.app.inject({ method: "POST", url: "/api/session", payload: { password }, remoteAddress: ip });
    for (let i = 0; i < 5; i += 1)
      expect((await attempt("guess", `2001:db8:1:2::${(i + 1).toString(16)}`)).statusCode).toBe(401);
    expect((await attempt(ADMIN_PASSWORD, "2001:db8:1:2:ffff::9")).statusCode).toBe(429); // the same /64
    expect((await attempt(ADMIN_PASSWORD, "2001:db8:1:3::1")).statusCode).toBe(200); // another /64
    // 100 failures in a minute from 100 addresses: a client's first failure now makes it wait,
    // while an operator who has not failed still signs in.
    for (let i = 0; i < 95; i += 1) await attempt("guess", `192.0.2.${i + 1}`);
    expect((await attempt("guess", "198.51.100.77")).statusCode).toBe(401);
    expect((await attempt(ADMIN_PASSWORD, "198.51.100.77")).statusCode).toBe(429);
    expect((await attempt(ADMIN_PASSWORD, "198.51.100.78")).statusCode).toBe(200);
    a.h.advance(60_000);
    expect((await attempt(ADMIN_PASSWORD, "198.51.100.77")).statusCode).toBe(200);
  });
});

describe("the API over a synced pair", () => {
  beforeEach(async () => {
    a = await startApiHarness();
    await seed();
    await a.signIn();
  });
  afterEach(async () => {
    await a.close();
  });

  it("a dry run previews gains and skip reasons; applying its stored plan does it; runs list both", async () => {
    const dry = await a.call("POST", "/api/pairs/re-cc/sync", { dry_run: true });
    expect(dry.statusCode).toBe(200);
    const report = dry.json<{ report: { plan_id: string; run_id: string; dry_run: boolean } }>().report;
    expect(report.dry_run).toBe(true);
    expect(a.h.ccContact(a.h.ccMain, "ada@example.org")).toBeUndefined();

    const detail = await a.call("GET", `/api/runs/${report.run_id}`);
    expect(detail.statusCode).toBe(200);
    const d = detail.json();
    expect(d.run).toMatchObject({ id: report.run_id, kind: "dry_run", status: "succeeded" });
    expect(d.plan).toMatchObject({ id: report.plan_id, pending_operations: 1 });
    expect(d.plan.summary.gains).toEqual({ "cc-main": 2, "cc-appeals": 0 });
    expect(d.plan.summary.counts.skipped["cc-main"]).toEqual({ opted_out: 1, no_primary_email: 1 });
    expect(d.plan.summary.operations).toEqual([
      expect.objectContaining({
        kind: "upsert_contacts",
        connection_id: "cc-main",
        contacts: 2,
        reason: expect.objectContaining({ code: "new_contacts" }),
      }),
    ]);
    expect(d.outcomes).toEqual({ pending: 1 });
    const grace = await contactIdOf("grace@example.org");
    expect(d.contacts[grace]).toEqual({ name: "Grace Hopper", email: "grace@example.org" });

    a.h.advance(10_000);
    const applied = await a.call("POST", `/api/plans/${report.plan_id}/apply`);
    expect(applied.statusCode).toBe(200);
    expect(applied.json().report).toMatchObject({ status: "succeeded", operations: 1, stale: [] });
    expect(a.h.ccContact(a.h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("implicit");
    expect(a.h.ccContact(a.h.ccMain, "grace@example.org")).toBeUndefined();
    expect((await a.call("GET", `/api/runs/${report.run_id}`)).json().outcomes).toEqual({});

    const runs = (await a.call("GET", "/api/runs?limit=5")).json<{ runs: { kind: string }[] }>().runs;
    expect(runs.map((r) => r.kind)).toEqual(["sync", "dry_run"]);
    expect((await a.call("GET", "/api/runs?limit=1&pair=re-cc")).json().runs).toHaveLength(1);
    expect((await a.call("POST", "/api/plans/plan_nope/apply")).json()).toMatchObject({
      code: "plan_not_found",
    });
    expect((await a.call("GET", "/api/runs/run_nope")).statusCode).toBe(404);
    expect((await a.call("POST", "/api/pairs/nope/sync", {})).json()).toMatchObject({
      code: "pair_not_found",
    });
  });

  it("the overview shows each connection's health, budget and queue, the pairs' runs and the opt-out lag", async () => {
    // Before any plan of the pair, no count of its contacts.
    expect((await a.call("GET", "/api/overview")).json().pairs[0].contacts).toBeNull();
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    a.h.advance(60_000);
    await a.h.ccAct(a.h.ccMain, "unsubscribe", "ada@example.org");
    a.h.advance(30_000);
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    expect((await a.h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(true);

    const res = await a.call("GET", "/api/overview");
    expect(res.statusCode).toBe(200);
    const o = res.json();
    expect(o.connections.map((c: { id: string; role: string }) => [c.id, c.role])).toEqual([
      ["re-nxt", "crm"],
      ["cc-main", "email_platform"],
      ["cc-appeals", "email_platform"],
    ]);
    const cc = o.connections[1];
    expect(cc.health.status).toBe("ok");
    expect(cc.budget.daily_quota).toBe(10_000);
    expect(cc.budget.used_today).toBeGreaterThan(0);
    expect(cc.budget.remaining).toBe(10_000 - cc.budget.used_today);
    expect(cc.queued_operations).toBe(0);
    expect(o.pairs[0]).toMatchObject({ id: "re-cc", crm: "re-nxt", running: false });
    expect(o.pairs[0].last_run).toMatchObject({ kind: "sync", status: "succeeded" });
    expect(o.pairs[0].next_run_at).not.toBeNull();
    // No poll has found the plan standing since that run (see the end).
    expect(o.pairs[0].last_checked_at).toBeNull();
    // The contacts its last whole plan covered: every contact linked to one of the pair's systems.
    const linked = await a.h.store.db
      .selectFrom("links")
      .select("contact_id")
      .distinct()
      .where("connection_id", "in", ["re-nxt", "cc-main", "cc-appeals"])
      .execute();
    expect(linked.length).toBeGreaterThan(1);
    expect(o.pairs[0].contacts).toBe(linked.length);
    expect(o.propagation_lag.count).toBe(1);
    expect(o.propagation_lag.before_watch).toBe(0);
    expect(o.propagation_lag.p50_ms).toBeGreaterThanOrEqual(30_000);
    expect(o.propagation_lag.p99_ms).toBe(o.propagation_lag.p50_ms);
    expect(o.propagation_lag.window_hours).toBe(24);
    expect(o.legal_clocks.map((c: { limit_ms: number }) => c.limit_ms)).toEqual([
      2 * 86_400_000,
      14 * 86_400_000,
      14 * 86_400_000,
    ]);
    // Counted in business days; the one opt-out was applied in time and none is pending.
    expect(o.legal_clocks[1]).toMatchObject({
      days: 10,
      unit: "business_days",
      applied_late: 0,
      pending: 0,
      due_soon: 0,
      breached: 0,
    });
    expect(o).toMatchObject({ inbox_pending: 0, review_open: 0 });

    const charts = await a.call("GET", "/api/charts/daily?days=3");
    const days = charts.json().days;
    expect(days.map((d: { date: string }) => d.date)).toEqual(["2026-05-30", "2026-05-31", "2026-06-01"]);
    expect(days[2].operations).toEqual({ upsert_contacts: 1, record_opt_out: 1 });
    expect(days[2].opt_outs_applied).toBe(1);
    expect(days[2].lag_p50_ms).toBe(o.propagation_lag.p50_ms);
    expect(days[2].api_calls["cc-main"]).toBeGreaterThan(0);
    expect(days[0]).toMatchObject({ operations: {}, opt_outs_applied: 0, lag_p50_ms: null, api_calls: {} });

    // The same facts as Prometheus metrics.
    const metrics = await a.app.inject({ method: "GET", url: "/metrics" });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers["content-type"]).toContain("text/plain");
    const text = metrics.body;
    expect(text).toContain('concord_runs_total{pair="re-cc",kind="sync",status="succeeded"} 2');
    expect(text).toMatch(/concord_api_calls_total\{connection="cc-main",status="200"\} \d+/);
    expect(text).toMatch(/concord_api_budget_remaining\{connection="cc-main"\} \d+/);
    expect(text).toContain(
      'concord_operations{connection="re-nxt",kind="record_opt_out",status="succeeded"} 1',
    );
    expect(text).toContain('concord_connection_health{connection="cc-main",status="ok"} 1');
    expect(text).toContain('concord_opt_out_propagation_lag_seconds_count{connection="re-nxt"} 1');
    expect(text).toContain('concord_opt_out_propagation_lag_seconds_bucket{le="60",connection="re-nxt"} 1');
    expect(text).toContain("concord_webhook_inbox_pending 0");
    expect(text).toContain("concord_review_items_open 0");
    expect(text).toContain(`concord_pair_contacts{pair="re-cc"} ${linked.length}`);
    // Scraped again, an opt-out is not observed twice.
    const again = (await a.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(again).toContain('concord_opt_out_propagation_lag_seconds_count{connection="re-nxt"} 1');

    // Polls until one finds nothing new: it makes no run, and the overview says when it checked.
    let checked: string | null = null;
    for (let i = 0; i < 5 && checked === null; i += 1) {
      a.h.advance(61_000);
      await a.runtime.tick();
      checked = (await a.call("GET", "/api/overview")).json().pairs[0].last_checked_at;
    }
    expect(checked).toBe(a.h.now().toISOString());
  });

  it("an opt-out made before the pair's first run counts its lag from that run, and is counted apart", async () => {
    await a.h.seedCc(a.h.ccMain, [
      { email_address: { address: "bob@example.org", permission_to_send: "implicit" }, list_memberships: [] },
    ]);
    await a.h.ccAct(a.h.ccMain, "unsubscribe", "bob@example.org");
    a.h.advance(3 * 86_400_000); // Concord is installed three days later
    await a.signIn(); // the session idled out meanwhile
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    expect((await a.h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`)).requests_no_email).toBe(true);
    const lag = (await a.call("GET", "/api/overview")).json().propagation_lag;
    expect(lag).toMatchObject({ count: 1, before_watch: 1 });
    expect(lag.max_ms).toBeLessThan(60_000);
  });

  it("people: search by name or address, and one person's timeline, links and lists", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const byName = (await a.call("GET", "/api/people?q=LOVE")).json().people;
    expect(byName).toEqual([
      {
        contact_id: await contactIdOf("ada@example.org"),
        name: "Ada Lovelace",
        email: "ada@example.org",
        type: "person",
      },
    ]);
    expect((await a.call("GET", "/api/people?q=ada%20love")).json().people).toHaveLength(1);
    const byAddress = (await a.call("GET", "/api/people?q=example.org")).json().people;
    expect(byAddress.map((p: { name: string }) => p.name).sort()).toEqual([
      "Ada Lovelace",
      "Bob Example",
      "Grace Hopper",
    ]);
    expect((await a.call("GET", "/api/people?q=%25")).json().people).toEqual([]); // % is literal

    const grace = await contactIdOf("grace@example.org");
    const res = await a.call("GET", `/api/people/${grace}`);
    expect(res.statusCode).toBe(200);
    const p = res.json();
    expect(p.contact).toEqual({
      id: grace,
      type: "person",
      name: "Grace Hopper",
      primary_email: "grace@example.org",
      erased: false,
    });
    expect(p.note).toBeNull();
    expect(p.explanation.contact.id).toBe(grace);
    expect(p.explanation.timeline).toEqual([expect.objectContaining({ kind: "opt_out" })]);
    expect(p.links).toEqual([expect.objectContaining({ connection_id: "re-nxt", external_id: re["grace"] })]);
    expect(p.list_memberships).toEqual([
      {
        connection_id: "re-nxt",
        external_id: re["grace"],
        list_id: RE_LISTS.news,
        list_name: "Monthly newsletter",
        do_not_contact: false,
      },
    ]);

    const ada = (await a.call("GET", `/api/people/${await contactIdOf("ada@example.org")}`)).json();
    expect(ada.list_memberships).toContainEqual(
      expect.objectContaining({ connection_id: "cc-main", list_name: "Newsletter" }),
    );

    const alanRow = await a.h.store.links.find("re-nxt", re["alan"] ?? "");
    const alan = (await a.call("GET", `/api/people/${alanRow?.contact_id ?? ""}`)).json();
    expect(alan.explanation).toBeNull();
    expect(alan.note).toContain("no email address");
    expect(alan.list_memberships).toHaveLength(1);
    expect((await a.call("GET", "/api/people/con_nope")).json()).toMatchObject({ code: "contact_not_found" });
  });

  it("erasure: previewed, then done; the person is gone from search and their page says erased", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const ada = await contactIdOf("ada@example.org");
    const missing = await a.call("POST", "/api/erasures", { email: "ada@example.org" });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().message).toContain("requested_by");
    const bad = await a.call("POST", "/api/erasures", { email: "not an address", requested_by: "Ops" });
    expect(bad.json()).toMatchObject({ code: "invalid_email" });

    const preview = await a.call("POST", "/api/erasures", {
      email: "ada@example.org",
      requested_by: "Ops",
      dry_run: true,
    });
    expect(preview.statusCode).toBe(200);
    expect(preview.json().report).toMatchObject({ status: "planned", contact_ids: [ada] });
    expect((await a.call("GET", "/api/people?q=lovelace")).json().people).toHaveLength(1);
    // A preview asked for in the query (where the route has none) is refused, and erases nothing.
    const asQuery = await a.call("POST", "/api/erasures?dry_run=true", {
      email: "ada@example.org",
      requested_by: "Ops",
    });
    expect(asQuery.statusCode).toBe(400);
    expect(asQuery.json()).toMatchObject({ issues: [{ where: "query", path: "dry_run" }] });
    expect((await a.call("GET", "/api/people?q=lovelace")).json().people).toHaveLength(1);

    const done = await a.call("POST", "/api/erasures", {
      email: "ada@example.org",
      requested_by: "Ops",
      reference: "ticket 4411",
    });
    expect(done.json().report).toMatchObject({ status: "completed", contact_ids: [ada] });
    expect((await a.call("GET", "/api/people?q=lovelace")).json().people).toEqual([]);
    expect((await a.call("GET", `/api/people/${ada}`)).json().contact).toMatchObject({ erased: true });
  });

  it("erasure of an address two contacts hold answers 409 several_holders until the request says all_holders", async () => {
    await a.h.seedRe([
      individual("smiths@example.org", "Jo", "Smith"),
      individual("smiths@example.org", "Sam", "Smith"),
    ]);
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const request = { email: "smiths@example.org", requested_by: "Ops" };
    const refused = await a.call("POST", "/api/erasures", request);
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: "several_holders" });
    expect(refused.json().message).toContain("2 contacts hold this address");
    expect((await a.call("GET", "/api/people?q=smiths")).json().people).toHaveLength(2);
    const done = await a.call("POST", "/api/erasures", { ...request, all_holders: true });
    expect(done.statusCode).toBe(200);
    expect(done.json().report).toMatchObject({ status: "completed" });
    expect(done.json().report.contact_ids).toHaveLength(2);
    expect((await a.call("GET", "/api/people?q=smiths")).json().people).toEqual([]);
  });

  it("erasure waits for a sync in flight: what that sync sends is erased with the rest, nothing comes back", async () => {
    // The first sync's import into Constant Contact is slow: the erasure arrives while it is out.
    const slow = {
      status: 0,
      count: 1,
      path_prefix: "/v3/activities/contacts_json_import",
      methods: ["POST"],
      latency_ms: 1_500,
    };
    a.h.ccMain.kit.faults.push(slow);
    const syncing = a.call("POST", "/api/pairs/re-cc/sync", {});
    while (slow.count > 0) await new Promise((resolve) => setTimeout(resolve, 10));

    const erased = await a.call("POST", "/api/erasures", { email: "ada@example.org", requested_by: "Ops" });
    expect(erased.statusCode).toBe(200);
    expect((await syncing).statusCode).toBe(200);
    // The sync went first: Ada reached Constant Contact, and the erasure deleted her there too.
    expect(erased.json().report).toMatchObject({ status: "completed" });
    expect(erased.json().report.systems).toContainEqual(
      expect.objectContaining({ connection_id: "cc-main", status: "erased" }),
    );
    expect(a.h.ccContact(a.h.ccMain, "ada@example.org")?.deleted_at).toEqual(expect.any(String));
    // Nothing of her is left or comes back: no link, no snapshot, even after another sync.
    const ada = erased.json().report.contact_ids[0] as string;
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    expect(await a.h.store.links.forContact(ada)).toEqual([]);
    expect((await a.call("GET", "/api/people?q=lovelace")).json().people).toEqual([]);
    expect(a.h.ccContact(a.h.ccMain, "ada@example.org")?.deleted_at).toEqual(expect.any(String));
  });

  it("the compliance report: per legal clock, opt-outs applied, lag in the clock's unit, late and pending; as CSV too", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    a.h.advance(60_000);
    await a.h.ccAct(a.h.ccMain, "unsubscribe", "ada@example.org");
    a.h.advance(30_000);
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const res = await a.call("GET", "/api/compliance?days=7");
    expect(res.statusCode).toBe(200);
    const r = res.json();
    expect(r.clocks.map((c: { key: string }) => c.key)).toEqual(["mailbox_providers", "can_spam", "casl"]);
    const casl = r.clocks[2];
    expect(casl).toMatchObject({
      unit: "business_days",
      days: 10,
      applied: 1,
      applied_late: 0,
      pending: 0,
      pending_breached: 0,
    });
    expect(casl.lag_days.p50).toBeGreaterThanOrEqual(0);
    expect(casl.lag_days.p50).toBeLessThan(1);
    const csv = await a.call("GET", "/api/compliance.csv?days=7");
    expect(csv.headers["content-type"]).toContain("text/csv");
    const lines = csv.body.trim().split("\n");
    expect(lines[0]).toBe(
      "clock,limit,from,to,applied,lag_p50_days,lag_p90_days,lag_p99_days,lag_max_days,applied_late,pending,pending_breached",
    );
    expect(lines[3]).toMatch(/^casl,10 business days,/);
    expect((await a.call("GET", "/api/compliance?days=0")).statusCode).toBe(400);
  });

  it("proof for an auditor: a signed bundle that checks on its own, and a printable page", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const ada = await contactIdOf("ada@example.org");
    const res = await a.call("GET", `/api/people/${ada}/proof`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-disposition"]).toContain(`concord-proof-${ada}.json`);
    const doc = JSON.parse(res.body);
    expect(doc.bundle).toMatchObject({
      format: "concord.proof.v1",
      contact: { id: ada, primary_email: "ada@example.org" },
    });
    expect(verifyProof(doc)).toEqual([]);
    const page = await a.call("GET", `/api/people/${ada}/proof.html`);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.body).toContain("Proof of consent");
    expect(page.body).toContain(doc.signature.value);
    expect((await a.call("GET", "/api/people/con_nobody/proof")).statusCode).toBe(404);
  });

  it("a person's links: the one-click URL and the headers for an email to them", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const ada = await contactIdOf("ada@example.org");
    const res = await a.call("GET", `/api/people/${ada}/links`);
    expect(res.statusCode).toBe(200);
    const links = res.json();
    expect(links.one_click_url).toMatch(/^https:\/\/concord\.example\.org\/l\/u\//);
    expect(links).toMatchObject({
      contact_id: ada,
      list_unsubscribe: `<${links.one_click_url}>`,
      list_unsubscribe_post: "List-Unsubscribe=One-Click",
    });
    expect((await a.call("GET", "/api/people/con_nobody/links")).statusCode).toBe(404);
  });

  it("an operator override needs the person's written request; with it, it is recorded and carried at once", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    a.h.advance(60_000);
    await a.h.ccAct(a.h.ccMain, "unsubscribe", "ada@example.org");
    a.h.advance(30_000);
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    expect((await a.h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(true);
    a.h.advance(60_000);
    const ada = await contactIdOf("ada@example.org");
    const bare = await a.call("POST", `/api/people/${ada}/overrides`, {
      request_reference: "",
      requested_at: a.h.now().toISOString(),
      recorded_by: "Ops",
    });
    expect(bare.statusCode).toBe(400);
    expect(bare.json()).toMatchObject({ code: "evidence_required" });
    expect(
      (
        await a.call("POST", `/api/people/con_nobody/overrides`, {
          request_reference: "t1",
          requested_at: a.h.now().toISOString(),
          recorded_by: "Ops",
        })
      ).statusCode,
    ).toBe(404);
    const topic = await a.call("POST", `/api/people/${ada}/overrides`, {
      topic: "nope",
      request_reference: "t1",
      requested_at: a.h.now().toISOString(),
      recorded_by: "Ops",
    });
    expect(topic.json()).toMatchObject({ code: "unknown_topic" });
    // When the person asked is part of the request, never the moment it is recorded.
    const undated = await a.call("POST", `/api/people/${ada}/overrides`, {
      request_reference: "ticket 4411",
      recorded_by: "Ops",
    });
    expect(undated.statusCode).toBe(400);
    expect(JSON.stringify(undated.json())).toContain("requested_at");
    const done = await a.call("POST", `/api/people/${ada}/overrides`, {
      request_reference: "ticket 4411",
      request_text: "Send me the newsletter again.",
      requested_at: a.h.now().toISOString(),
      recorded_by: "Ops",
    });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ recorded: "appended", now: { sendable: true } });
    // No poll or sync asked for: the request reaches the CRM, and Constant Contact sends Ada its own
    // confirmation email (only she may resubscribe there).
    await a.runtime.idle();
    expect((await a.h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(
      false,
    );
    expect(a.h.ccMain.store.confirmationEmails.filter((m) => m.email === "ada@example.org")).toHaveLength(1);
  });

  it("reconciliation: differences with causes, fixed from the API, exported as CSV", async () => {
    expect((await a.call("GET", "/api/reconciliation")).json()).toEqual({ reports: [], run_at: null });
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    await a.h.reAct({ action: "set_requests_no_email", constituent_id: re["bob"] });
    a.h.advance(60_000);

    const run = await a.call("POST", "/api/reconciliation", { fix: false });
    expect(run.statusCode).toBe(200);
    const [report] = run.json().reports;
    expect(report).toMatchObject({ pair_id: "re-cc", status: "succeeded", remaining: null, error: null });
    expect(report.differences).toEqual([
      expect.objectContaining({
        kind: "opt_out_missing",
        email: "bob@example.org",
        connection_id: "cc-main",
        scope: { kind: "global" },
        fixable: true,
      }),
    ]);
    expect(report.opt_outs_by_connection).toEqual({ "re-nxt": 2, "cc-main": 0, "cc-appeals": 0 });
    expect(a.h.ccContact(a.h.ccMain, "bob@example.org")?.email_address?.permission_to_send).toBe("implicit");

    const latest = (await a.call("GET", "/api/reconciliation")).json();
    expect(latest.reports).toEqual([report]);
    expect(latest.run_at).toBe(report.finished_at);

    const csv = await a.call("GET", "/api/reconciliation.csv");
    expect(csv.statusCode).toBe(200);
    expect(csv.headers["content-type"]).toContain("text/csv");
    expect(csv.headers["content-disposition"]).toContain("concord-differences-2026-06-01.csv");
    const lines = csv.body.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "pair_id,email,contact_id,connection_id,scope,kind,fixable,system_shows,rules_say,cause",
    );
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^re-cc,bob@example\.org,con_\w+,cc-main,global,opt_out_missing,yes,/);

    a.h.advance(1_000);
    const fixed = (await a.call("POST", "/api/reconciliation", { fix: true, pair: "re-cc" })).json();
    expect(fixed.reports[0].remaining).toEqual([]);
    expect(a.h.ccContact(a.h.ccMain, "bob@example.org")?.email_address?.permission_to_send).toBe(
      "unsubscribed",
    );
    expect((await a.call("GET", "/api/reconciliation.csv")).body.trimEnd().split("\n")).toHaveLength(1);
    expect((await a.call("POST", "/api/reconciliation", { pair: "nope" })).json()).toMatchObject({
      code: "pair_not_found",
    });
  });

  it("answers bad input with invalid_request saying where and what, unknown routes with not_found", async () => {
    const bad = await a.call("GET", "/api/runs?limit=abc");
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({
      code: "invalid_request",
      message:
        'The request is not valid: query.limit: expected a whole number from 1 to 200 in decimal digits (got "abc").',
      issues: [
        {
          where: "query",
          path: "limit",
          message: 'expected a whole number from 1 to 200 in decimal digits (got "abc")',
        },
      ],
    });
    // Only decimal digits: a hexadecimal, an exponent, a sign, a fraction or a blank is refused,
    // never read as some other number.
    for (const limit of ["0x10", "1e1", "+5", "5.0", "", " 5"]) {
      const res = await a.call("GET", `/api/runs?limit=${encodeURIComponent(limit)}`);
      expect(res.statusCode, limit).toBe(400);
      expect(res.json().issues[0], limit).toMatchObject({ where: "query", path: "limit" });
    }
    expect((await a.call("GET", "/api/runs?limit=05")).statusCode).toBe(200);
    expect((await a.call("GET", "/api/runs?limit=500")).json().issues[0]).toMatchObject({
      where: "query",
      path: "limit",
    });
    expect((await a.call("GET", "/api/people")).json().issues[0]).toMatchObject({
      where: "query",
      path: "q",
    });
    expect((await a.call("GET", "/api/runs?colour=red")).json().issues[0]).toMatchObject({
      message: 'Unrecognized key: "colour"',
    });
    const body = await a.call("POST", "/api/pairs/re-cc/sync", { dry_run: "yes" });
    expect(body.json()).toMatchObject({
      code: "invalid_request",
      issues: [{ where: "body", path: "dry_run" }],
    });
    // Input a route does not declare is refused, never dropped: a preview asked for in the query
    // of a route that has none would otherwise run for real.
    const runsAtFirst = (await a.call("GET", "/api/runs")).json().runs.length;
    const asQuery = await a.call("POST", "/api/pairs/re-cc/sync?dry_run=true", {});
    expect(asQuery.statusCode).toBe(400);
    expect(asQuery.json()).toEqual({
      code: "invalid_request",
      message: "The request is not valid: query.dry_run: this route takes no query parameters.",
      issues: [{ where: "query", path: "dry_run", message: "this route takes no query parameters" }],
    });
    const applyWithBody = await a.call("POST", "/api/plans/plan_nope/apply", { dry_run: true });
    expect(applyWithBody.json()).toMatchObject({
      code: "invalid_request",
      issues: [{ where: "body", path: "dry_run", message: "this route takes no body" }],
    });
    expect((await a.call("POST", "/api/plans/plan_nope/apply", [])).json()).toMatchObject({
      code: "invalid_request",
      issues: [{ where: "body", path: "" }],
    });
    expect((await a.call("GET", "/api/overview?x=1")).json()).toMatchObject({
      issues: [{ where: "query", path: "x" }],
    });
    expect((await a.call("GET", "/api/runs")).json().runs.length).toBe(runsAtFirst);
    // A JSON null is not an empty object: refused, and nothing runs.
    const runsBefore = (await a.call("GET", "/api/runs")).json().runs.length;
    const sentNull = await a.call("POST", "/api/pairs/re-cc/sync", "null", {
      headers: { "content-type": "application/json" },
    });
    expect(sentNull.statusCode).toBe(400);
    expect(sentNull.json()).toMatchObject({ code: "invalid_request", issues: [{ where: "body" }] });
    expect((await a.call("GET", "/api/runs")).json().runs.length).toBe(runsBefore);
    const resolve = await a.call("POST", "/api/review/rev_x/resolve", { action: "merge" });
    expect(resolve.json()).toMatchObject({
      code: "invalid_request",
      issues: [{ where: "body", path: "action" }],
    });
    const json = await a.app.inject({
      method: "POST",
      url: "/api/session",
      headers: { "content-type": "application/json" },
      payload: "{not json",
    });
    expect(json.statusCode).toBe(400);
    expect(json.json()).toMatchObject({ code: "invalid_json" });
    // A form where JSON is taken: the answer names what was sent and what is taken.
    const form = await a.call("POST", "/api/reconciliation", "pair=re-cc", {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(form.statusCode).toBe(415);
    expect(form.json()).toEqual({
      code: "unsupported_media_type",
      message:
        'This endpoint takes application/json; the request\'s body is "application/x-www-form-urlencoded".',
    });
    // An id is at most 200 characters: refused as such, never looked up and echoed back.
    const long = await a.call("POST", "/api/reconciliation", { pair: "y".repeat(5_000) });
    expect(long.statusCode).toBe(400);
    expect(long.json()).toMatchObject({ code: "invalid_request", issues: [{ where: "body", path: "pair" }] });
    expect(long.body.length).toBeLessThan(1_000);
    expect(
      (await a.call("POST", "/api/review/rev_x/resolve", { action: "link", contact_id: "" })).json(),
    ).toMatchObject({ code: "invalid_request", issues: [{ where: "body", path: "contact_id" }] });
    expect((await a.call("GET", "/api/nothing-here")).json()).toEqual({
      code: "not_found",
      message: "No route for GET /api/nothing-here.",
    });
  });

  it("refuses a body larger than the server's limit with 413", async () => {
    const res = await a.call("POST", "/api/reconciliation", { pair: "x".repeat(1_100_000) });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: "body_too_large" });
  });
});

describeOnBackends("the read routes' queries", (backend) => {
  beforeEach(async () => {
    a = await startApiHarness({ backend });
    await seed();
    await a.signIn();
  });
  afterEach(async () => {
    await a.close();
  });

  it("answer over a synced pair", async () => {
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    a.h.advance(60_000);
    await a.h.ccAct(a.h.ccMain, "unsubscribe", "bob@example.org");
    a.h.advance(5_000);
    const synced = (await a.call("POST", "/api/pairs/re-cc/sync", {})).json().report;
    const overview = (await a.call("GET", "/api/overview")).json();
    expect(overview.propagation_lag).toMatchObject({ count: 1, p50_ms: expect.any(Number) });
    expect(overview.connections.map((c: { queued_operations: number }) => c.queued_operations)).toEqual([
      0, 0, 0,
    ]);
    const runs = (await a.call("GET", "/api/runs")).json().runs;
    expect(runs[0].id).toBe(synced.run_id);
    const detail = (await a.call("GET", `/api/runs/${synced.run_id as string}`)).json();
    expect(detail.outcomes).toEqual({ succeeded: 1 });
    expect(Object.values(detail.contacts)).toContainEqual({
      name: "Grace Hopper",
      email: "grace@example.org",
    });
    expect((await a.call("GET", "/api/people?q=HOP")).json().people).toHaveLength(1);
    expect((await a.call("GET", "/api/people?q=b_b")).json().people).toEqual([]); // _ is literal
    const day = (await a.call("GET", "/api/charts/daily?days=1")).json().days[0];
    expect(day.operations).toEqual({ upsert_contacts: 1, record_opt_out: 1 });
    expect((await a.call("GET", "/api/review")).json().items).toEqual([]);
    const metrics = (await a.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toContain(
      'concord_operations{connection="cc-main",kind="upsert_contacts",status="succeeded"} 1',
    );
  });
});

/**
 * Two people of the CRM at one address, and one Constant Contact contact there, synced: each side
 * has a review item (the platform's record unlinked, the CRM's second record apart).
 */
async function twoPatsAtOneAddress(a: ApiHarness) {
  const [one, two] = await a.h.seedRe([
    individual("shared@example.org", "Pat", "One"),
    individual("shared@example.org", "Pat", "Two"),
  ]);
  await a.h.seedCc(a.h.ccMain, [
    { email_address: { address: "shared@example.org", permission_to_send: "implicit" } },
  ]);
  await a.call("POST", "/api/pairs/re-cc/sync", {});
  const items = (await a.call("GET", "/api/review")).json().items as { id: string; connection_id: string }[];
  const platform = items.find((i) => i.connection_id === "cc-main");
  if (!platform) throw new Error(`expected a platform review item, got ${JSON.stringify(items)}`);
  return { one: one ?? "", two: two ?? "", platform };
}

describe("the review queue", () => {
  beforeEach(async () => {
    a = await startApiHarness();
    await a.signIn();
  });
  afterEach(async () => {
    await a.close();
  });

  it("refuses to link a record to an erased contact: that would store the person again", async () => {
    const { one, platform } = await twoPatsAtOneAddress(a);
    const patOne = (await a.h.store.links.find("re-nxt", one))?.contact_id ?? "";
    expect(await a.h.store.contacts.erase(patOne)).toBe(true);
    const res = await a.call("POST", `/api/review/${platform.id}/resolve`, {
      action: "link",
      contact_id: patOne,
    });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: "contact_erased" });
    const ccId = a.h.ccContact(a.h.ccMain, "shared@example.org")?.contact_id ?? "";
    expect(await a.h.store.links.find("cc-main", ccId)).toBeUndefined();
  });

  it("a confirmed sign-up at an address others hold stays with its own contact: it is kept apart or dismissed, never linked", async () => {
    const made = await a.h.store.contacts.create({ type: "person", primary_email: "old@example.org" });
    const other = await a.h.store.contacts.create({ type: "person", primary_email: "new@example.org" });
    const { item } = await a.h.store.reviewItems.open({
      key: "signup:sgn_1",
      kind: "ambiguous_identity",
      contact_id: made.id,
      detail: {
        reason: "signup_at_another_contacts_secondary",
        email: "old@example.org",
        source: "signup",
        signup_id: "sgn_1",
        candidate_contact_ids: [other.id],
      },
    });
    const link = await a.call("POST", `/api/review/${item.id}/resolve`, {
      action: "link",
      contact_id: other.id,
    });
    expect(link.statusCode).toBe(409);
    expect(link.json()).toMatchObject({ code: "signup_stays_apart" });
    const apart = await a.call("POST", `/api/review/${item.id}/resolve`, { action: "separate" });
    expect(apart.statusCode).toBe(200);
    expect(apart.json()).toMatchObject({
      item: { status: "resolved", resolution: { action: "separate", contact_id: made.id } },
      reread: null,
    });
  });

  it("an ambiguous platform record is linked to the person it is, and the item closes", async () => {
    const { one, two } = await twoPatsAtOneAddress(a);
    await a.h.ccAct(a.h.ccMain, "unsubscribe", "shared@example.org");
    a.h.advance(1_000);
    await a.call("POST", "/api/pairs/re-cc/sync", {});

    const items = (await a.call("GET", "/api/review")).json().items as {
      id: string;
      connection_id: string;
      detail: { candidate_contact_ids: string[] };
    }[];
    const platform = items.find((i) => i.connection_id === "cc-main");
    const crm = items.find((i) => i.connection_id === "re-nxt");
    if (!platform || !crm) throw new Error(`expected a review item per side, got ${JSON.stringify(items)}`);
    const patTwo = (await a.h.store.links.find("re-nxt", two))?.contact_id ?? "";
    expect(platform.detail.candidate_contact_ids).toContain(patTwo);
    expect((await a.call("GET", "/api/overview")).json().review_open).toBe(items.length);

    const notCandidate = await a.call("POST", `/api/review/${platform.id}/resolve`, {
      action: "link",
      contact_id: "con_someone_else",
    });
    expect(notCandidate.json()).toMatchObject({ code: "not_a_candidate" });

    const res = await a.call("POST", `/api/review/${platform.id}/resolve`, {
      action: "link",
      contact_id: patTwo,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      item: { id: platform.id, status: "resolved", resolution: { action: "link", contact_id: patTwo } },
      reread: { ok: true, message: null },
    });
    const ccId = a.h.ccContact(a.h.ccMain, "shared@example.org")?.contact_id ?? "";
    expect((await a.h.store.links.find("cc-main", ccId))?.contact_id).toBe(patTwo);

    // No opt-out was lost while it waited: the address's unsubscribe reached everyone who may hold it.
    for (const id of [one, two])
      expect((await a.h.reGet(`/constituent/v1/constituents/${id}`)).requests_no_email).toBe(true);
    // From now on the record is Pat Two's: the person page shows it, and a sync finds nothing to guess.
    const page = (await a.call("GET", `/api/people/${patTwo}`)).json();
    expect(page.links.map((l: { connection_id: string }) => l.connection_id).sort()).toEqual([
      "cc-main",
      "re-nxt",
    ]);
    a.h.advance(1_000);
    const next = (await a.call("POST", "/api/pairs/re-cc/sync", {})).json().report;
    expect(next.pulls.every((p: { review_items_opened: number }) => p.review_items_opened === 0)).toBe(true);

    // The CRM's own record at the address has a contact of its own; linking it to the candidate, who
    // holds the CRM's other record there, would merge two of the CRM's people into one contact:
    // refused, nothing moved.
    const [candidate] = crm.detail.candidate_contact_ids;
    const theirs = (await a.h.store.links.forContact(candidate ?? "")).find(
      (l) => l.connection_id === "re-nxt",
    );
    const crmItem = (await a.call("GET", "/api/review"))
      .json()
      .items.find((i: { id: string }) => i.id === crm.id) as { external_id: string; contact_id: string };
    const merge = await a.call("POST", `/api/review/${crm.id}/resolve`, {
      action: "link",
      contact_id: candidate,
    });
    expect(merge.statusCode).toBe(409);
    expect(merge.json()).toMatchObject({
      code: "contact_has_record_there",
      message: expect.stringContaining(
        `already holds re-nxt record ${theirs?.external_id ?? "?"}: two records of one system are two people`,
      ),
    });
    expect((await a.h.store.links.find("re-nxt", crmItem.external_id))?.contact_id).toBe(crmItem.contact_id);

    const dismissed = await a.call("POST", `/api/review/${crm.id}/resolve`, {
      action: "dismiss",
      note: "two people",
    });
    expect(dismissed.json().item).toMatchObject({ status: "dismissed", resolution: { note: "two people" } });
    expect(
      (await a.call("POST", `/api/review/${crm.id}/resolve`, { action: "dismiss" })).json(),
    ).toMatchObject({
      code: "review_item_closed",
    });
    expect((await a.call("GET", "/api/review")).json().items).toEqual([]);
    expect((await a.call("GET", "/api/review?status=resolved")).json().items).toHaveLength(1);
    expect((await a.call("POST", "/api/review/rev_nope/resolve", { action: "dismiss" })).statusCode).toBe(
      404,
    );
  });

  it("a CRM record may join a contact whose record there was deleted: the deleted one is no second person", async () => {
    await twoPatsAtOneAddress(a);
    const crm = (
      (await a.call("GET", "/api/review")).json().items as {
        id: string;
        connection_id: string;
        detail: { candidate_contact_ids: string[] };
      }[]
    ).find((i) => i.connection_id === "re-nxt");
    if (!crm) throw new Error("expected a review item of the CRM's record");
    const [candidate] = crm.detail.candidate_contact_ids;
    const theirs = (await a.h.store.links.forContact(candidate ?? "")).find(
      (l) => l.connection_id === "re-nxt",
    );
    // The candidate's own record is deleted in the CRM, and Concord hears of it.
    await a.h.reAct({ action: "delete_constituent", constituent_id: theirs?.external_id });
    a.h.advance(1_000);
    const connection = a.h.connections.get("re-nxt");
    if (!connection) throw new Error("no re-nxt connection");
    await recordWebhookChanges(
      { store: a.h.store, connection, config: a.h.config, pair: a.h.pair, now: a.h.now },
      [
        {
          event_id: "gone",
          type: "constituent.deleted",
          external_id: theirs?.external_id ?? "",
          occurred_at: a.h.now().toISOString(),
          change: "deleted",
        },
      ],
    );
    expect((await a.h.store.snapshots.get("re-nxt", theirs?.external_id ?? ""))?.payload).toMatchObject({
      deleted: true,
    });
    const res = await a.call("POST", `/api/review/${crm.id}/resolve`, {
      action: "link",
      contact_id: candidate,
    });
    expect(res.json()).toMatchObject({
      item: { status: "resolved", resolution: { action: "link", contact_id: candidate } },
    });
  });

  it("an ambiguous platform record kept apart becomes a contact of its own, linked", async () => {
    await a.h.seedRe([
      individual("shared@example.org", "Pat", "One"),
      individual("shared@example.org", "Pat", "Two"),
    ]);
    await a.h.seedCc(a.h.ccMain, [
      { email_address: { address: "shared@example.org", permission_to_send: "implicit" }, first_name: "P." },
    ]);
    await a.call("POST", "/api/pairs/re-cc/sync", {});
    const items = (await a.call("GET", "/api/review")).json().items as {
      id: string;
      connection_id: string;
    }[];
    const platform = items.find((i) => i.connection_id === "cc-main");
    const res = await a.call("POST", `/api/review/${platform?.id ?? ""}/resolve`, { action: "separate" });
    expect(res.statusCode).toBe(200);
    const own = res.json().item.resolution.contact_id as string;
    const ccId = a.h.ccContact(a.h.ccMain, "shared@example.org")?.contact_id ?? "";
    expect((await a.h.store.links.find("cc-main", ccId))?.contact_id).toBe(own);
    expect(await a.h.store.contacts.get(own)).toMatchObject({
      primary_email: "shared@example.org",
      given_name: "P.",
    });
  });
});

describe("the OpenAPI document", () => {
  beforeEach(async () => {
    a = await startApiHarness();
  });
  afterEach(async () => {
    await a.close();
  });

  it("is valid OpenAPI 3.1 and lists every route the server answers", async () => {
    const res = await a.app.inject({ method: "GET", url: "/openapi.json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe("3.1.0");
    await SwaggerParser.validate(structuredClone(doc));
    const paths = Object.keys(doc.paths).sort();
    expect(paths).toEqual(
      [
        "/api/charts/daily",
        "/api/compliance",
        "/api/compliance.csv",
        "/api/connections/{id}/callback",
        "/api/connections/{id}/connect",
        "/api/erasures",
        "/api/overview",
        "/api/people",
        "/api/people/{id}",
        "/api/people/{id}/links",
        "/api/people/{id}/proof",
        "/api/people/{id}/proof.html",
        "/api/people/{id}/overrides",
        "/api/pairs/{id}/sync",
        "/api/plans/{id}/apply",
        "/api/reconciliation",
        "/api/reconciliation.csv",
        "/api/review",
        "/api/review/{id}/resolve",
        "/api/runs",
        "/api/runs/{id}",
        "/api/session",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/readyz",
        "/webhooks/{connection}",
      ].sort(),
    );
    expect(Object.keys(doc.paths["/api/session"])).toEqual(["get", "post", "delete"]);
    expect(doc.paths["/api/runs"].get.parameters).toContainEqual(
      expect.objectContaining({ name: "limit", in: "query", required: false }),
    );
    expect(doc.paths["/api/review/{id}/resolve"].post.responses["403"].description).toContain("csrf_invalid");
    // Every documented /api route is answered (401 without a session, never 404).
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      if (!path.startsWith("/api/")) continue;
      for (const method of Object.keys(methods)) {
        const url = path.replaceAll("{id}", "x");
        const r = await a.app.inject({ method: method.toUpperCase() as "GET", url });
        // The Connect callback is public and always goes back to the overview (303).
        expect([200, 303, 400, 401], `${method} ${url}`).toContain(r.statusCode);
      }
    }
  });
});

describe("the built UI", () => {
  let dir: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "concord-ui-"));
    writeFileSync(join(dir, "index.html"), "<!doctype html><title>Concord</title>");
    writeFileSync(join(dir, "app-1a2b3c.js"), "console.log('ui')");
    a = await startApiHarness({ uiDir: dir });
  });
  afterEach(async () => {
    await a.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves its files, index.html for the UI's own paths, and JSON 404s for the API", async () => {
    const asset = await a.app.inject({ method: "GET", url: "/app-1a2b3c.js" });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers["cache-control"]).toContain("immutable");
    for (const url of ["/", "/people/con_123", "/runs"]) {
      const page = await a.app.inject({ method: "GET", url });
      expect(page.statusCode, url).toBe(200);
      expect(page.body).toContain("<title>Concord</title>");
    }
    const api = await a.app.inject({ method: "GET", url: "/api/nope" });
    expect(api.statusCode).toBe(404);
    expect(api.json()).toMatchObject({ code: "not_found" });
    expect((await a.app.inject({ method: "GET", url: "/healthz" })).json()).toMatchObject({ status: "ok" });
  });
});

const postgres = storeBackends().find((b) => b.name === "postgres");

// With real I/O between reading the item and closing it, two requests at once could each find it
// open (on SQLite's synchronous driver one runs to its end before the other starts).
describe.skipIf(postgres?.skip_reason !== undefined)("the review queue (PostgreSQL)", () => {
  it("two operators resolving one item at once: one resolution is made, the other is told the item closed", async () => {
    const a = await startApiHarness({ backend: postgres! });
    await a.signIn();
    try {
      const { one, two, platform } = await twoPatsAtOneAddress(a);
      const [patOne, patTwo] = await Promise.all(
        [one, two].map(async (id) => (await a.h.store.links.find("re-nxt", id))?.contact_id ?? ""),
      );
      // Both sent before either is answered: one links Pat One, the other Pat Two.
      const answers = await Promise.all(
        [patOne, patTwo].map((contact_id) =>
          a.call("POST", `/api/review/${platform.id}/resolve`, { action: "link", contact_id }),
        ),
      );
      expect(answers.map((r) => r.statusCode).sort()).toEqual([200, 409]);
      const won = answers.find((r) => r.statusCode === 200)!.json();
      expect(answers.find((r) => r.statusCode === 409)!.json()).toMatchObject({ code: "review_item_closed" });
      // The record is linked where the stored resolution says.
      const ccId = a.h.ccContact(a.h.ccMain, "shared@example.org")?.contact_id ?? "";
      expect((await a.h.store.links.find("cc-main", ccId))?.contact_id).toBe(won.item.resolution.contact_id);
    } finally {
      await a.close();
    }
  });
});
