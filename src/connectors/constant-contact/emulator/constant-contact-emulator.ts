/**
 * A local HTTP server that behaves like Constant Contact's V3 API (contacts, lists, bulk activities,
 * OAuth2 with PKCE, rate limits and consent rules), written from the vendor's documentation.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { randomUUID } from "node:crypto";
import {
  EmulatorControlError,
  createEmulatorKit,
  listenOnLoopback,
  type EmulatorClock,
  type EmulatorKit,
} from "../../emulator-kit/emulator-kit";
import { ActivityRunner } from "./activity-runner";
import { CallLimits } from "../../emulator-kit/call-limits";
import { OAuth2Server } from "../../emulator-kit/oauth2-server";
import {
  ALL_INCLUDES,
  ConstantContactStore,
  MAX_LISTS,
  MAX_LISTS_PER_CONTACT,
  PERMISSIONS,
  StoreError,
  SUB_RESOURCES,
  TOP_LEVEL_FIELDS,
  isContactOptOut,
  isOptedIn,
  isUnsubscribed,
  isValidEmail,
  renderActivity,
  renderContact,
  renderList,
  type OptOutMechanism,
  type Permission,
  type Source,
  type StoredContact,
} from "./constant-contact-store";
import {
  applySignUpExtras,
  applySubResources,
  applyTopLevel,
  asArray,
  bad,
  checkTopLevel,
  encodeCursor,
  matchesStatus,
  notFound,
  optionalString,
  pageAfter,
  parseCsv,
  parseDate,
  parseLimit,
  parseSubResources,
  pathOf,
  requireBody,
  requireIdArray,
  requireListName,
  requireObject,
  requirePermission,
  requireSource,
  scanPage,
  withCursor,
} from "./request-parsing";

/** Constant Contact's refresh tokens: rotating (each new set spends earlier ones) or long-lived. */
export type RefreshMode = "rotating" | "long_lived";

export type TokenResponse = {
  access_token: string;
  refresh_token?: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
};

const DEFAULT_SCOPES = ["contact_data", "offline_access"];
const REFRESH_TOKEN_LIFETIME_MS = 180 * 86_400_000;

export type ConstantContactEmulatorOptions = {
  now?: EmulatorClock;
  /** Requests per second per app (documented: 4). null turns the limit off. */
  rateLimitPerSecond?: number | null;
  /** Requests per UTC day (documented: 10,000). null turns the quota off. */
  dailyQuota?: number | null;
  /** Access token lifetime (documented: 24 hours). */
  accessTokenTtlSeconds?: number;
  /** Per app key: rotating (single-use refresh tokens) or long_lived (same refresh token returned). */
  refreshMode?: RefreshMode;
  /** The account's Confirmed Opt-in setting (affects sign-up form contacts). */
  confirmedOptIn?: boolean;
  accountName?: string;
  /** Polls of an activity until it completes: the first ones answer "processing" (default 2). */
  activityPollsToComplete?: number;
  /** For demos: also complete activities after this many real milliseconds (default 0 = off). */
  activityDelayMs?: number;
  logger?: boolean;
};

export type ConstantContactEmulator = {
  app: EmulatorKit["app"];
  kit: EmulatorKit;
  store: ConstantContactStore;
  /** Issues a token set as if a user had completed the consent screen. */
  mintToken: (scopes?: string[]) => TokenResponse;
};

export type StartedConstantContactEmulator = ConstantContactEmulator & {
  baseUrl: string;
  close: () => Promise<void>;
};

