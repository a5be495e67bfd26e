/**
 * A connector's manifest: everything Concord knows about one system, as data in the connector's own
 * folder. Who it is and its role; what a connection to it takes (credentials and options, as
 * schemas); what it allows (limits the call budget enforces); what it can do (capabilities the
 * planner reads); where its API is (a fixed URL, or one the credentials or the token answer give);
 * which of its constructs a topic may stand for; which fields it reads and writes; how it pushes
 * changes; how to emulate it; and how to talk to it. The registry lists one manifest per system.
 */
import type { z } from "zod";
import type { WorldAct, WorldActAnswer, WorldSeed, WorldSeeded } from "./emulator-kit/world";
import type { Channel } from "../core/consent/consent-event";
import type {
  ConnectionSettings,
  ConnectorLimits,
  ConnectorResult,
  ConnectorRole,
  ConnectorRuntime,
  ConnectorSession,
  ConsentObservation,
  HttpTransport,
  WebhookChange,
  WebhookHandling,
  WebhookRequest,
} from "./connector";

export type { ConnectorLimits, ConnectorRole };

/** One credential a connection takes. */
export type CredentialSpec = {
  /** What it is and where to find it, for config errors and docs. */
  description: string;
  /** A secret must be a reference in the config (`{ env }` or `{ stored }`), never a plain value. */
  secret: boolean;
  /** Needed to connect: without it the connection is broken (`auth_missing`) until it is given. */
  required: boolean;
};

/** What the system can do; the planner and the config check read these, so each one changes behaviour. */
export type ConnectorCapabilities = {
  channels: readonly Channel[];
  /** Push of contact and consent changes: webhooks; otherwise the engine only polls. */
  webhooks: boolean;
  /**
   * How someone opted out becomes sendable again here. `confirmation_email`: the system sends its
   * own confirmation and the planner asks for it after an admin's resubscribe request;
   * `consent_record`: the system records the person's own opt-in, which the planner writes;
   * `contact_only`: only the person, in the system itself; the planner asks for nothing.
   */
  resubscribe: "confirmation_email" | "consent_record" | "contact_only";
  /**
   * Whether Concord may create records here: a pair's `create_in_crm` needs it on the CRM, and a
   * platform without it cannot be a pair's platform (the config check refuses both).
   */
  can_create_contacts: boolean;
  /**
   * A CRM's own field for an address that cannot receive email (Kindful's "Email Deliverable"):
   * where a platform's hard bounce or cleaning is recorded, and the value that says so.
   * Deliverability is not consent: the field is written, never read as an opt-out.
   */
  deliverability_field?: { name: string; undeliverable: string };
  /**
   * The account may subscribe again someone it unsubscribed itself (Constant Contact: an
   * `Account` opt-out): the planner writes an account's own lifted opt-out back here. Without it
   * such a person is asked to confirm (the resubscribe path).
   */
  account_resubscribe?: boolean;
};

/** Where the API is: fixed, or found from the credentials or the token answer. */
export type EndpointRule =
  | { kind: "static"; base_url: string; token_url?: string }
  /** Mailchimp: the API key's `-usNN` suffix names the data centre. */
  | {
      kind: "from_credentials";
      token_url?: string;
      resolve: (credentials: Readonly<Record<string, string | undefined>>) => string | undefined;
      /** How it is found, for errors and docs. */
      explain: string;
    }
  /** Salesforce's instance URL, Mailchimp's OAuth metadata: saved from the token answer as `api_base_url`. */
  | { kind: "from_token"; token_url: string; explain: string };

/** A construct a topic may stand for in this system: a consent category, the whole account, a list… */
export type ConstructSpec = {
  /** What the system calls it, for messages: "consent category", "list". */
  label: string;
  /**
   * How the config names one. `none`: the construct is the connection itself (the whole account);
   * `name`: its name is its identity (Raiser's Edge consent categories); `id_or_name`: an id, or a
   * name looked up in the system (`lookup`).
   */
  identified_by: "none" | "name" | "id_or_name";
  /** For `id_or_name`: where names are looked up. */
  lookup?: "lists";
  /**
   * Where the system's lists are of several kinds of construct (Mailchimp's tags and groups): the
   * start of this kind's list ids. A name or id is looked up among these alone, so that a tag is
   * never taken for the group of the same name.
   */
  list_id_prefix?: string;
  /**
   * How a record shows the topic: by the consent facts the connector reports for the construct, or
   * by its membership (a list standing for a topic: not being in it is not being sent the topic).
   */
  shown_by: "facts" | "membership";
  /**
   * Only the construct's members carry its consent (GrowthZone's Do Not Contact on a list's
   * membership): a record not in it shows no fact for it, is sent nothing through it, and has
   * nothing to mark, so no consent write is planned for it there. The connector must re-read a
   * record that joins it.
   */
  members_only?: true;
  /**
   * The profile field a construct is also readable as, with `{name}` for the construct's name
   * (Kindful's opt-out custom field is `custom_field:{name}`): a pair may not map it as a field,
   * or profile sync would write consent.
   */
  profile_field?: string;
};

