/**
 * The Mailchimp Marketing connector: one audience per connection. It reads members changed since a
 * checkpoint (with an overlap), reports each member's status as a consent fact and how they left,
 * and applies operations consent first: an opt-out is a PATCH to `unsubscribed`, a lawful
 * resubscribe request is `pending` (Mailchimp sends its confirmation email), new members come in
 * by batch subscribe with the status the plan's consent intent gives, and existing members never
 * get a status from an upsert. Tags and groups (interests) are the lists a pair maps.
 */
import { z } from "zod";
import type {
  CheckInfo,
  Checkpoint,
  ConnectionSettings,
  ConnectorError,
  ConnectorLimits,
  ConnectorOperation,
  ConnectorResult,
  ConnectorRuntime,
  ConnectorSession,
  ConsentObservation,
  ExternalList,
  ExternalRecord,
  GetOptions,
  OperationOutcome,
  ReadOptions,
  ReadPage,
  RecordsWithConsent,
  WebhookChange,
} from "../connector";
import { isPersonsOwnOptIn } from "../../core/consent/consent-state";
import { emailKey } from "../../core/identity/normalise-email";
import { err, ok } from "../../core/result";
import { applyConsentFirst, outcomeOfError, runByKind, stopsAll } from "../kit/apply-policy";
import { createWatermark, firstSeen, overlapSecondsOption, readStart } from "../kit/incremental-read";
import { screenUpsertItems } from "../kit/upsert-items";
import { createMailchimpClient, type CallPriority, type MailchimpClient } from "./client";
import {
  WEBHOOK_ACTORS,
  WEBHOOK_BY_PARAM,
  WEBHOOK_EVENTS,
  WEBHOOK_KEY_PARAM,
  WEBHOOK_SOURCES,
} from "./webhooks";
import {
  announcedOptOut,
  unreadMemberOptOut,
  announcementStands,
  interestListId,
  isPlausibleEmail,
  MARKETING_PERMISSION,
  memberId,
  memberToConsent,
  memberToRecord,
  memberWatermark,
  mergeFieldsOf,
  newMemberStatus,
  subscriberHash,
  tagListId,
} from "./mapping";
import {
  McAudiencesSchema,
  McBatchAnswerSchema,
  McCategoriesSchema,
  McInterestsSchema,
  McMemberSchema,
  McMembersPageSchema,
  McMemberTagsSchema,
  McProblemSchema,
  McSegmentBatchSchema,
  McWebhookSchema,
  McWebhooksSchema,
  McTagsSchema,
  problemOf,
  type McBatchAnswer,
  type McMember,
} from "./schemas";

export const MAILCHIMP_LIMITS: ConnectorLimits = {
  // No per-second limit is published; 10 simultaneous connections per key is the rule (429 beyond).
  requests_per_second: 50,
  max_concurrency: 10,
  batch: { import_contacts: 500, membership_ids: 500, read_page: 1000 },
};

/** `connections[].options` of a Mailchimp connection. */
export const MailchimpOptionsSchema = z.strictObject({
  /** The audience (list) this connection keeps in step, by id or name; optional when the account has one. */
  audience: z.string().trim().min(1).optional(),
  /** Members per read page (1–1000). */
  page_size: z.number().int().min(1).max(1000).optional(),
  /** How far before the checkpoint an incremental read starts, for late or out-of-order changes. */
  overlap_seconds: overlapSecondsOption(300),
});
export type MailchimpOptions = z.infer<typeof MailchimpOptionsSchema>;

const STREAM = "members";
/** The audience each connection keeps in step, by the connection's settings (one lookup per process). */
const audiences = new WeakMap<ConnectionSettings, Promise<ConnectorResult<{ id: string; name: string }>>>();
const EPOCH = "1970-01-01T00:00:00.000Z";
const VENDOR = "Mailchimp";

