/**
 * A model of what a fully successful execute-and-commit does to the observed state: each operation
 * applied to the records it names, then baselines set to what both sides now agree on. Used to
 * check convergence (re-planning after the effects yields nothing) and for a dry run's "after" view.
 */
import {
  sameObservedScope,
  shownConsent,
  type ConsentFact,
  type ObservedScope,
} from "../core/consent/system-consent";
import type { ConnectionId } from "../core/identity/canonical-contact";
import { sameEmail } from "../core/identity/normalise-email";
import type { Plan } from "./plan";
import { leftAtKey, membershipKey, topicListKey, topicListOf } from "./plan-input";
import type {
  CrmRecordState,
  PlanAudience,
  PlanPlatform,
  PlanContact,
  PlanInput,
  PlatformRecordState,
  RecordProfile,
} from "./plan-input";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Returns the contacts as the next read would see them after every operation of `plan` succeeded. */
export function applyPlanEffects(input: PlanInput, plan: Plan): PlanContact[] {
  const crmId = input.pair.crm.connection_id;
  const contacts = [...input.contacts].map(cloneContact);
  const byId = new Map(contacts.map((c) => [c.contact.id, c]));
  const at = (id: string): Mutable<PlanContact> => {
    const c = byId.get(id);
    if (!c) throw new Error(`the plan names an unknown contact ${id}`);
    return c;
  };
  const record = (c: Mutable<PlanContact>, connection: ConnectionId): RecordProfile | undefined =>
    connection === crmId ? c.crm : c.platforms[connection];

  for (const planned of plan.operations) {
    const op = planned.operation;
    const conn = planned.connection_id;
    for (const [index, contactId] of planned.contact_ids.entries()) {
      const c = at(contactId);
      const rec = record(c, conn);
      switch (op.kind) {
        case "record_opt_out":
        case "record_opt_in": {
          const status = op.kind === "record_opt_out" ? "opted_out" : "opted_in";
          const p = conn === crmId ? undefined : c.platforms[conn];
          // A list standing for a topic: opting out of the topic is leaving the list.
          const scope = op.scope;
          if (p && scope.kind === "construct" && isMembershipTarget(input, conn, scope)) {
            if (status === "opted_out")
              c.platforms = {
                ...c.platforms,
                [conn]: { ...p, list_ids: p.list_ids.filter((l) => l !== scope.construct.id) },
              };
            break;
          }
          // Otherwise the system now shows the scope as written (its state and its record alike).
          const holder = conn === crmId ? c.crm : p;
          if (holder) holder.consent_state = withFact(holder.consent_state, op.scope, status);
          break;
        }
        case "request_resubscribe": {
          const p = c.platforms[conn];
          if (p) c.platforms = { ...c.platforms, [conn]: { ...p, resubscribe_requested: true } };
          break;
        }
        case "upsert_contacts": {
          const item = op.items[index];
          if (!item) break;
          const created: PlatformRecordState = {
            external_id: item.external_id ?? `new_${item.item_id}`,
            email: item.email,
            ...(item.first_name !== undefined ? { first_name: item.first_name } : {}),
            ...(item.last_name !== undefined ? { last_name: item.last_name } : {}),
            fields: { ...(item.fields ?? {}) },
            list_ids: [...op.list_ids],
            consent_state: [],
            resubscribe_requested: false,
          };
          c.platforms = { ...c.platforms, [conn]: created };
          break;
        }
        case "add_list_members":
        case "remove_list_members":
          if (rec) {
            const lists = new Set(rec.list_ids);
            for (const l of op.list_ids) {
              if (op.kind === "add_list_members") lists.add(l);
              else lists.delete(l);
            }
            setRecord(c, conn, crmId, { ...rec, list_ids: [...lists].sort() });
          }
          break;
        case "change_email":
          if (conn === crmId && c.crm)
            c.crm.emails = [
              ...c.crm.emails.map((e) => ({ ...e, primary: false })),
              { address: op.new_email, primary: true },
            ];
          else {
            const p = c.platforms[conn];
            if (p) c.platforms = { ...c.platforms, [conn]: { ...p, email: op.new_email } };
          }
          break;
        case "update_contact":
          if (rec)
            setRecord(c, conn, crmId, {
              ...rec,
              ...(op.first_name !== undefined ? { first_name: op.first_name } : {}),
              ...(op.last_name !== undefined ? { last_name: op.last_name } : {}),
              fields: { ...rec.fields, ...(op.fields ?? {}) },
            });
          break;
        case "create_contact":
          c.crm = {
            external_id: `new_${contactId}`,
            emails: [{ address: op.email, primary: true }],
            first_name: op.first_name ?? null,
            last_name: op.last_name ?? null,
            fields: {},
            list_ids: [],
            consent_state: [],
          };
          break;
        case "remove_contact":
          if (rec && conn !== crmId) setRecord(c, conn, crmId, { ...rec, deleted: true });
          break;
      }
    }
  }

  // Commit: baselines become what both sides now agree on.
  for (const c of contacts) {
    const agreed = agreedBaselines(input.pair, input.fields, c, { now: input.as_of, executed: true });
    if (agreed) c.baselines = agreed;
  }
  return contacts;
}