/** A field the connector reads or writes, as a pair's field mappings name it. */
export type FieldSpec = {
  name: string;
  type: "string" | "number" | "date" | "boolean";
  read: boolean;
  write: boolean;
  /** The record's own name slot it fills: map it with that canonical name. */
  slot?: "first_name" | "last_name";
  description?: string;
};

/** A family of fields named by a pattern (custom fields, phone numbers by kind). */
export type FieldPatternSpec = Omit<FieldSpec, "name" | "slot"> & {
  pattern: RegExp;
  /** How to write one, for errors: `custom_field:<custom field id, a UUID>`. */
  form: string;
};

export type FieldCatalogue = { fields: readonly FieldSpec[]; patterns: readonly FieldPatternSpec[] };

/** Webhook intake: verifying and parsing a delivery (`secret` is the connection's webhook secret). */
/** What making sure of a connection's webhook subscriptions found: kept as they were, or made anew. */
export type WebhookRegistration = {
  created: number;
  kept: number;
  /** Subscriptions of the receiver removed where the connection no longer keeps in step. */
  removed?: number;
};

export type WebhookSupport = {
  handle: (request: WebhookRequest, secret: string) => WebhookHandling;
  /**
   * The opt-outs a delivery announced (`WebhookChange.opt_out`), from the delivery alone, for one
   * given up unread: the system out of reach through every retry, or refusing the re-read. A later
   * poll may never show them (a Mailchimp member archived since). Observations without their record
   * (`record_gone`): they belong to the record's contact, else to whoever holds the address. Absent
   * where a delivery says no more than which record changed.
   */
  announcedOptOuts?: (changes: readonly WebhookChange[]) => ConsentObservation[];
  /**
   * Makes sure the system pushes its changes to Concord's receiver (`url` carries no secret; the
   * connector puts `secret` where the system's deliveries carry it): subscriptions found are kept,
   * missing ones made. Idempotent; `concord serve` calls it on start and then on a schedule, so a
   * subscription the vendor dropped is made again. Absent where subscriptions are made by hand.
   */
  register?: (
    settings: ConnectionSettings,
    runtime: ConnectorRuntime,
    receiver: { url: string; secret: string },
  ) => Promise<ConnectorResult<WebhookRegistration>>;
};

/** A running emulator of the system, as the emulated world and `concord emulate` use it. */
export type RunningEmulator = {
  /** The origin it listens on (http://127.0.0.1:port); its control API is under /__emulator. */
  origin: string;
  /** What a connection's `base_url` and `token_url` should be to reach it. */
  base_url: string;
  token_url: string;
  /** Lines that tell a person how to use it (printed by `concord emulate`). */
  describe: readonly string[];
  /**
   * A complete set of credentials, by the manifest's names, as an administrator connecting the
   * account would give them (a fresh grant: the refresh token is new each time), for the OAuth
   * client the connection is configured with, when it names one.
   */
  grant: (client?: { client_id?: string }) => Promise<Record<string, string>>;
  /** Loads canonical world records, in the system's own seed shapes. */
  seed: (world: WorldSeed) => Promise<WorldSeeded>;
  /** Does a canonical act through the control API (a person's or an admin's). */
  act: (act: WorldAct) => Promise<WorldActAnswer>;
  /**
   * Subscribes a receiver URL to the system's change webhooks, as an integrator does once, and
   * resolves whether they provisioned; absent where the system pushes nothing.
   */
  subscribe?: (receiver_url: string, secret: string) => Promise<boolean>;
  /**
   * Addresses the system sent a confirmation email to (a resubscribe, a double opt-in) that the
   * person has not confirmed yet; absent where the system sends none.
   */
  pending_confirmations?: () => Promise<string[]>;
  /** The emulator object itself, for tests that know its vendor. */
  native: unknown;
  close: () => Promise<void>;
};