/** A session with one Mailchimp audience (the manifest's `connect`). */
export function createMailchimpSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
): ConnectorSession {
  const options = MailchimpOptionsSchema.parse(settings.options ?? {});
  const client = createMailchimpClient(settings, runtime, MAILCHIMP_LIMITS);
  const pageSize = Math.min(1000, Math.max(1, settings.page_size ?? options.page_size ?? 1000));
  const overlapMs = options.overlap_seconds * 1000;

  // ------------------------------------------------------------------------------------------
  // the audience

  const findAudience = () => findMailchimpAudience(client, options.audience);
  /** The audience, found once per connection (every session of it shares the settings object). */
  const theAudience = (): Promise<ConnectorResult<{ id: string; name: string }>> => {
    let found = audiences.get(settings);
    if (found === undefined) {
      found = findAudience().then((r) => {
        if (!r.ok) audiences.delete(settings); // looked up again next time: the account may change
        return r;
      });
      audiences.set(settings, found);
    }
    return found;
  };
  /** Runs `fn` with the audience id, or answers why there is none. */
  const withAudience = async <T>(
    fn: (listId: string) => Promise<ConnectorResult<T>>,
  ): Promise<ConnectorResult<T>> => {
    const a = await theAudience();
    return a.ok ? fn(a.value.id) : a;
  };

  const check = async (): Promise<ConnectorResult<CheckInfo>> => {
    // A check proves the credentials now: it always asks, and keeps what it found.
    const a = await findAudience();
    if (!a.ok) return a;
    audiences.set(settings, Promise.resolve(a));
    const permissions = await checkPermissions(a.value.id);
    if (!permissions.ok) return permissions;
    return ok({ account_label: `Mailchimp audience “${a.value.name}” (${settings.connection_id})` });
  };

  /**
   * The GDPR marketing permissions the connection's topics name are the audience's: Mailchimp lists
   * them on its members only, so one member is read. An audience with no member yet shows none, and
   * passes: its first member shows them, and a write naming one it lacks fails saying so.
   */
  const checkPermissions = async (listId: string): Promise<ConnectorResult<void>> => {
    const named = (settings.constructs ?? []).filter((c) => c.type === MARKETING_PERMISSION);
    if (named.length === 0) return ok(undefined);
    const page = await client.request({
      method: "GET",
      path: `/lists/${listId}/members`,
      query: { count: 1 },
      priority: "read",
      schema: McMembersPageSchema,
    });
    if (!page.ok) return page;
    const member = page.value.body.members[0];
    if (member === undefined) return ok(undefined);
    for (const c of named) {
      const found = permissionOf(member, c.name ?? c.id ?? "");
      if (!found.ok) return err({ ...found.error, message: `topics[].constructs: ${found.error.message}` });
    }
    return ok(undefined);
  };

  // ------------------------------------------------------------------------------------------
  // reads

  const membersPage = (listId: string, query: Record<string, string | number>) =>
    client.request({
      method: "GET",
      path: `/lists/${listId}/members`,
      query: { ...query, count: pageSize },
      priority: "read",
      schema: McMembersPageSchema,
    });

  async function* read(
    checkpoint: Checkpoint | null,
    readOptions?: ReadOptions,
  ): AsyncIterable<ConnectorResult<ReadPage>> {
    const a = await theAudience();
    if (!a.ok) {
      yield a;
      return;
    }
    const { full, since } = readStart(checkpoint, {
      ...(readOptions?.full !== undefined ? { full: readOptions.full } : {}),
      overlap_ms: overlapMs,
      epoch: EPOCH,
    });
    const order = { sort_field: "last_changed", sort_dir: "ASC" };
    // A plain member listing leaves archived members out, so an incremental read asks for those
    // archived since, too: an archive is a change the engine must see.
    const passes: Record<string, string | number>[] = full
      ? [order, { ...order, status: "archived" }]
      : [
          { ...order, since_last_changed: since },
          { ...order, since_last_changed: since, status: "archived" },
        ];
    // A member is read once per change: one that changes during the read comes again, as it is now.
    const first = firstSeen();
    const watermark = createWatermark("unordered", checkpoint?.value ?? EPOCH, runtime.now().toISOString());
    for (let p = 0; p < passes.length; p++) {
      // Pages go by time, not by position. A member that changes while the read goes on moves to
      // the end of the order, so paging by offset would skip the member that moved into its place
      // (an opt-out never read). Each page starts a second before the last change the page before
      // ended on; only a second holding more than a page is paged by offset within it.
      let from = passes[p]!["since_last_changed"] as string | undefined;
      let offset = 0;
      for (;;) {
        const page = await membersPage(a.value.id, {
          ...passes[p]!,
          ...(from !== undefined ? { since_last_changed: from } : {}),
          offset,
        });
        if (!page.ok) {
          yield page;
          return;
        }
        const { members } = page.value.body;
        const records: ExternalRecord[] = [];
        const consent: ConsentObservation[] = [];
        for (const listed of members) {
          watermark.see(memberWatermark(listed));
          if (!first(`${listed.id}@${memberWatermark(listed)}`)) continue;
          const m = await withAllTags(a.value.id, listed, "read");
          if (!m.ok) {
            yield m;
            return;
          }
          records.push(memberToRecord(m.value));
          consent.push(...memberToConsent(m.value, runtime.now().toISOString()));
        }
        const done = members.length < pageSize;
        if (!done) {
          const next = new Date(
            Date.parse(memberWatermark(members[members.length - 1]!)) - 1000,
          ).toISOString();
          if (from !== undefined && Date.parse(next) <= Date.parse(from)) offset += members.length;
          else {
            from = next;
            offset = 0;
          }
        }
        const now = runtime.now().toISOString();
        yield ok({
          records,
          consent,
          checkpoint: {
            stream: STREAM,
            value: watermark.value(done && p === passes.length - 1, now),
            taken_at: now,
          },
        });
        if (done) break;
      }
    }
  }

  const getMember = (listId: string, id: string, priority: CallPriority) =>
    client.request({
      method: "GET",
      path: `/lists/${listId}/members/${encodeURIComponent(id)}`,
      priority,
      accept: [404],
    });

  const parseMember = (body: unknown, id: string): ConnectorResult<McMember> => {
    const parsed = McMemberSchema.safeParse(body);
    if (parsed.success) return ok(parsed.data);
    return err({
      code: "bad_response",
      message: `GET member ${id} answered a member we do not understand: ${parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".")}: ${i.message}`)
        .join("; ")}`,
    });
  };

  /**
   * The member with all its tags: a member answer carries at most 50 of them (`tags_count` says how
   * many it has), and a tag standing for a topic or a list may be past them. Read only then.
   */
  const withAllTags = async (
    listId: string,
    m: McMember,
    priority: CallPriority,
  ): Promise<ConnectorResult<McMember>> => {
    if ((m.tags_count ?? 0) <= (m.tags?.length ?? 0)) return ok(m);
    const tags: NonNullable<McMember["tags"]> = [];
    for (let offset = 0; ;) {
      const r = await client.request({
        method: "GET",
        path: `/lists/${listId}/members/${encodeURIComponent(m.id)}/tags`,
        query: { count: 1000, offset },
        priority,
        schema: McMemberTagsSchema,
      });
      if (!r.ok) return r;
      tags.push(...r.value.body.tags);
      offset += r.value.body.tags.length;
      if (r.value.body.tags.length === 0 || offset >= r.value.body.total_items) break;
    }
    return ok({ ...m, tags, tags_count: tags.length });
  };

  /**
   * A member by its id (subscriber hash), address or contact id; null when Mailchimp has none.
   * `tags: false`: the tags the answer carries (at most 50), not the rest of them.
   */
  const fetchMember = async (
    listId: string,
    id: string,
    priority: CallPriority,
    options: { tags?: boolean } = {},
  ): Promise<ConnectorResult<McMember | null>> => {
    const r = await getMember(listId, id, priority);
    if (!r.ok) return r;
    if (r.value.status === 404) return ok(null);
    const m = parseMember(r.value.body, id);
    return m.ok && options.tags !== false ? withAllTags(listId, m.value, priority) : m;
  };

  const get = (
    ids: readonly string[],
    options: GetOptions = {},
  ): Promise<ConnectorResult<RecordsWithConsent>> =>
    withAudience(async (listId) => {
      const records: ExternalRecord[] = [];
      const consent: ConsentObservation[] = [];
      for (const id of new Set(ids)) {
        const m = await fetchMember(listId, id, "read");
        if (!m.ok) return m;
        if (!m.value) {
          // Deleted for good since a delivery announced an opt-out: the delivery's word is all there is.
          for (const change of announcedHere(options.announced?.get(id), listId)) {
            const gone = unreadMemberOptOut(change, "gone");
            if (gone !== undefined) consent.push(gone);
          }
          continue;
        }
        records.push(memberToRecord(m.value));
        consent.push(...memberToConsent(m.value, runtime.now().toISOString()));
        for (const change of announcedHere(options.announced?.get(id), listId))
          if (announcementStands(m.value, change)) consent.push(announcedOptOut(m.value, change));
      }
      return ok({ records, consent });
    });

  const lists = (): Promise<ConnectorResult<ExternalList[]>> =>
    withAudience(async (listId) => {
      const out: ExternalList[] = [];
      for (let offset = 0; ;) {
        const r = await client.request({
          method: "GET",
          path: `/lists/${listId}/segments`,
          query: { type: "static", count: 1000, offset },
          priority: "read",
          schema: McTagsSchema,
        });
        if (!r.ok) return r;
        for (const t of r.value.body.segments)
          out.push({
            external_id: tagListId(t.id),
            name: t.name,
            ...(t.member_count !== undefined ? { member_count: t.member_count } : {}),
          });
        offset += r.value.body.segments.length;
        if (r.value.body.segments.length === 0 || offset >= r.value.body.total_items) break;
      }
      const categories = await client.request({
        method: "GET",
        path: `/lists/${listId}/interest-categories`,
        query: { count: 1000 },
        priority: "read",
        schema: McCategoriesSchema,
      });
      if (!categories.ok) return categories;
      for (const c of categories.value.body.categories) {
        const interests = await client.request({
          method: "GET",
          path: `/lists/${listId}/interest-categories/${c.id}/interests`,
          query: { count: 1000 },
          priority: "read",
          schema: McInterestsSchema,
        });
        if (!interests.ok) return interests;
        for (const i of interests.value.body.interests)
          out.push({ external_id: interestListId(i.id), name: i.name });
      }
      return ok(out);
    });

  // ------------------------------------------------------------------------------------------
  // writes

  const opOutcome = (op: ConnectorOperation, fields: Omit<OperationOutcome, "op_id">): OperationOutcome => ({
    op_id: op.op_id,
    ...fields,
  });
  const fromError = (
    op: ConnectorOperation,
    e: ConnectorError,
    extra: { item_id?: string } = {},
  ): OperationOutcome => outcomeOfError(VENDOR, op.op_id, e, extra);
  type Run = OperationOutcome[];

  /** PATCH a member; a 400 comes back as Mailchimp's problem title and detail. */
  const patchMember = async (
    listId: string,
    id: string,
    body: Record<string, unknown>,
    priority: CallPriority,
  ): Promise<ConnectorResult<{ status: number; title: string; detail: string }>> => {
    const r = await client.request({
      method: "PATCH",
      path: `/lists/${listId}/members/${encodeURIComponent(id)}`,
      json: body,
      priority,
      accept: [400, 404, 405],
    });
    if (!r.ok) return r;
    const p = r.value.status >= 400 ? problemOf(r.value.body) : {};
    return ok({ status: r.value.status, title: p.title ?? "", detail: p.detail ?? "" });
  };

  const patched = (
    op: ConnectorOperation,
    r: ConnectorResult<{ status: number; title: string; detail: string }>,
    external_id: string,
  ): Run => {
    if (!r.ok) return [fromError(op, r.error)];
    if (r.value.status === 404)
      return [
        opOutcome(op, {
          status: "failed",
          code: "not_found",
          message: `Member ${external_id} is not in the Mailchimp audience.`,
        }),
      ];
    if (r.value.status >= 400)
      return [
        opOutcome(op, {
          status: "failed",
          code: "validation_failed",
          message: `${r.value.title}: ${r.value.detail}`,
        }),
      ];
    return [opOutcome(op, { status: "succeeded", external_id })];
  };

  /** The list a scope names: a tag, a group (interest), a GDPR marketing permission, or the whole audience. */
  const listOfScope = (
    scope: Extract<ConnectorOperation, { kind: "record_opt_out" }>["scope"],
  ):
    | { kind: "audience" }
    | { kind: "tag" | "interest" | "permission"; id: string }
    | { kind: "other"; type: string } => {
    if (scope.kind !== "construct") return { kind: "audience" };
    const c = scope.construct;
    if (c.type === MARKETING_PERMISSION) return { kind: "permission", id: c.id };
    const id = c.id.replace(/^(tag|interest):/, "");
    // The id's kind first: it is what the audience has, whatever the config called it.
    if (c.id.startsWith("interest:")) return { kind: "interest", id };
    if (c.id.startsWith("tag:")) return { kind: "tag", id };
    if (c.type === "interest") return { kind: "interest", id };
    if (c.type === "tag") return { kind: "tag", id };
    return { kind: "other", type: c.type };
  };

  /**
   * The subscriber hash of a member Concord names by its contact id (which looks like one, and is
   * not), for the paths whose spec takes only the hash (a member's tags written, its permanent
   * delete): one read of the member; null when no such member is.
   */
  const hashOf = async (
    listId: string,
    id: string,
    priority: CallPriority,
  ): Promise<ConnectorResult<string | null>> => {
    const m = await fetchMember(listId, id, priority, { tags: false });
    return m.ok ? ok(m.value?.id ?? null) : m;
  };

  const setTag = async (
    listId: string,
    /** The member's subscriber hash: the spec's only name for it on this path. */
    hash: string,
    tagId: string,
    status: "active" | "inactive",
    priority: CallPriority,
  ) => {
    const name = await tagName(tagId);
    if (!name.ok) return name;
    const r = await client.request({
      method: "POST",
      path: `/lists/${listId}/members/${encodeURIComponent(hash)}/tags`,
      json: { tags: [{ name: name.value, status }], is_syncing: true },
      priority,
      accept: [404],
      // It sets the tag's state: twice is once.
      idempotent: true,
    });
    if (!r.ok) return r;
    return ok({
      status: r.value.status,
      title: r.value.status === 404 ? "Resource Not Found" : "",
      detail: "",
    });
  };

  let tagNames: Promise<ConnectorResult<Map<string, string>>> | undefined;
  /** A tag's name by its id (the tag endpoints of a member take names), from the audience's tags. */
  const tagName = async (tagId: string): Promise<ConnectorResult<string>> => {
    tagNames ??= (async () => {
      const r = await lists();
      if (!r.ok) return r;
      return ok(
        new Map(
          r.value
            .filter((l) => l.external_id.startsWith("tag:"))
            .map((l) => [l.external_id.slice(4), l.name]),
        ),
      );
    })();
    const names = await tagNames;
    if (!names.ok) return names;
    const name = names.value.get(tagId);
    return name !== undefined
      ? ok(name)
      : err({ code: "not_found", message: `No tag ${tagId} in the Mailchimp audience.` });
  };

  /** The outcome of a consent write to a member the audience does not have. */
  const notInAudience = (
    op: Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>,
  ): OperationOutcome =>
    opOutcome(op, {
      status: "failed",
      code: "not_found",
      message: `Member ${op.external_id} is not in the Mailchimp audience.`,
    });

  const recordOptOut = (op: Extract<ConnectorOperation, { kind: "record_opt_out" }>): Promise<Run> =>
    withAudience(async (listId) => {
      const m = await fetchMember(listId, op.external_id, "consent");
      if (!m.ok) return m;
      if (!m.value) return ok([notInAudience(op)]);
      const target = listOfScope(op.scope);
      if (target.kind === "other")
        return ok([
          opOutcome(op, {
            status: "failed",
            code: "validation_failed",
            message: `Mailchimp has no "${target.type}" to opt out of; a topic here is the audience, a group (interest), a tag or a GDPR marketing permission.`,
          }),
        ]);
      if (target.kind === "permission") {
        const permission = permissionOf(m.value, target.id);
        if (!permission.ok) return ok([fromError(op, permission.error)]);
        if (permission.value.enabled !== true)
          return ok([
            opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
          ]);
        const written = patched(
          op,
          await setPermission(listId, op.external_id, permission.value.marketing_permission_id, false),
          op.external_id,
        );
        if (m.value.status !== "archived" || written[0]?.status !== "succeeded") return ok(written);
        return ok([
          await archiveAgain(op, listId, "its marketing permission is withdrawn", { sendable: true }),
        ]);
      }
      if (target.kind === "interest") {
        if (m.value.interests?.[target.id] !== true)
          return ok([
            opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
          ]);
        const written = patched(
          op,
          await patchMember(listId, op.external_id, { interests: { [target.id]: false } }, "consent"),
          op.external_id,
        );
        // A write to an archived member brings it back as it was, subscribed included: the group
        // is unticked, and the member archived again, as the account left it.
        if (m.value.status !== "archived" || written[0]?.status !== "succeeded") return ok(written);
        return ok([await archiveAgain(op, listId, "its group is unticked", { sendable: true })]);
      }
      if (target.kind === "tag") {
        if (!(m.value.tags ?? []).some((t) => String(t.id) === target.id))
          return ok([
            opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
          ]);
        return ok(
          patched(op, await setTag(listId, m.value.id, target.id, "inactive", "consent"), op.external_id),
        );
      }
      if (m.value.status === "unsubscribed")
        return ok([
          opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
        ]);
      if (m.value.status === "archived") return ok(await optOutArchived(op, listId, m.value.email_address));
      if (m.value.status === "cleaned")
        // Mailchimp sends nothing to a cleaned member, and nothing can subscribe it again but the
        // person (Member In Compliance State); the opt-out stays in the ledger.
        return ok([
          opOutcome(op, {
            status: "succeeded",
            code: "already_applied",
            external_id: op.external_id,
            message: `The member is ${m.value.status} in Mailchimp and receives nothing.`,
          }),
        ]);
      return ok(
        patched(
          op,
          await patchMember(listId, op.external_id, { status: "unsubscribed" }, "consent"),
          op.external_id,
        ),
      );
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  const recordOptIn = (op: Extract<ConnectorOperation, { kind: "record_opt_in" }>): Promise<Run> => {
    const target = listOfScope(op.scope);
    // Only a group (interest) or a marketing permission can take a person's own opt-in; the
    // audience itself needs their confirmation (request_resubscribe), and Concord never writes
    // anyone else's opt-in.
    if (
      (target.kind !== "interest" && target.kind !== "permission") ||
      !isPersonsOwnOptIn({
        actor: op.origin.actor,
        mechanism: op.origin.mechanism,
        request_reference: op.origin.request_reference,
      })
    )
      return Promise.resolve([
        opOutcome(op, {
          status: "failed",
          code: "consent_requires_contact_action",
          message:
            "Only the person can subscribe again in Mailchimp (its confirmation email or a sign-up form); use request_resubscribe.",
        }),
      ]);
    if (target.kind === "interest")
      return withAudience(async (listId) =>
        ok(
          patched(
            op,
            await patchMember(listId, op.external_id, { interests: { [target.id]: true } }, "consent"),
            op.external_id,
          ),
        ),
      ).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));
    return withAudience(async (listId) => {
      const m = await fetchMember(listId, op.external_id, "consent");
      if (!m.ok) return m;
      if (!m.value) return ok([notInAudience(op)]);
      // A write brings an archived member back as it was, subscribed included: for one purpose's
      // consent the whole audience's email would start again.
      if (m.value.status === "archived")
        return ok([
          opOutcome(op, {
            status: "failed",
            code: "conflict",
            external_id: op.external_id,
            message:
              "The member is archived in Mailchimp, and a write would bring it back to the audience: the permission is not given there.",
          }),
        ]);
      const permission = permissionOf(m.value, target.id);
      if (!permission.ok) return ok([fromError(op, permission.error)]);
      if (permission.value.enabled === true)
        return ok([
          opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
        ]);
      return ok(
        patched(
          op,
          await setPermission(listId, op.external_id, permission.value.marketing_permission_id, true),
          op.external_id,
        ),
      );
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));
  };

  /** Gives or withdraws one GDPR marketing permission of a member (a PATCH, at consent priority). */
  const setPermission = (listId: string, id: string, permissionId: string, enabled: boolean) =>
    patchMember(
      listId,
      id,
      { marketing_permissions: [{ marketing_permission_id: permissionId, enabled }] },
      "consent",
    );

  /**
   * The member's GDPR marketing permission a topic names, by its text (or its id): Mailchimp lists
   * an audience's permissions on its members only.
   */
  const permissionOf = (
    m: McMember,
    named: string,
  ): ConnectorResult<NonNullable<McMember["marketing_permissions"]>[number]> => {
    const permissions = m.marketing_permissions ?? [];
    const key = named.trim().toLowerCase();
    const found = permissions.find(
      (p) =>
        (p.text ?? "").trim().toLowerCase() === key || p.marketing_permission_id.trim().toLowerCase() === key,
    );
    if (found !== undefined) return ok(found);
    return err({
      code: "validation_failed",
      message:
        permissions.length === 0
          ? `The Mailchimp audience has no GDPR marketing permissions, so it has none named “${named}”; turn on its GDPR fields or map the topic to another construct.`
          : `The Mailchimp audience has no GDPR marketing permission named “${named}”; its permissions are ${permissions.map((p) => `“${(p.text ?? "").trim() || p.marketing_permission_id}”`).join(", ")}.`,
    });
  };

  const requestResubscribe = (
    op: Extract<ConnectorOperation, { kind: "request_resubscribe" }>,
  ): Promise<Run> =>
    withAudience(async (listId) => {
      // The request is the signup the person's confirmation answers: its time is what tells the
      // confirmation from a later subscription that keeps the confirmation's trace (mapping.ts).
      const r = await patchMember(
        listId,
        op.external_id,
        { status: "pending", timestamp_signup: runtime.now().toISOString() },
        "consent",
      );
      if (!r.ok) return r;
      if (r.value.status === 400 && /compliance/i.test(r.value.title))
        return ok([
          opOutcome(op, {
            status: "failed",
            code: "consent_requires_contact_action",
            message: `${r.value.title}: ${r.value.detail} Only the person can come back, through a sign-up form.`,
          }),
        ]);
      if (r.value.status >= 400) return ok(patched(op, r, op.external_id));
      return ok([
        opOutcome(op, {
          status: "pending_contact_action",
          external_id: op.external_id,
          message: "Mailchimp sent its confirmation email; the member stays unsubscribed until they confirm.",
        }),
      ]);
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  const updateContact = (op: Extract<ConnectorOperation, { kind: "update_contact" }>): Promise<Run> =>
    withAudience(async (listId) => {
      const merge = mergeFieldsOf(op);
      if (Object.keys(merge).length === 0)
        return ok([
          opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
        ]);
      return ok(
        patched(
          op,
          await patchMember(listId, op.external_id, { merge_fields: merge }, "write"),
          op.external_id,
        ),
      );
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  const changeEmail = (op: Extract<ConnectorOperation, { kind: "change_email" }>): Promise<Run> => {
    if (!isPlausibleEmail(op.new_email))
      return Promise.resolve([
        opOutcome(op, {
          status: "failed",
          code: "validation_failed",
          message: `"${op.new_email}" is not a usable email address.`,
        }),
      ]);
    return withAudience(async (listId) => {
      // The contact id Concord names the member by stays; its subscriber hash changes.
      const current = await fetchMember(listId, op.external_id, "write");
      if (!current.ok) return current;
      if (
        current.value &&
        current.value.email_address.trim().toLowerCase() === op.new_email.trim().toLowerCase()
      )
        return ok([
          opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
        ]);
      const r = await patchMember(listId, op.external_id, { email_address: op.new_email.trim() }, "write");
      return ok(patched(op, r, op.external_id));
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));
  };

  /**
   * An archived member keeps the status it had, and anything that brings it back (a PUT, an import,
   * an admin) brings that back: a subscribed member archived would return subscribed. So the opt-out
   * is written (PUT, which brings it back unsubscribed) and the member archived again (DELETE).
   */
  const optOutArchived = async (
    op: Extract<ConnectorOperation, { kind: "record_opt_out" }>,
    listId: string,
    email: string,
  ): Promise<Run> => {
    const put = await client.request({
      method: "PUT",
      path: `/lists/${listId}/members/${encodeURIComponent(op.external_id)}`,
      json: { email_address: email, status_if_new: "unsubscribed", status: "unsubscribed" },
      priority: "consent",
      accept: [400, 404],
    });
    if (!put.ok) return [fromError(op, put.error)];
    if (put.value.status >= 400) {
      const p = problemOf(put.value.body);
      return [
        opOutcome(op, {
          status: "failed",
          code: put.value.status === 404 ? "not_found" : "validation_failed",
          message:
            `Mailchimp did not unsubscribe the archived member: ${p.title ?? ""} ${p.detail ?? ""}`.trim(),
        }),
      ];
    }
    return [await archiveAgain(op, listId, "it is unsubscribed")];
  };

  /**
   * Archives again a member an opt-out's write brought back; `done` says what the write did. A
   * group's opt-out brings the member back as it was before the account archived it, subscribed
   * too (`sendable`): if it cannot be archived again, the outcome fails, saying so, since the
   * person may now get the audience's email the account had stopped.
   */
  const archiveAgain = async (
    op: Extract<ConnectorOperation, { kind: "record_opt_out" }>,
    listId: string,
    done: string,
    { sendable }: { sendable: boolean } = { sendable: false },
  ): Promise<OperationOutcome> => {
    const answer = await client.request({
      method: "DELETE",
      path: `/lists/${listId}/members/${encodeURIComponent(op.external_id)}`,
      priority: "consent",
      accept: [404, 405],
    });
    // 405: Mailchimp archives no pending or cleaned member, which the write may have brought back.
    const refusal = !answer.ok
      ? answer.error.message
      : answer.value.status === 405
        ? `Mailchimp would not archive it: ${problemOf(answer.value.body).detail ?? "405"}`
        : undefined;
    if (refusal !== undefined && sendable)
      return opOutcome(op, {
        status: "failed",
        code: answer.ok ? "conflict" : answer.error.code,
        external_id: op.external_id,
        message: `The member was archived: ${done}, which brought it back to the audience as it was before it was archived, and archiving it again failed (${refusal}). Archive it in Mailchimp: until then it may get the audience's email.`,
      });
    return opOutcome(op, {
      status: "succeeded",
      external_id: op.external_id,
      message:
        refusal === undefined
          ? `The member was archived: ${done} and it is archived again, so nothing brings it back as it was.`
          : `The member was archived: ${done}, but archiving it again failed (${refusal}); it shows in the audience again.`,
    });
  };

  /** Archived in the audience (DELETE; the member keeps its status); archived or gone already is done. */
  const removeContact = (op: Extract<ConnectorOperation, { kind: "remove_contact" }>): Promise<Run> =>
    withAudience(async (listId) => {
      const r = await client.request({
        method: "DELETE",
        path: `/lists/${listId}/members/${encodeURIComponent(op.external_id)}`,
        priority: "write",
        accept: [404, 405],
      });
      if (!r.ok) return r;
      if (r.value.status !== 405)
        return ok([
          opOutcome(op, {
            status: "succeeded",
            ...(r.value.status === 404 ? { code: "already_applied" as const } : {}),
            external_id: op.external_id,
          }),
        ]);
      // Mailchimp archives no member that is archived, cleaned or pending (405): which one this is
      // decides whether it is out of the audience's email, so it is read, not assumed.
      const now = await fetchMember(listId, op.external_id, "write");
      if (!now.ok) return now;
      const status = now.value?.status;
      if (status === undefined || status === "archived")
        return ok([
          opOutcome(op, { status: "succeeded", code: "already_applied", external_id: op.external_id }),
        ]);
      if (status === "cleaned")
        return ok([
          opOutcome(op, {
            status: "succeeded",
            code: "already_applied",
            external_id: op.external_id,
            message:
              "The member is cleaned (its address bounced): Mailchimp sends it nothing and archives no cleaned member.",
          }),
        ]);
      return ok([
        opOutcome(op, {
          status: "failed",
          code: "conflict",
          message: `Mailchimp would not archive the member (${status}: ${problemOf(r.value.body).detail ?? "405"}). ${status === "pending" ? "It waits for its confirmation email, which it may still answer: unsubscribe it in Mailchimp if it must get nothing." : "Archive it in Mailchimp."}`,
        }),
      ]);
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  /** Erasure: Mailchimp's permanent delete (its personal data gone; the address cannot be imported again). */
  const eraseContact = (op: Extract<ConnectorOperation, { kind: "erase_contact" }>): Promise<Run> =>
    withAudience(async (listId) => {
      // The member is read first: the delete takes only its subscriber hash, and a 404 there must
      // mean that it is gone, not that the path named it otherwise.
      const hash = await hashOf(listId, op.external_id, "consent");
      if (!hash.ok) return hash;
      if (hash.value === null)
        return ok([
          opOutcome(op, {
            status: "succeeded",
            code: "already_applied",
            external_id: op.external_id,
            message: "Mailchimp holds no such member: nothing of it is left to delete.",
          }),
        ]);
      const r = await client.request({
        method: "POST",
        path: `/lists/${listId}/members/${encodeURIComponent(hash.value)}/actions/delete-permanent`,
        priority: "consent",
        accept: [404],
        // Sent again after it was done, it finds no member (404): done.
        idempotent: true,
      });
      if (!r.ok) return r;
      return ok([
        opOutcome(op, {
          status: "succeeded",
          ...(r.value.status === 404 ? { code: "already_applied" as const } : {}),
          external_id: op.external_id,
          message: "Deleted permanently: Mailchimp removed the member's personal data.",
        }),
      ]);
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  /**
   * The pair's list rules on Mailchimp's side: a list is a tag (`tag:<id>`), created, renamed and
   * deleted as a static segment; deleting a tag takes it off its members, never the members. Groups
   * (`interest:<id>`) are the audience's form: Concord leaves their names to Mailchimp.
   */
  const listChange = (
    op: Extract<ConnectorOperation, { kind: "create_list" | "rename_list" | "delete_list" }>,
  ): Promise<Run> =>
    withAudience(async (listId): Promise<ConnectorResult<Run>> => {
      if (op.kind === "create_list") {
        const r = await client.request({
          method: "POST",
          path: `/lists/${listId}/segments`,
          json: { name: op.name, static_segment: [] },
          priority: "write",
          accept: [400],
        });
        if (!r.ok) return r;
        const id = (r.value.body as { id?: number | string } | undefined)?.id;
        if (r.value.status === 400 || id === undefined) {
          const p = problemOf(r.value.body);
          return ok([
            opOutcome(op, {
              status: "failed",
              code: "validation_failed",
              message: `Mailchimp did not create the tag “${op.name}”: ${p.detail ?? p.title ?? "refused"}`,
            }),
          ]);
        }
        return ok([opOutcome(op, { status: "succeeded", external_id: `tag:${String(id)}` })]);
      }
      if (!op.list_id.startsWith("tag:"))
        return ok([
          opOutcome(op, {
            status: "failed",
            code: "unsupported",
            message: `${op.list_id} is a Mailchimp group: rename or delete it in Mailchimp.`,
          }),
        ]);
      const tagId = op.list_id.slice("tag:".length);
      const r = await client.request({
        method: op.kind === "rename_list" ? "PATCH" : "DELETE",
        path: `/lists/${listId}/segments/${encodeURIComponent(tagId)}`,
        ...(op.kind === "rename_list" ? { json: { name: op.name } } : {}),
        priority: "write",
        accept: [404],
      });
      if (!r.ok) return r;
      return ok([
        opOutcome(op, {
          status: "succeeded",
          ...(r.value.status === 404 && op.kind === "delete_list"
            ? { code: "already_applied" as const }
            : {}),
          external_id: op.list_id,
        }),
      ]);
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  const createContact = (op: Extract<ConnectorOperation, { kind: "create_contact" }>): Promise<Run> => {
    if (!isPlausibleEmail(op.email))
      return Promise.resolve([
        opOutcome(op, {
          status: "failed",
          code: "validation_failed",
          message: `"${op.email}" is not a usable email address.`,
        }),
      ]);
    return withAudience(async (listId) => {
      // A record made without a consent intent gets no marketing status: transactional only.
      const r = await client.request({
        method: "POST",
        path: `/lists/${listId}/members`,
        json: { email_address: op.email.trim(), status: "transactional", merge_fields: mergeFieldsOf(op) },
        priority: "write",
        accept: [400],
      });
      if (!r.ok) return r;
      if (r.value.status === 400) {
        const p = problemOf(r.value.body);
        return ok([
          opOutcome(op, {
            status: "failed",
            code: /exists/i.test(p.title ?? "") ? "conflict" : "validation_failed",
            message: `${p.title ?? ""}: ${p.detail ?? ""}`,
          }),
        ]);
      }
      const created = McMemberSchema.safeParse(r.value.body);
      return ok([
        opOutcome(op, {
          status: "succeeded",
          external_id: created.success ? memberId(created.data) : subscriberHash(op.email),
        }),
      ]);
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));
  };

  // --- upsert_contacts ------------------------------------------------------------------------

  type Upsert = Extract<ConnectorOperation, { kind: "upsert_contacts" }>;
  type Item = Upsert["items"][number];

  const batchSubscribe = async (
    listId: string,
    members: Record<string, unknown>[],
    updateExisting: boolean,
  ): Promise<ConnectorResult<McBatchAnswer>> => {
    const r = await client.request({
      method: "POST",
      path: `/lists/${listId}`,
      json: { members, update_existing: updateExisting },
      priority: "write",
      schema: McBatchAnswerSchema,
    });
    return r.ok ? ok(r.value.body) : r;
  };

  const upsertContacts = (op: Upsert): Promise<Run> =>
    withAudience(async (listId) => {
      const status = newMemberStatus(op.consent_intent);
      const interests = Object.fromEntries(
        op.list_ids.filter((l) => l.startsWith("interest:")).map((l) => [l.slice(9), true]),
      );
      const tags = op.list_ids.filter((l) => l.startsWith("tag:")).map((l) => l.slice(4));
      const outcome = new Map<string, OperationOutcome>();
      const set = (item: Item, o: Omit<OperationOutcome, "op_id" | "item_id">): void => {
        outcome.set(item.item_id, { op_id: op.op_id, item_id: item.item_id, ...o });
      };
      const screened = screenUpsertItems(op.op_id, op.items, isPlausibleEmail);
      for (const o of screened.outcomes) outcome.set(o.item_id ?? "", o);
      const byEmail = screened.byEmail;
      const known = screened.send.filter((item) => item.external_id !== undefined);
      const unknown = screened.send.filter((item) => item.external_id === undefined);
      const itemOf = (email: string | undefined): Item | undefined =>
        email ? byEmail.get(emailKey(email)) : undefined;
      let stop: ConnectorError | undefined;
      const tagged: Item[] = [];
      const size = MAILCHIMP_LIMITS.batch.import_contacts ?? 500;

      /** Sends one batch; records each item's outcome; answers the items Mailchimp already had. */
      const send = async (items: Item[], asNew: boolean): Promise<Item[]> => {
        const exists: Item[] = [];
        for (let i = 0; i < items.length && !stop; i += size) {
          const part = items.slice(i, i + size);
          const members = part.map((item) => ({
            email_address: item.email.trim(),
            // Only a new member gets a status, and only the one the plan's consent intent gives:
            // an upsert never changes whether an existing member is subscribed.
            ...(asNew ? { status } : {}),
            // A confirmation email asked for now: its time is the signup the person's confirmation
            // answers, which tells that confirmation from a later subscription that keeps its trace
            // (mapping.ts), as for a resubscribe request.
            ...(asNew && status === "pending" ? { timestamp_signup: runtime.now().toISOString() } : {}),
            merge_fields: mergeFieldsOf(item),
            ...(Object.keys(interests).length > 0 ? { interests } : {}),
          }));
          const r = await batchSubscribe(listId, members, !asNew);
          if (!r.ok) {
            if (stopsAll(r.error)) stop = r.error;
            for (const item of part)
              outcome.set(item.item_id, fromError(op, r.error, { item_id: item.item_id }));
            continue;
          }
          // Batch answers carry the subscriber hash, not the contact id Concord names members by:
          // a new member is linked when the read after the sync finds it by address, as an
          // import's contacts are; an existing one keeps its id.
          for (const m of [...r.value.new_members, ...r.value.updated_members]) {
            const item = itemOf(m.email_address);
            if (!item) continue;
            set(item, {
              status: "succeeded",
              ...(item.external_id ? { external_id: item.external_id } : {}),
            });
            tagged.push(item);
          }
          for (const e of r.value.errors) {
            const item = itemOf(e.email_address);
            if (!item) continue;
            if (e.error_code === "ERROR_CONTACT_EXISTS") {
              exists.push(item);
              continue;
            }
            const compliance = /compliance|forgotten|permanently deleted/i.test(e.error ?? "");
            set(item, {
              status: "failed",
              code: compliance ? "cannot_add_to_list" : "validation_failed",
              message: e.error ?? e.field_message ?? "Mailchimp refused the member.",
            });
          }
          for (const item of part)
            if (!outcome.has(item.item_id) && !exists.includes(item))
              set(item, {
                status: "failed",
                code: "bad_response",
                message: "Mailchimp's batch answer did not mention this member.",
              });
        }
        return exists;
      };
      // A member Mailchimp already has at an address Concord holds no member for (added since the
      // last read, archived, or a shared address left for review) is left as it is: written blind,
      // an archived member would come back subscribed, and a group it unticked or a tag a topic
      // opt-out took off would come back. The read after the sync links it, and the plan after
      // that writes what its state allows.
      const existing = await send(unknown, true);
      for (const item of existing)
        set(item, {
          status: "skipped",
          code: "conflict",
          message:
            "Mailchimp already has a member at this address that Concord has not read: left as it is until a read links it.",
        });
      await send(known, false);

      // Tags for the members now in the audience: one batch call per tag and 500 members.
      for (const tagId of tags) {
        if (stop) break;
        const items = tagged.filter((i) => outcome.get(i.item_id)?.status === "succeeded");
        for (let i = 0; i < items.length && !stop; i += size) {
          const part = items.slice(i, i + size);
          const r = await client.request({
            method: "POST",
            path: `/lists/${listId}/segments/${encodeURIComponent(tagId)}`,
            json: { members_to_add: part.map((x) => x.email.trim()) },
            priority: "write",
            schema: McSegmentBatchSchema,
          });
          if (!r.ok) {
            if (stopsAll(r.error)) stop = r.error;
            for (const item of part)
              outcome.set(item.item_id, fromError(op, r.error, { item_id: item.item_id }));
            continue;
          }
          // The batch answers 200 with the addresses it did not tag: those members are in the
          // audience without the tag, so the list they were meant for does not hold them.
          for (const e of r.value.body.errors ?? [])
            for (const address of e.email_addresses ?? []) {
              const item = part.find((x) => x.email.trim().toLowerCase() === address.trim().toLowerCase());
              if (item)
                outcome.set(item.item_id, {
                  op_id: op.op_id,
                  item_id: item.item_id,
                  status: "failed",
                  code: "cannot_add_to_list",
                  message: `Mailchimp did not add the tag ${tagId}: ${e.error ?? "no reason given"}`,
                });
            }
        }
      }
      if (stop)
        for (const item of op.items)
          if (!outcome.has(item.item_id))
            outcome.set(item.item_id, fromError(op, stop, { item_id: item.item_id }));
      return ok(
        op.items.map(
          (item) =>
            outcome.get(item.item_id) ??
            fromError(
              op,
              { code: "vendor_unavailable", message: "Not attempted." },
              { item_id: item.item_id },
            ),
        ),
      );
    }).then((r) =>
      r.ok ? r.value : op.items.map((item) => fromError(op, r.error, { item_id: item.item_id })),
    );

  // --- memberships ----------------------------------------------------------------------------

  const memberships = (
    op: Extract<ConnectorOperation, { kind: "add_list_members" | "remove_list_members" }>,
  ): Promise<Run> =>
    withAudience(async (listId) => {
      const on = op.kind === "add_list_members";
      const problems: string[] = [];
      for (const list of new Set(op.list_ids)) {
        const target = listOfScope({ kind: "construct", construct: { type: "list", id: list } });
        for (const id of new Set(op.external_ids)) {
          let r: ConnectorResult<{ status: number; title: string; detail: string }>;
          if (target.kind === "interest")
            r = await patchMember(listId, id, { interests: { [target.id]: on } }, "write");
          else if (target.kind === "tag") {
            const hash = await hashOf(listId, id, "write");
            if (!hash.ok) return hash;
            r =
              hash.value === null
                ? ok({ status: 404, title: "Resource Not Found", detail: "no such member" })
                : await setTag(listId, hash.value, target.id, on ? "active" : "inactive", "write");
          } else
            return ok([
              opOutcome(op, {
                status: "failed",
                code: "validation_failed",
                message: `"${list}" is neither a tag nor a group (interest) of the audience.`,
              }),
            ]);
          if (!r.ok) return r;
          if (r.value.status >= 400) problems.push(`${id}: ${r.value.title} ${r.value.detail}`.trim());
        }
      }
      if (problems.length > 0)
        return ok([
          opOutcome(op, {
            status: "failed",
            code: "validation_failed",
            message: problems.slice(0, 5).join("; "),
          }),
        ]);
      return ok([opOutcome(op, { status: "succeeded" })]);
    }).then((r) => (r.ok ? r.value : [fromError(op, r.error)]));

  const run = runByKind({
    record_opt_out: recordOptOut,
    record_opt_in: recordOptIn,
    request_resubscribe: requestResubscribe,
    upsert_contacts: upsertContacts,
    add_list_members: memberships,
    remove_list_members: memberships,
    update_contact: updateContact,
    change_email: changeEmail,
    create_contact: createContact,
    remove_contact: removeContact,
    erase_contact: eraseContact,
    create_list: listChange,
    rename_list: listChange,
    delete_list: listChange,
  });

  const apply = (operations: readonly ConnectorOperation[]): Promise<OperationOutcome[]> => {
    tagNames = undefined;
    return applyConsentFirst(VENDOR, operations, run);
  };

  return { check, read, get, lists, apply };
}

/** The audience a connection names (by id or name), or the account's only one; else why not. */
/**
 * The announcements of this audience: a delivery that names another (a webhook left on an audience
 * the connection kept in step before) is about someone of that audience, not this one's member.
 */
const announcedHere = (changes: readonly WebhookChange[] | undefined, listId: string): WebhookChange[] =>
  (changes ?? []).filter((c) => c.list_id === undefined || c.list_id === listId);

async function findMailchimpAudience(
  client: MailchimpClient,
  wanted: string | undefined,
): Promise<
  ConnectorResult<{ id: string; name: string; /** The account's other audiences. */ others: string[] }>
> {
  const r = await client.request({
    method: "GET",
    path: "/lists",
    query: { count: 1000, fields: "lists.id,lists.name,total_items" },
    priority: "read",
    schema: McAudiencesSchema,
  });
  if (!r.ok) return r;
  const lists = r.value.body.lists;
  const found =
    wanted === undefined
      ? lists.length === 1
        ? lists[0]
        : undefined
      : (lists.find((l) => l.id === wanted) ??
        lists.find((l) => l.name.toLowerCase() === wanted.toLowerCase()));
  if (found)
    return ok({
      id: found.id,
      name: found.name,
      others: lists.filter((l) => l.id !== found.id).map((l) => l.id),
    });
  const names = lists.map((l) => `“${l.name}” (${l.id})`).join(", ") || "none";
  return err({
    code: "validation_failed",
    message:
      wanted === undefined
        ? `The Mailchimp account has ${lists.length} audiences; name the one to keep in step in the connection's options.audience (by id or name). Audiences: ${names}.`
        : `No Mailchimp audience “${wanted}” (options.audience); audiences: ${names}.`,
  });
}

/**
 * Subscribes Concord's receiver to the connection's audience, as an integrator does once: the
 * secret goes in the URL (Mailchimp signs nothing), member events from people and from account
 * users each to a URL of their own (`by=user`, `by=admin`: a delivery does not say who acted, and an
 * opt-out only its webhook carries must be credited to the right one, DESIGN.md §2 rule 4);
 * Concord's own API writes are left out. Idempotent: a webhook with the same URL is kept, and one of
 * an earlier Concord for both sources at once is removed. Mailchimp checks the URL with a GET
 * before it creates a webhook, so the receiver must be up. The receiver's webhooks on the account's
 * other audiences (the connection kept another in step before) are removed: their deliveries are
 * about people of another audience.
 */
export async function registerMailchimpWebhook(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  receiverUrl: string,
  secret: string,
): Promise<ConnectorResult<{ created: number; kept: number; removed: number }>> {
  const options = MailchimpOptionsSchema.parse(settings.options ?? {});
  const client = createMailchimpClient(settings, runtime, MAILCHIMP_LIMITS);
  const audience = await findMailchimpAudience(client, options.audience);
  if (!audience.ok) return audience;
  const keyed = new URL(receiverUrl);
  keyed.searchParams.set(WEBHOOK_KEY_PARAM, secret);
  const existing = await client.request({
    method: "GET",
    path: `/lists/${audience.value.id}/webhooks`,
    priority: "write",
    schema: McWebhooksSchema,
  });
  if (!existing.ok) return existing;
  let created = 0;
  let kept = 0;
  for (const by of WEBHOOK_ACTORS) {
    const url = new URL(withActor(keyed, by));
    if (existing.value.body.webhooks.some((w) => w.url === url.toString())) {
      kept += 1;
      continue;
    }
    const made = await createWebhook(client, audience.value.id, url, by, receiverUrl);
    if (!made.ok) return made;
    created += 1;
  }
  // The receiver's other webhooks here, once the two are there: one for both sources (an earlier
  // Concord's) would deliver each event a second time without saying who acted, and one with an
  // older secret (rotated since) is refused at every delivery.
  const current = new Set(WEBHOOK_ACTORS.map((by) => withActor(keyed, by)));
  const stale = await removeReceiverWebhooks(
    client,
    audience.value.id,
    receiverUrl,
    (url) => !current.has(url),
    existing.value.body.webhooks,
  );
  if (!stale.ok) return stale;
  let removed = stale.value;
  for (const listId of audience.value.others) {
    const elsewhere = await removeReceiverWebhooks(client, listId, receiverUrl, () => true);
    if (!elsewhere.ok) return elsewhere;
    removed += elsewhere.value;
  }
  return ok({ created, kept, removed });
}

const withActor = (keyed: URL, by: (typeof WEBHOOK_ACTORS)[number]): string => {
  const url = new URL(keyed);
  url.searchParams.set(WEBHOOK_BY_PARAM, by);
  return url.toString();
};

/**
 * Removes the receiver's webhooks (its origin and path, any key or source) on an audience that
 * `remove` names; how many it removed. `listed`: the audience's webhooks, when already read.
 */
async function removeReceiverWebhooks(
  client: MailchimpClient,
  listId: string,
  receiverUrl: string,
  remove: (url: string) => boolean,
  listed?: readonly { id: string; url: string }[],
): Promise<ConnectorResult<number>> {
  const receiver = new URL(receiverUrl);
  const ours = (url: string): boolean => {
    try {
      const u = new URL(url);
      return u.origin === receiver.origin && u.pathname === receiver.pathname;
    } catch {
      return false;
    }
  };
  let hooks = listed;
  if (hooks === undefined) {
    const read = await client.request({
      method: "GET",
      path: `/lists/${listId}/webhooks`,
      priority: "write",
      schema: McWebhooksSchema,
    });
    if (!read.ok) return read;
    hooks = read.value.body.webhooks;
  }
  let removed = 0;
  for (const hook of hooks.filter((w) => ours(w.url) && remove(w.url))) {
    const gone = await client.request({
      method: "DELETE",
      path: `/lists/${listId}/webhooks/${encodeURIComponent(hook.id)}`,
      priority: "write",
      accept: [404],
    });
    if (!gone.ok) return gone;
    removed += 1;
  }
  return ok(removed);
}

async function createWebhook(
  client: MailchimpClient,
  listId: string,
  url: URL,
  by: (typeof WEBHOOK_ACTORS)[number],
  receiverUrl: string,
): Promise<ConnectorResult<void>> {
  const created = await client.request({
    method: "POST",
    path: `/lists/${listId}/webhooks`,
    json: {
      url: url.toString(),
      events: WEBHOOK_EVENTS,
      sources: { ...WEBHOOK_SOURCES, user: by === "user", admin: by === "admin" },
    },
    priority: "write",
    accept: [400],
    schema: McWebhookSchema.or(McProblemSchema),
  });
  if (!created.ok) return created;
  if (created.value.status === 400) {
    const p = problemOf(created.value.body);
    return err({
      code: "validation_failed",
      message:
        `Mailchimp did not create the webhook for ${receiverUrl}: ${p.detail ?? p.title ?? "refused"} ${(p.errors ?? []).map((e) => e.message ?? "").join(" ")}`.trim(),
    });
  }
  return ok(undefined);
}