/**
 * The baselines a contact's records agree on now: per platform, each mapped field whose CRM and
 * platform values are equal, and the email when both hold the same address; fields that differ keep
 * their last agreed value. Undefined when the contact has no CRM record.
 *
 * An audience's membership the CRM's list dropped, which a plan carried out has taken off the
 * platform's list (`remove_membership`; `at.executed`, when the platform's record is not read
 * again yet), is `removing`: once the platform's list is read without them, that is Concord's
 * removal, not their leave, whatever the CRM's list says by then.
 *
 * A platform's list, group or tag standing for a topic is kept as well (`topicListKey`): `member`
 * while the record is in it; `left` once it is out of it after being in (the person's preference
 * form there, an admin there, or a topic opt-out written to it), with when they left at the latest
 * under `leftAtKey` (`seenOut`). Not when Concord took them out for the CRM's list, nor when the
 * record left the account (unsubscribed, deleted, archived: a platform may drop every list then).
 * Left stays left when the CRM drops them and adds them again: the CRM's list is the
 * organisation's, not the person's choice. Only being in it again ends it (`planPair` puts them
 * back for their own opt-in to the topic made after they left).
 */
export function agreedBaselines(
  pair: PlanInput["pair"],
  fields: PlanInput["fields"],
  c: PlanContact,
  at: BaselineMoment,
): Record<ConnectionId, Record<string, string | null>> | undefined {
  if (!c.crm) return undefined;
  const { now, executed } = at;
  const baselines: Record<ConnectionId, Record<string, string | null>> = { ...(c.baselines ?? {}) };
  const crmPrimary = c.crm.emails.find((e) => e.primary)?.address;
  for (const p of pair.platforms) {
    const rec = c.platforms[p.connection_id];
    if (!rec) continue;
    const agreed: Record<string, string | null> = { ...(baselines[p.connection_id] ?? {}) };
    for (const m of fields) {
      const a = read(c.crm, m.crm, m.canonical);
      const b = read(rec, m.platform, m.canonical);
      if (a === b) agreed[m.canonical] = a;
    }
    if (crmPrimary !== undefined && sameEmail(crmPrimary, rec.email)) agreed["email"] = crmPrimary;
    const crmLists = new Set(c.crm.list_ids);
    const platformLists = new Set(rec.list_ids);
    const before = baselines[p.connection_id] ?? {};
    for (const a of p.audiences) {
      const key = membershipKey(a);
      const inCrm = crmLists.has(a.crm_list_id);
      const inPlatform = platformLists.has(a.platform_list_id);
      if (inCrm === inPlatform) agreed[key] = inCrm ? "member" : "absent";
      else if (!inCrm && removes(a) && (before[key] === "removing" || (executed && before[key] === "member")))
        // The CRM's list dropped them and Concord's plan, now carried out, took them out of the
        // platform's list (which is read without them at the next read).
        agreed[key] = "removing";
      // Out of the platform's list because Concord took them out, and the CRM has them again.
      else if (before[key] === "removing") agreed[key] = "absent";
    }
    const crmStopped = c.crm.stopped_list_ids ?? [];
    let kept = agreed;
    for (const t of p.targets) {
      const keptIn = topicListOf(t);
      if (keptIn === undefined) continue;
      const { topic, list } = keptIn;
      const key = topicListKey(topic, list);
      const leftAt = leftAtKey(topic, list);
      const was = kept[key];
      // Concord took them out for the CRM's list: dropped there (seen before, or now with the
      // removal), or its own flag stops email through it.
      const concordRemoved = (): boolean =>
        p.audiences.some(
          (a) =>
            a.platform_list_id === list &&
            (before[membershipKey(a)] === "removing" ||
              crmStopped.includes(a.crm_list_id) ||
              (agreed[membershipKey(a)] === "absent" && before[membershipKey(a)] === "member" && removes(a))),
        );
      // Left stays left until they are in the list again, whatever the CRM drops and adds. Only a
      // member seen out of the list asks why (most records are where they were).
      const left =
        !platformLists.has(list) &&
        (was === "left" || (was === "member" && !concordRemoved() && !leftTheAccount(p, rec)));
      const stays = platformLists.has(list) ? "member" : undefined;
      if (left) kept = was === "left" ? kept : { ...kept, [key]: "left", [leftAt]: seenOut(rec, now) };
      else if (was !== stays || kept[leftAt] !== undefined)
        kept = { ...without(kept, key, leftAt), ...(stays !== undefined ? { [key]: stays } : {}) };
    }
    baselines[p.connection_id] = kept;
  }
  return baselines;
}