const API_BODY_LIMIT = 4 * 1024 * 1024;
const CONTACT_STATUSES = [
  "all",
  "active",
  "deleted",
  "not_set",
  "pending_confirmation",
  "temp_hold",
  "unsubscribed",
];
const TRACKING_TYPES = new Set([
  "em_sends",
  "em_opens",
  "em_clicks",
  "em_bounces",
  "em_optouts",
  "em_forwards",
  "p_contact_open",
  "p_contact_click",
  "p_contact_add",
  "p_contact_update",
]);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createConstantContactEmulator(
  options: ConstantContactEmulatorOptions = {},
): ConstantContactEmulator {
  // Seeds for benchmarks can be large; the V3 routes keep their own 4 MB limit.
  const kit = createEmulatorKit({
    name: "constant-contact",
    bodyLimit: 256 * 1024 * 1024,
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const { app, now } = kit;
  const rateLimit = options.rateLimitPerSecond === undefined ? 4 : options.rateLimitPerSecond;
  const dailyQuota = options.dailyQuota === undefined ? 10_000 : options.dailyQuota;
  const oauth = new OAuth2Server({
    now,
    vendor_name: "Constant Contact",
    paths: { authorize: ["/oauth2/default/v1/authorize"], token: "/oauth2/default/v1/token" },
    access_ttl_seconds: options.accessTokenTtlSeconds ?? 86_400,
    refresh_ttl_ms: REFRESH_TOKEN_LIFETIME_MS,
    // Rotating: "generating a new set of tokens causes all previous refresh tokens to expire".
    refresh: options.refreshMode === "long_lived" ? "long_lived" : "rotate_all",
    default_scopes: DEFAULT_SCOPES,
    offline_scope: "offline_access",
    clients: [],
    strict_exchange: false,
    user_id: "emulator-user",
    token_type: "Bearer",
    refused_refresh_description: "unknown, invalid, or expired refresh token",
    answer: (grant) => ({ scope: grant.scopes.join(" ") }),
  });
  const mint = (scopes: readonly string[]): TokenResponse => oauth.mint({ scopes }) as TokenResponse;
  const accountName = options.accountName ?? "Concord Emulated Account";
  const store = new ConstantContactStore(now, options.confirmedOptIn ?? false);

  const limits = new CallLimits({ now, per_second: rateLimit, window: "calendar", daily: dailyQuota });
  const activities = new ActivityRunner(
    store,
    Math.max(1, options.activityPollsToComplete ?? 2),
    options.activityDelayMs ?? 0,
  );

  // ---------------------------------------------------------------- parsing and errors

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  // Unknown media types reach the handlers as text so the API can answer its documented 415.
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    done(null, { __unparsed: body });
  });

  app.setErrorHandler((error: FastifyError | StoreError, request, reply) => {
    const isApi = pathOf(request).startsWith("/v3");
    if (error instanceof StoreError) {
      return reply.code(error.status).send([{ error_key: error.key, error_message: error.message }]);
    }
    const code = error.code;
    let status = 500;
    let message = "There was a problem with our internal service.";
    if (code?.startsWith("FST_ERR_CTP_INVALID_JSON") || error instanceof SyntaxError) {
      status = 400;
      message = `Malformed JSON in the request body: ${error.message}`;
    } else if (code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
      status = 400;
      message = "The request body is empty; a JSON body is required.";
    } else if (code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      status = isApi ? 400 : 413;
      message = isApi ? "The request body exceeds the 4 MB limit." : "The request body is too large.";
    } else if (typeof error.statusCode === "number" && error.statusCode < 500) {
      status = error.statusCode;
      message = error.message;
    }
    if (status === 500) request.log.error(error);
    if (!isApi) return reply.code(status).send({ code: "bad_request", message });
    const key = status === 500 ? "server_error" : "contacts.api.bad.request";
    return reply.code(status).send([{ error_key: key, error_message: message }]);
  });

  app.setNotFoundHandler((request, reply) => {
    return reply
      .code(404)
      .send([
        { error_key: "not_found", error_message: `No resource at ${request.method} ${pathOf(request)}.` },
      ]);
  });

  // ---------------------------------------------------------------- auth, limits, media type

  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    if (reply.sent || !pathOf(request).startsWith("/v3/")) return;
    const check = oauth.check(request.headers.authorization);
    const scopes = check.ok ? check.scopes : undefined;
    if (!scopes) {
      // The gateway answers 401 with a single object (spec AuthorizationErrorSchema), not an array.
      return reply
        .code(401)
        .header("www-authenticate", "Bearer realm=api.cc.email")
        .send({ error_key: "unauthorized", error_message: "Unauthorized" });
    }
    if (!scopes.includes("contact_data")) {
      return reply.code(403).send([
        {
          error_key: "forbidden",
          error_message:
            "Forbidden request. You lack the necessary scopes, you lack the necessary user privileges, or the application is deactivated.",
        },
      ]);
    }
    const verdict = limits.admit();
    if (verdict.kind === "quota_exceeded")
      return reply.code(429).send({ error_key: "quota_exceeded", error_message: "Limit Exceeded" });
    if (verdict.kind === "rate_limited")
      return reply.code(429).send({ error_key: "throttled", error_message: "Too Many Requests" });
    return undefined;
  });

  app.addHook("preHandler", async (request: FastifyRequest, reply: FastifyReply) => {
    if (reply.sent || !pathOf(request).startsWith("/v3/")) return;
    if (request.method !== "POST" && request.method !== "PUT") return;
    const type = request.headers["content-type"] ?? "";
    const unparsed = (request.body as { __unparsed?: unknown } | undefined)?.__unparsed !== undefined;
    if (unparsed || (type !== "" && !/^application\/json\b/i.test(type))) {
      return reply.code(415).send([
        {
          error_key: "unsupported_media_type",
          error_message:
            "Unsupported Media Type; the payload must be in JSON format, and Content-Type must be application/json",
        },
      ]);
    }
    return undefined;
  });

  oauth.register(app);

  // ---------------------------------------------------------------- contacts

  app.get("/v3/contacts", async (request) => {
    const params = withCursor(request.query as Record<string, string | undefined>);
    const limit = parseLimit(params.limit, 500);
    const statuses = parseCsv(params.status, CONTACT_STATUSES, "status");
    const include = new Set(parseCsv(params.include, [...SUB_RESOURCES], "include") ?? []);
    const lists = params.lists?.split(",").filter((s) => s !== "");
    if (lists && lists.length > 25) throw bad("lists accepts at most 25 list ids.");
    const email = params.email?.trim().toLowerCase();
    const range = {
      updated_after: parseDate(params.updated_after, "updated_after"),
      updated_before: parseDate(params.updated_before, "updated_before"),
      created_after: parseDate(params.created_after, "created_after"),
      created_before: parseDate(params.created_before, "created_before"),
      optout_after: parseDate(params.optout_after, "optout_after"),
      optout_before: parseDate(params.optout_before, "optout_before"),
    };
    const dated = Object.values(range).some((v) => v !== undefined);
    const matches = (c: StoredContact): boolean => {
      if (!matchesStatus(c, statuses)) return false;
      if (email !== undefined && email !== "" && c.email_address?.address.toLowerCase() !== email)
        return false;
      if (lists && !lists.some((id) => c.list_memberships.includes(id))) return false;
      if (!dated) return true;
      const updated = Date.parse(c.updated_at);
      const created = Date.parse(c.created_at);
      const optOut = c.email_address?.opt_out_date ? Date.parse(c.email_address.opt_out_date) : undefined;
      if (range.updated_after !== undefined && !(updated > range.updated_after)) return false;
      if (range.updated_before !== undefined && !(updated < range.updated_before)) return false;
      if (range.created_after !== undefined && !(created > range.created_after)) return false;
      if (range.created_before !== undefined && !(created < range.created_before)) return false;
      if (range.optout_after !== undefined && !(optOut !== undefined && optOut > range.optout_after))
        return false;
      if (range.optout_before !== undefined && !(optOut !== undefined && optOut < range.optout_before))
        return false;
      return true;
    };
    const page = scanPage(store.ordered, params, limit, matches);
    const body: Record<string, unknown> = { contacts: page.items.map((c) => renderContact(c, include)) };
    if (params.include_count === "true") body.contacts_count = store.ordered.filter(matches).length;
    if (page.next)
      body._links = { next: { href: `/v3/contacts?cursor=${encodeCursor(params, limit, page.next)}` } };
    return body;
  });

  app.get("/v3/contacts/:contact_id", async (request) => {
    const { contact_id } = request.params as { contact_id: string };
    const q = request.query as Record<string, string | undefined>;
    const include = new Set(parseCsv(q.include, [...SUB_RESOURCES], "include") ?? []);
    return renderContact(requireContact(contact_id), include);
  });

  // The contact report: tracking activities newest first (spec getContactTracking). Only opt-outs are
  // kept by the emulator; asking for other types answers an empty page.
  app.get("/v3/reports/contact_reports/:contact_id/activity_details", async (request) => {
    const { contact_id } = request.params as { contact_id: string };
    const q = request.query as Record<string, string | string[] | undefined>;
    const listed = typeof q.tracking_activities_list === "string" ? q.tracking_activities_list : undefined;
    const typed = q.tracking_activity_type;
    if ((listed === undefined) === (typed === undefined))
      throw new StoreError(
        400,
        "reports.api.validation.error",
        "Give exactly one of tracking_activities_list and tracking_activity_type.",
      );
    const types = new Set(
      (listed !== undefined ? listed.split(",") : Array.isArray(typed) ? typed : [typed ?? ""]).map((t) =>
        t.trim(),
      ),
    );
    for (const t of types)
      if (!TRACKING_TYPES.has(t))
        throw new StoreError(400, "reports.api.validation.error", `Unknown tracking activity type ${t}.`);
    const limit = Number(q.limit ?? "100");
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      throw new StoreError(400, "reports.api.validation.error", "limit must be 1 to 100.");
    const contact = requireContact(contact_id);
    const withNames = q.include_campaign_activity_names !== "false";
    return {
      tracking_activities: contact.tracking
        .filter((a) => types.has(a.tracking_activity_type))
        .slice(0, limit)
        .map(({ opt_out_reason: _reason, campaign_activity_name, ...a }) => ({
          contact_id: contact.contact_id,
          ...a,
          ...(withNames ? { campaign_activity_name } : {}),
        })),
      _links: {},
    };
  });

  app.post("/v3/contacts", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const body = requireBody(request.body);
    const createSource = requireSource(body.create_source, "create_source");
    const hasEmail = body.email_address !== undefined && body.email_address !== null;
    if (
      !hasEmail &&
      body.first_name === undefined &&
      body.last_name === undefined &&
      body.sms_channel === undefined
    ) {
      throw bad("At least one of first_name, last_name, email_address or sms_channel is required.");
    }
    let address: string | null = null;
    let permission: Permission = "implicit";
    if (hasEmail) {
      const e = requireObject(body.email_address, "email_address");
      if (!isValidEmail(e.address)) throw bad("email_address.address is not a valid email address.");
      address = e.address;
      if (store.findByEmail(address)) {
        throw new StoreError(409, "contacts.api.conflict", "Validation failed: EmailAddress is not unique");
      }
      if (e.permission_to_send !== undefined) permission = requirePermission(e.permission_to_send);
      if (permission === "temp_hold")
        throw bad("permission_to_send temp_hold is set by Constant Contact only.");
    }
    checkTopLevel(body);
    const subs = parseSubResources(body);
    if (subs.list_memberships) store.requireLists(subs.list_memberships, "list_memberships");
    const contact = store.newContact({
      address,
      permission: permission === "unsubscribed" ? "implicit" : permission,
      createSource,
      optInSource: createSource,
    });
    applyTopLevel(contact, body, "replace");
    applySubResources(contact, subs);
    if (permission === "unsubscribed") {
      const reason = optionalString((body.email_address as Record<string, unknown>).opt_out_reason, 255);
      store.optOut(contact, createSource, "api_put", reason);
      contact.email_address!.opt_in_source = null;
      contact.email_address!.opt_in_date = null;
    }
    return reply.code(201).send(renderContact(contact, ALL_INCLUDES));
  });

  app.put("/v3/contacts/:contact_id", { bodyLimit: API_BODY_LIMIT }, async (request) => {
    const { contact_id } = request.params as { contact_id: string };
    const contact = requireContact(contact_id);
    const body = requireBody(request.body);
    const updateSource = requireSource(body.update_source, "update_source");
    if (contact.deleted_at !== null && updateSource !== "Account") {
      throw bad("To restore a deleted contact you must specify the update_source as Account.");
    }
    checkTopLevel(body);
    const subs = parseSubResources(body);
    if (subs.list_memberships) store.requireLists(subs.list_memberships, "list_memberships");
    let requested: Permission | undefined;
    let reason: string | null = null;
    if (body.email_address !== undefined && body.email_address !== null) {
      const e = requireObject(body.email_address, "email_address");
      if (!isValidEmail(e.address)) throw bad("email_address.address is not a valid email address.");
      const other = store.findByEmail(e.address);
      if (other && other !== contact) {
        throw new StoreError(409, "contacts.api.conflict", "Validation failed: EmailAddress is not unique");
      }
      store.setAddress(contact, e.address, "implicit", updateSource);
      if (e.permission_to_send !== undefined) requested = requirePermission(e.permission_to_send);
      reason = optionalString(e.opt_out_reason, 255);
    }
    contact.deleted_at = null;
    applyTopLevel(contact, body, "replace");
    applySubResources(contact, subs);
    applyRequestedPermission(contact, requested, updateSource, reason);
    if (isUnsubscribed(contact)) contact.list_memberships = [];
    store.touch(contact, updateSource);
    return renderContact(contact, ALL_INCLUDES);
  });

  app.delete("/v3/contacts/:contact_id", async (request, reply) => {
    const { contact_id } = request.params as { contact_id: string };
    const contact = requireContact(contact_id);
    if (contact.deleted_at !== null) throw notFound(`Contact ${contact_id} was not found.`);
    store.softDelete(contact);
    return reply.code(204).send();
  });

  app.post("/v3/contacts/sign_up_form", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const body = requireBody(request.body);
    const lists = requireIdArray(body.list_memberships, "list_memberships", 1, 50);
    store.requireLists(lists, "list_memberships");
    if (!isValidEmail(body.email_address) || body.email_address.length > 50) {
      throw bad("email_address is required and must be a valid email address of at most 50 characters.");
    }
    checkTopLevel(body);
    const existing = store.findByEmail(body.email_address);
    const contact =
      existing ??
      store.newContact({
        address: body.email_address,
        permission: store.confirmedOptIn ? "pending_confirmation" : "explicit",
        createSource: "Contact",
        optInSource: "Contact",
      });
    applyTopLevel(contact, body, "merge");
    applySignUpExtras(contact, body);
    if (existing) {
      contact.deleted_at = null;
      if (isContactOptOut(contact)) {
        // The account cannot undo the contact's own opt-out (QUIRKS.md); other fields still update.
        store.log({
          as: "api",
          action: "sign_up_form_opt_in_ignored",
          contact_id: contact.contact_id,
          email: body.email_address,
        });
      } else {
        if (contact.email_address?.permission_to_send !== "explicit")
          store.optIn(contact, "explicit", "Account");
        if (!store.addLists(contact, lists))
          throw bad(`A contact can belong to at most ${MAX_LISTS_PER_CONTACT} lists.`);
      }
      store.touch(contact, "Account");
      return reply.code(200).send({ contact_id: contact.contact_id, action: "updated" });
    }
    if (!store.addLists(contact, lists))
      throw bad(`A contact can belong to at most ${MAX_LISTS_PER_CONTACT} lists.`);
    if (store.confirmedOptIn) sendConfirmation("confirm_opt_in", contact, lists);
    return reply.code(201).send({ contact_id: contact.contact_id, action: "created" });
  });

  app.put("/v3/contacts/resubscribe/:contact_id", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const { contact_id } = request.params as { contact_id: string };
    const contact = requireContact(contact_id);
    if (contact.deleted_at !== null) throw notFound(`Contact ${contact_id} was not found.`);
    const body = requireBody(request.body);
    const lists = requireIdArray(body.list_ids, "list_ids", 1, 50);
    store.requireLists(lists, "list_ids");
    if (!isUnsubscribed(contact)) throw bad("Only an unsubscribed contact can be sent a resubscribe email.");
    if (contact.resubscribe !== null) {
      throw new StoreError(
        409,
        "contacts.api.conflict",
        "A resubscribe email has already been sent to this contact; it can only be sent once.",
      );
    }
    contact.resubscribe = { sent_at: store.iso(), list_ids: lists, confirmed_at: null };
    sendConfirmation("resubscribe", contact, lists);
    return reply.code(200).send();
  });

  // ---------------------------------------------------------------- contact lists

  app.get("/v3/contact_lists", async (request) => {
    const params = withCursor(request.query as Record<string, string | undefined>);
    const limit = parseLimit(params.limit, 1000);
    const status = parseCsv(params.status, ["all", "active", "deleted"], "status")?.[0] ?? "active";
    const countMode = parseCsv(
      params.include_membership_count,
      ["all", "active"],
      "include_membership_count",
    )?.[0];
    const all = [...store.lists.values()]
      .filter((l) =>
        status === "all" ? true : status === "deleted" ? l.deleted_at !== null : l.deleted_at === null,
      )
      .filter((l) => params.name === undefined || l.name === params.name)
      .sort((a, b) => a.seq - b.seq);
    const page = pageAfter(all, params, limit);
    const body: Record<string, unknown> = {
      lists: page.items.map((l) =>
        renderList(
          l,
          countMode === undefined ? undefined : store.membershipCount(l.list_id, countMode === "active"),
        ),
      ),
    };
    if (params.include_count === "true") body.lists_count = all.length;
    if (page.next)
      body._links = { next: { href: `/v3/contact_lists?cursor=${encodeCursor(params, limit, page.next)}` } };
    return body;
  });

  app.post("/v3/contact_lists", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const body = requireBody(request.body);
    const name = requireListName(body.name);
    if (store.activeLists().length >= MAX_LISTS) {
      throw bad(`An account can have a maximum of ${MAX_LISTS} lists.`, "contact_lists.api.validation.error");
    }
    assertUniqueListName(name, null);
    const at = store.iso();
    const list = {
      seq: store.nextSeq(),
      list_id: randomUUID(),
      name,
      description: optionalString(body.description, 255),
      favorite: body.favorite === true,
      created_at: at,
      updated_at: at,
      deleted_at: null,
    };
    store.lists.set(list.list_id, list);
    return reply.code(201).send(renderList(list));
  });

  app.get("/v3/contact_lists/:list_id", async (request) => {
    const { list_id } = request.params as { list_id: string };
    const q = request.query as Record<string, string | undefined>;
    const list = requireList(list_id);
    const countMode = parseCsv(
      q.include_membership_count,
      ["all", "active"],
      "include_membership_count",
    )?.[0];
    return renderList(
      list,
      countMode === undefined ? undefined : store.membershipCount(list_id, countMode === "active"),
    );
  });

  app.put("/v3/contact_lists/:list_id", { bodyLimit: API_BODY_LIMIT }, async (request) => {
    const { list_id } = request.params as { list_id: string };
    const list = requireList(list_id);
    const body = requireBody(request.body);
    const name = requireListName(body.name);
    assertUniqueListName(name, list_id);
    list.name = name;
    list.favorite = body.favorite === true;
    list.description = optionalString(body.description, 255);
    list.updated_at = store.iso();
    return renderList(list);
  });

  app.delete("/v3/contact_lists/:list_id", async (request, reply) => {
    const { list_id } = request.params as { list_id: string };
    requireList(list_id);
    const activity = activities.queue("list_delete", { list_ids: [list_id] }, { list_count: 1 });
    const rendered = renderActivity(activity);
    delete rendered.status;
    return reply.code(202).header("location", `/v3/activities/${activity.activity_id}`).send(rendered);
  });

  // ---------------------------------------------------------------- bulk activities

  app.post("/v3/activities/contacts_json_import", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const body = requireBody(request.body);
    if (!Array.isArray(body.import_data) || body.import_data.length === 0) {
      throw bad("import_data is required and must contain at least one contact.");
    }
    if (body.import_data.length > 40_000) throw bad("import_data accepts at most 40,000 contacts.");
    const lists = requireIdArray(body.list_ids, "list_ids", 1, 50);
    store.requireLists(lists, "list_ids");
    const activity = activities.queue(
      "contacts_json_import",
      { import_data: body.import_data, list_ids: lists },
      {
        items_total_count: body.import_data.length,
        person_count: 0,
        error_count: 0,
        correctable_count: 0,
        cannot_add_to_list_count: 0,
      },
    );
    return reply.code(201).send(renderActivity(activity));
  });

  for (const kind of ["add_list_memberships", "remove_list_memberships"] as const) {
    app.post(`/v3/activities/${kind}`, { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
      const body = requireBody(request.body);
      const source = requireObject(body.source, "source");
      const given = ["contact_ids", "list_ids", "all_active_contacts"].filter(
        (k) => source[k] !== undefined && source[k] !== false,
      );
      if (given.length !== 1) {
        throw bad("source must contain exactly one of contact_ids, list_ids or all_active_contacts.");
      }
      if (source.contact_ids !== undefined) requireIdArray(source.contact_ids, "source.contact_ids", 1, 500);
      if (source.list_ids !== undefined) {
        store.requireLists(requireIdArray(source.list_ids, "source.list_ids", 1, 50), "source.list_ids");
      }
      const targets = requireIdArray(body.list_ids, "list_ids", 1, 50);
      store.requireLists(targets, "list_ids");
      const activity = activities.queue(
        kind,
        { source, list_ids: targets },
        { items_total_count: 0, items_completed_count: 0, list_count: targets.length },
      );
      return reply.code(201).send(renderActivity(activity));
    });
  }

  app.post("/v3/activities/contact_delete", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const body = requireBody(request.body);
    const hasContacts = body.contact_ids !== undefined;
    if (hasContacts === (body.list_ids !== undefined)) throw bad("Specify either contact_ids or list_ids.");
    if (hasContacts) requireIdArray(body.contact_ids, "contact_ids", 1, 500);
    else store.requireLists(requireIdArray(body.list_ids, "list_ids", 1, 50), "list_ids");
    const activity = activities.queue(
      "contact_delete",
      { contact_ids: body.contact_ids, list_ids: body.list_ids },
      {
        items_total_count: 0,
        items_completed_count: 0,
        list_count: hasContacts ? 0 : (body.list_ids as unknown[]).length,
      },
    );
    return reply.code(201).send(renderActivity(activity));
  });

  app.post("/v3/activities/list_delete", { bodyLimit: API_BODY_LIMIT }, async (request, reply) => {
    const body = requireBody(request.body);
    const lists = requireIdArray(body.list_ids, "list_ids", 1, 100);
    const activity = activities.queue("list_delete", { list_ids: lists }, { list_count: lists.length });
    return reply.code(201).send(renderActivity(activity));
  });

  app.get("/v3/activities", async (request) => {
    const params = withCursor(request.query as Record<string, string | undefined>);
    const limit = parseLimit(params.limit, 500);
    const state = parseCsv(
      params.state,
      ["processing", "completed", "cancelled", "failed", "timed_out", "initialized"],
      "state",
    )?.[0];
    for (const a of [...store.activities.values()]) activities.observe(a);
    const all = [...store.activities.values()]
      .filter((a) => state === undefined || a.state === state)
      .sort((a, b) => a.seq - b.seq);
    const page = pageAfter(all, params, limit);
    const body: Record<string, unknown> = { activities: page.items.map(renderActivity) };
    if (page.next)
      body._links = { next: { href: `/v3/activities?cursor=${encodeCursor(params, limit, page.next)}` } };
    return body;
  });

  app.get("/v3/activities/:activity_id", async (request) => {
    const { activity_id } = request.params as { activity_id: string };
    const activity = store.activities.get(activity_id);
    if (!activity)
      throw notFound("Resource not found for the activity_id provided", "activities.api.not_found");
    activities.observe(activity);
    return renderActivity(activity);
  });

  // ---------------------------------------------------------------- helpers bound to the store

  function requireContact(id: string): StoredContact {
    if (!UUID_RE.test(id)) throw notFound("contact_id is in an invalid format.");
    const contact = store.contacts.get(id);
    if (!contact) throw notFound(`Contact ${id} was not found.`);
    return contact;
  }

  function requireList(id: string) {
    const list = store.lists.get(id);
    if (!list || list.deleted_at !== null)
      throw notFound(`List ${id} was not found.`, "contact_lists.api.not_found");
    return list;
  }

  function assertUniqueListName(name: string, exceptId: string | null): void {
    const clash = store.activeLists().find((l) => l.name === name && l.list_id !== exceptId);
    if (clash)
      throw new StoreError(409, "contact_lists.api.conflict", `A list named "${name}" already exists.`);
  }

  function sendConfirmation(
    kind: "resubscribe" | "confirm_opt_in",
    contact: StoredContact,
    lists: string[],
  ): void {
    store.confirmationEmails.push({
      kind,
      contact_id: contact.contact_id,
      email: contact.email_address?.address ?? "",
      list_ids: lists,
      sent_at: store.iso(),
    });
  }

  /** The consent part of PUT /contacts/{id}; see QUIRKS.md "Emulator" for the rules chosen. */
  function applyRequestedPermission(
    contact: StoredContact,
    requested: Permission | undefined,
    source: Source,
    reason: string | null,
  ): void {
    const email = contact.email_address;
    if (!email || requested === undefined || requested === email.permission_to_send) return;
    if (requested === "temp_hold") throw bad("permission_to_send temp_hold is set by Constant Contact only.");
    if (requested === "unsubscribed") {
      store.optOut(contact, source, "api_put", reason);
      store.log({
        as: "api",
        action: "unsubscribe",
        contact_id: contact.contact_id,
        email: email.address,
        mechanism: "api_put",
        reason,
      });
      return;
    }
    if (email.permission_to_send === "unsubscribed") {
      if (email.opt_out_source === "Contact") {
        // Silently kept: only the contact can opt back in (spec: opt_out_source; QUIRKS.md).
        store.log({
          as: "api",
          action: "resubscribe_ignored",
          contact_id: contact.contact_id,
          email: email.address,
          detail: `PUT asked for ${requested}`,
        });
        return;
      }
      store.optIn(contact, requested, source);
      store.log({
        as: "api",
        action: "resubscribe",
        contact_id: contact.contact_id,
        email: email.address,
        detail: `account opt-out undone (${requested})`,
      });
      return;
    }
    const wasOptedIn = isOptedIn(email.permission_to_send);
    email.permission_to_send = requested;
    email.confirm_status = requested === "pending_confirmation" ? "pending" : email.confirm_status;
    if (isOptedIn(requested) && !wasOptedIn) {
      email.opt_in_date = store.iso();
      email.opt_in_source = source;
    }
  }

  // ---------------------------------------------------------------- control API

  kit.registerControl({
    reset: () => {
      store.reset();
      store.confirmedOptIn = options.confirmedOptIn ?? false;
      oauth.reset();
      limits.reset();
      activities.cancelTimers();
    },
    seed: (body: any) => seed(body),
    token: (body: any) => {
      const scopes = body?.scopes;
      if (
        scopes !== undefined &&
        (!Array.isArray(scopes) || scopes.some((s: unknown) => typeof s !== "string"))
      ) {
        throw new EmulatorControlError("invalid_scopes", '"scopes" must be an array of strings.');
      }
      return mint(scopes ?? DEFAULT_SCOPES);
    },
    revoke: () => ({ ok: true, ...oauth.revokeAll() }),
    act: (body: any) => act(body),
    state: () => ({
      account: { name: accountName, confirmed_opt_in: store.confirmedOptIn },
      contacts: [...store.contacts.values()]
        .sort((a, b) => a.seq - b.seq)
        .map((c) => ({
          ...renderContact(c, ALL_INCLUDES),
          _emulator: {
            deleted_at: c.deleted_at,
            opt_out_mechanism: c.opt_out_mechanism,
            resubscribe: c.resubscribe,
          },
        })),
      lists: [...store.lists.values()]
        .sort((a, b) => a.seq - b.seq)
        .map((l) => renderList(l, store.membershipCount(l.list_id, false))),
      activities: [...store.activities.values()]
        .sort((a, b) => a.seq - b.seq)
        .map((a) => ({ kind: a.kind, ...renderActivity(a) })),
      confirmation_emails: store.confirmationEmails,
      events: store.events,
      auth: oauth.summary(),
      usage: (({ day, quota_used, quota_limit, rate_limit }) => ({
        day,
        requests_today: quota_used,
        daily_quota: quota_limit,
        rate_limit_per_second: rate_limit,
      }))(limits.usage()),
    }),
  });

  function seed(body: any): unknown {
    if (body === null || typeof body !== "object") {
      throw new EmulatorControlError(
        "invalid_seed",
        'Seed with {"lists"?: [...], "contacts"?: [...], "account"?: {...}}.',
      );
    }
    if (body.account?.confirmed_opt_in !== undefined)
      store.confirmedOptIn = body.account.confirmed_opt_in === true;
    const lists: { list_id: string; name: string }[] = [];
    for (const raw of asArray(body.lists, "lists")) {
      if (typeof raw?.name !== "string" || raw.name === "")
        throw new EmulatorControlError("invalid_list", "Each list needs a name.");
      const at = store.iso();
      const list = {
        seq: store.nextSeq(),
        list_id: typeof raw.list_id === "string" ? raw.list_id : randomUUID(),
        name: raw.name,
        description: typeof raw.description === "string" ? raw.description : null,
        favorite: raw.favorite === true,
        created_at: typeof raw.created_at === "string" ? raw.created_at : at,
        updated_at: typeof raw.updated_at === "string" ? raw.updated_at : at,
        deleted_at: typeof raw.deleted_at === "string" ? raw.deleted_at : null,
      };
      store.lists.set(list.list_id, list);
      lists.push({ list_id: list.list_id, name: list.name });
    }
    const contacts: { contact_id: string; email: string | null }[] = [];
    for (const raw of asArray(body.contacts, "contacts")) contacts.push(seedContact(raw));
    return { lists, contacts };
  }

  function seedContact(raw: any): { contact_id: string; email: string | null } {
    const e = raw?.email_address;
    const address = typeof e === "string" ? e : typeof e?.address === "string" ? e.address : null;
    if (address !== null && !isValidEmail(address)) {
      throw new EmulatorControlError("invalid_contact", `"${address}" is not a valid email address.`);
    }
    if (address !== null && store.findByEmail(address)) {
      throw new EmulatorControlError("duplicate_contact", `${address} is already seeded.`);
    }
    const permission: Permission = e?.permission_to_send ?? "implicit";
    if (!PERMISSIONS.includes(permission)) {
      throw new EmulatorControlError(
        "invalid_contact",
        `permission_to_send must be one of ${PERMISSIONS.join(", ")}.`,
      );
    }
    const createSource: Source = raw.create_source === "Contact" ? "Contact" : "Account";
    const contact = store.newContact({
      address,
      permission,
      createSource,
      optInSource: e?.opt_in_source ?? (isOptedIn(permission) ? createSource : null),
      ...(e?.confirm_status ? { confirmStatus: e.confirm_status } : {}),
    });
    if (typeof raw.contact_id === "string") {
      store.contacts.delete(contact.contact_id);
      contact.contact_id = raw.contact_id;
      store.contacts.set(contact.contact_id, contact);
    }
    const at = store.iso();
    contact.created_at = raw.created_at ?? at;
    contact.updated_at = raw.updated_at ?? contact.created_at;
    contact.update_source = raw.update_source === "Contact" ? "Contact" : createSource;
    if (raw.deleted_at) contact.deleted_at = new Date(raw.deleted_at).toISOString();
    for (const field of TOP_LEVEL_FIELDS) if (raw[field] !== undefined) contact.fields[field] = raw[field];
    if (contact.email_address && e && typeof e === "object") {
      const email = contact.email_address;
      email.created_at = e.created_at ?? contact.created_at;
      email.updated_at = e.updated_at ?? contact.updated_at;
      if (e.opt_in_date !== undefined) email.opt_in_date = e.opt_in_date;
      if (permission === "unsubscribed") {
        // Unstated provenance is taken as the contact's own act: the safer reading for consent.
        email.opt_out_source = e.opt_out_source === "Account" ? "Account" : "Contact";
        email.opt_out_date = e.opt_out_date ?? contact.updated_at;
        email.opt_out_reason = e.opt_out_reason ?? null;
        contact.opt_out_mechanism = raw.opt_out_mechanism ?? "seed";
      }
    }
    for (const sub of SUB_RESOURCES) {
      if (sub === "list_memberships" || raw[sub] === undefined) continue;
      (contact as any)[sub] = raw[sub];
    }
    if (raw.list_memberships !== undefined && !isUnsubscribed(contact)) {
      contact.list_memberships = asArray(raw.list_memberships, "list_memberships").map((ref: unknown) => {
        const byId = typeof ref === "string" ? store.lists.get(ref) : undefined;
        const list = byId ?? store.activeLists().find((l) => l.name === ref);
        if (!list)
          throw new EmulatorControlError(
            "unknown_list",
            `list_memberships: no seeded list "${String(ref)}".`,
          );
        return list.list_id;
      });
    }
    if (raw.resubscribe_sent_at)
      contact.resubscribe = { sent_at: raw.resubscribe_sent_at, list_ids: [], confirmed_at: null };
    return { contact_id: contact.contact_id, email: address };
  }

  function act(body: any): unknown {
    const who = body?.as;
    const action = body?.action;
    if (who !== "contact" && who !== "admin") {
      throw new EmulatorControlError("invalid_act", '"as" must be "contact" or "admin".');
    }
    if (who === "admin" && action === "set_account") {
      if (typeof body.confirmed_opt_in === "boolean") store.confirmedOptIn = body.confirmed_opt_in;
      return { account: { name: accountName, confirmed_opt_in: store.confirmedOptIn } };
    }
    if (who === "admin" && action === "run_activities") {
      const last = [...store.activities.values()].sort((a, b) => b.seq - a.seq)[0];
      if (last) activities.completeThrough(last);
      return { activities: [...store.activities.values()].map(renderActivity) };
    }
    const listIds: string[] = body.list_ids === undefined ? [] : asArray(body.list_ids, "list_ids");
    for (const id of listIds) {
      const list = store.lists.get(id);
      if (!list || list.deleted_at !== null) throw new EmulatorControlError("unknown_list", `No list ${id}.`);
    }
    const reason = typeof body.reason === "string" ? body.reason : null;
    if (who === "contact" && action === "sign_up") return contactSignUp(body.email, listIds, body);
    const contact = typeof body.email === "string" ? store.findByEmail(body.email) : undefined;
    if (!contact)
      throw new EmulatorControlError("unknown_contact", `No contact with email ${String(body.email)}.`);
    const done = (event: Parameters<ConstantContactStore["log"]>[0]) => {
      store.log(event);
      return { contact: renderContact(contact, ALL_INCLUDES), event: store.events.at(-1) };
    };
    const base = { contact_id: contact.contact_id, email: contact.email_address?.address ?? null };
    if (who === "contact") {
      const mechanisms: Record<string, OptOutMechanism> = {
        unsubscribe: "footer_link",
        one_click_unsubscribe: "one_click",
        spam_complaint: "spam_complaint",
      };
      const mechanism = mechanisms[action as string];
      if (mechanism) {
        if (action === "unsubscribe" && listIds.length > 0) {
          // Leaving some lists through the preference page is not an opt-out.
          contact.list_memberships = contact.list_memberships.filter((id) => !listIds.includes(id));
          store.touch(contact, "Contact");
          return done({ as: "contact", action: "leave_lists", ...base, detail: listIds.join(",") });
        }
        // Only the footer link's unsubscribe page asks for a reason; the others carry none.
        store.optOut(contact, "Contact", mechanism, mechanism === "footer_link" ? reason : null);
        return done({ as: "contact", action, ...base, mechanism, reason });
      }
      if (action === "confirm_resubscribe") {
        if (!contact.resubscribe || contact.resubscribe.confirmed_at !== null) {
          throw new EmulatorControlError(
            "no_resubscribe_pending",
            "No unconfirmed resubscribe email was sent to this contact.",
          );
        }
        contact.resubscribe.confirmed_at = store.iso();
        store.optIn(contact, "explicit", "Contact");
        store.addLists(contact, [...contact.resubscribe.list_ids, ...listIds]);
        return done({ as: "contact", action, ...base });
      }
      if (action === "confirm_opt_in") {
        if (contact.email_address?.permission_to_send !== "pending_confirmation") {
          throw new EmulatorControlError("not_pending", "The contact is not pending confirmation.");
        }
        store.optIn(contact, "explicit", "Contact");
        contact.email_address.confirm_status = "confirmed";
        return done({ as: "contact", action, ...base });
      }
      throw new EmulatorControlError(
        "invalid_act",
        "Contact actions: unsubscribe, one_click_unsubscribe, spam_complaint, confirm_resubscribe, confirm_opt_in, sign_up.",
      );
    }
    switch (action) {
      case "unsubscribe":
        // An opt-out already on record keeps its provenance (a contact's own act must not become the account's).
        if (isUnsubscribed(contact)) return done({ as: "admin", action: "unsubscribe_noop", ...base });
        store.optOut(contact, "Account", "admin_ui", reason);
        return done({ as: "admin", action, ...base, mechanism: "admin_ui", reason });
      case "resubscribe":
        if (isContactOptOut(contact)) {
          throw new EmulatorControlError(
            "contact_initiated_opt_out",
            "Only the contact can undo their own opt-out.",
          );
        }
        store.optIn(contact, "implicit", "Account");
        return done({ as: "admin", action, ...base });
      case "delete":
        store.softDelete(contact);
        return done({ as: "admin", action, ...base });
      case "update": {
        const fields = body.fields ?? {};
        for (const field of TOP_LEVEL_FIELDS)
          if (fields[field] !== undefined) contact.fields[field] = fields[field];
        if (typeof fields.email === "string") {
          if (!isValidEmail(fields.email)) throw new EmulatorControlError("invalid_email", "Invalid email.");
          const other = store.findByEmail(fields.email);
          if (other && other !== contact)
            throw new EmulatorControlError("duplicate_email", `${fields.email} is taken.`);
          store.setAddress(contact, fields.email, "implicit", "Account");
        }
        store.touch(contact, "Account");
        return done({ as: "admin", action, ...base });
      }
      case "add_to_lists":
        if (isUnsubscribed(contact))
          throw new EmulatorControlError("unsubscribed", "Unsubscribed contacts cannot be added to lists.");
        if (!store.addLists(contact, listIds))
          throw new EmulatorControlError("too_many_lists", "At most 50 lists.");
        store.touch(contact, "Account");
        return done({ as: "admin", action, ...base });
      case "remove_from_lists":
        contact.list_memberships = contact.list_memberships.filter((id) => !listIds.includes(id));
        store.touch(contact, "Account");
        return done({ as: "admin", action, ...base });
      default:
        throw new EmulatorControlError(
          "invalid_act",
          "Admin actions: unsubscribe, resubscribe, delete, update, add_to_lists, remove_from_lists, set_account, run_activities.",
        );
    }
  }

  /** The person's own sign-up form: always explicit consent from the contact, lifting their own opt-out. */
  function contactSignUp(email: unknown, listIds: string[], body: any): unknown {
    if (!isValidEmail(email))
      throw new EmulatorControlError("invalid_email", '"email" must be a valid address.');
    let contact = store.findByEmail(email);
    const permission: Permission = store.confirmedOptIn ? "pending_confirmation" : "explicit";
    if (!contact) {
      contact = store.newContact({
        address: email,
        permission,
        createSource: "Contact",
        optInSource: "Contact",
      });
    } else {
      contact.deleted_at = null;
      if (contact.email_address?.permission_to_send !== "explicit")
        store.optIn(contact, permission, "Contact");
    }
    for (const field of TOP_LEVEL_FIELDS)
      if (body?.[field] !== undefined) contact.fields[field] = body[field];
    store.addLists(contact, listIds);
    store.touch(contact, "Contact");
    if (
      permission === "pending_confirmation" &&
      contact.email_address?.permission_to_send === "pending_confirmation"
    ) {
      sendConfirmation("confirm_opt_in", contact, listIds);
    }
    store.log({ as: "contact", action: "sign_up", contact_id: contact.contact_id, email });
    return { contact: renderContact(contact, ALL_INCLUDES), event: store.events.at(-1) };
  }

  return { app, kit, store, mintToken: (scopes) => mint(scopes ?? DEFAULT_SCOPES) };
}

/** Starts the emulator on 127.0.0.1 (port 0 picks a free one) and returns its base URL. */
export async function startConstantContactEmulator(
  options: ConstantContactEmulatorOptions & { port?: number } = {},
): Promise<StartedConstantContactEmulator> {
  const { port, ...rest } = options;
  const emulator = createConstantContactEmulator(rest);
  const baseUrl = await listenOnLoopback(emulator.app, port ?? 0);
  return { ...emulator, baseUrl, close: () => emulator.app.close() };
}