export type EmulatorStartOptions = {
  port?: number;
  now?: () => Date;
  logger?: boolean;
  /** Vendor-specific settings (limits, clients…), as the emulator's own options name them. */
  settings?: Record<string, unknown>;
};

export type EmulatorSupport = {
  /** Starts the emulator (loaded on demand: the engine never loads an emulator it does not run). */
  start: (options: EmulatorStartOptions) => Promise<RunningEmulator>;
};

/**
 * How an administrator connects the system from Concord's UI (OAuth 2's authorization-code grant):
 * where its authorization page is, what to ask for, and how the app authenticates at the token
 * endpoint. Absent where the system takes a key or token given by hand.
 */
export type OAuthSupport = {
  /** The vendor's authorization page. */
  authorize_url: string;
  /**
   * The hosts of the vendor's own token endpoints. A connection whose token URL is elsewhere (an
   * emulator, a sandbox) finds the authorization page on the same path there.
   */
  token_hosts: readonly string[];
  scopes: readonly string[];
  /** Whether the vendor takes PKCE (RFC 7636, S256). */
  pkce: boolean;
  /** How the app's secret goes to the token endpoint. */
  client_auth: "basic" | "body";
  /** What else the grant needs (Mailchimp's data centre from its metadata), by credential name. */
  after_grant?: (
    access_token: string,
    context: { token_url: string; transport: HttpTransport },
  ) => Promise<{ ok: true; value: Record<string, string> } | { ok: false; error: string }>;
};

/** How a CRM's users name things, for sentences the demo and docs write about it. */
export type CrmWords = {
  /** Its short name: "Raiser's Edge". */
  name: string;
  /** What it calls a record: "constituent", "contact". */
  record: string;
  /** What Concord does there for an opt-out from all email: 'ticks "Requests No Email"'. */
  opt_out_written: string;
  /** An admin's own opt-out from all email there, and its clearing: 'ticked "Requests No Email"'. */
  admin_opted_out: string;
  admin_cleared: string;
};

export type ConnectorManifest = {
  id: string;
  label: string;
  /** A CRM's own words (role `crm`). */
  words?: CrmWords;
  role: ConnectorRole;
  credentials: Readonly<Record<string, CredentialSpec>>;
  /** The connection's `options`: connector settings beyond credentials (defaults applied). */
  options: z.ZodType<Record<string, unknown>>;
  limits: ConnectorLimits;
  /** What one poll costs when nothing changed, and how often to poll when nothing says. */
  polling: {
    calls_per_poll: number;
    default_interval_ms: number;
    /**
     * What one quiet poll costs when it also reads lists, for a connector whose polls read each
     * list the config maps there (the pairs' lists, `lists`) and each list a topic stands for
     * (`topic_lists`); `calls_per_poll` is then the cost with none.
     */
    calls_per_poll_reading?: (reads: { lists: number; topic_lists: number }) => number;
  };
  capabilities: ConnectorCapabilities;
  endpoints: EndpointRule;
  /** The constructs a topic may stand for here, by the type name the config uses. */
  topics: Readonly<Record<string, ConstructSpec>>;
  fields: FieldCatalogue;
  /**
   * Field and value names only this vendor uses (its consent flags, its status words): they never
   * appear in Concord's code outside this connector's folder (a test checks it).
   */
  vendor_terms: readonly string[];
  webhooks?: WebhookSupport;
  /** Connect and Reconnect in the UI, for a system that authorises by OAuth 2. */
  oauth?: OAuthSupport;
  emulator: EmulatorSupport;
  connect: (settings: ConnectionSettings, runtime: ConnectorRuntime) => ConnectorSession;
};

/** The field a mapping names, from the catalogue; undefined when the connector has no such field. */
export function findField(catalogue: FieldCatalogue, name: string): FieldSpec | undefined {
  const fixed = catalogue.fields.find((f) => f.name === name);
  if (fixed) return fixed;
  const family = catalogue.patterns.find((p) => p.pattern.test(name));
  return family ? { name, type: family.type, read: family.read, write: family.write } : undefined;
}