/**
 * When baselines are worked out: `now`, and whether the plan they follow was carried out (after
 * execution, or in a model of it), so that its removals count as Concord's.
 */
export type BaselineMoment = { now: string; executed: boolean };

/** Whether Concord takes a member out of the platform's list when the CRM's list drops them. */
const removes = (a: PlanAudience): boolean =>
  a.direction !== "platform_to_crm" && a.delete_policy === "remove_membership";

/** Out of every list because the record left the platform or its account: no list's leave. */
function leftTheAccount(p: PlanPlatform, rec: PlatformRecordState): boolean {
  if (rec.deleted === true || rec.inactive === true) return true;
  const account = p.targets.find((t) => t.construct.kind === "account");
  return (
    account !== undefined &&
    account.shown_by === "facts" &&
    shownConsent(rec.consent_state, account.construct) === "opt_out"
  );
}

/**
 * When a record first seen out of a list left it, at the latest: its last change on the platform
 * (the leave, or something after it) when the system gives one, else now.
 */
function seenOut(rec: PlatformRecordState, now: string): string {
  const changed = rec.updated_at !== undefined ? Date.parse(rec.updated_at) : Number.NaN;
  return Number.isNaN(changed) || changed > Date.parse(now) ? now : new Date(changed).toISOString();
}

/** `record` less the given keys. */
function without(
  record: Readonly<Record<string, string | null>>,
  ...keys: string[]
): Record<string, string | null> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => !keys.includes(k)));
}

/**
 * The baselines a contact's records agree on now (`agreedBaselines`) when they differ from the
 * stored ones, else undefined: what a plan has to save. A member left undefined counts as absent,
 * as it would be once stored.
 */
export function movedBaselines(
  pair: PlanInput["pair"],
  fields: PlanInput["fields"],
  c: PlanContact,
  at: BaselineMoment,
): Record<ConnectionId, Record<string, string | null>> | undefined {
  const agreed = agreedBaselines(pair, fields, c, at);
  return agreed !== undefined && !sameBaselines(agreed, c.baselines ?? {}) ? agreed : undefined;
}

type Baselines = Readonly<Record<string, Readonly<Record<string, string | null>> | undefined>>;

function sameBaselines(a: Baselines, b: Baselines): boolean {
  const same = (x: Baselines[string], y: Baselines[string]): boolean => {
    if (x === undefined || y === undefined) return x === y;
    for (const k in x) if (x[k] !== y[k]) return false;
    for (const k in y) if (x[k] !== y[k]) return false;
    return true;
  };
  for (const k in a) if (!same(a[k], b[k])) return false;
  for (const k in b) if (!same(a[k], b[k])) return false;
  return true;
}

function setRecord(
  c: Mutable<PlanContact>,
  conn: ConnectionId,
  crmId: ConnectionId,
  rec: RecordProfile,
): void {
  if (conn === crmId) c.crm = { ...(c.crm as CrmRecordState), ...rec };
  else {
    const p = c.platforms[conn];
    if (p) c.platforms = { ...c.platforms, [conn]: { ...p, ...rec } };
  }
}

/** The facts with every fact of `scope` replaced by one state fact of `status`. */
function withFact(
  facts: readonly ConsentFact[],
  scope: ObservedScope,
  status: "opted_out" | "opted_in",
): ConsentFact[] {
  return [
    ...facts.filter((f) => !sameObservedScope(f.scope, scope)),
    { channel: "email", scope, status, source: "plan", label: `${status} (planned)`, role: "state" },
  ];
}

/** Whether the pair reads this construct of a platform by membership (a list standing for a topic). */
function isMembershipTarget(input: PlanInput, connection: ConnectionId, scope: ObservedScope): boolean {
  const p = input.pair.platforms.find((x) => x.connection_id === connection);
  return (
    p?.targets.some((t) => t.shown_by === "membership" && sameObservedScope(t.construct, scope)) === true
  );
}

function read(rec: RecordProfile, name: string, canonical: string): string | null {
  if (canonical === "first_name") return rec.first_name ?? null;
  if (canonical === "last_name") return rec.last_name ?? null;
  return rec.fields[name] ?? null;
}

type MutableCrm = Mutable<CrmRecordState>;
type MutablePlatform = Mutable<PlatformRecordState>;

function cloneContact(
  c: PlanContact,
): Mutable<PlanContact> & { crm?: MutableCrm; platforms: Record<ConnectionId, MutablePlatform> } {
  const platforms: Record<ConnectionId, MutablePlatform> = {};
  for (const [k, v] of Object.entries(c.platforms)) platforms[k] = { ...v };
  return {
    ...c,
    ...(c.crm ? { crm: { ...c.crm } } : {}),
    platforms,
  };
}
