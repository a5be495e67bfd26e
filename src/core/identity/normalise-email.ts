/** Email address normalisation and validation: one canonical address and match key, or a stable reason code. */
import { domainToASCII, domainToUnicode } from "node:url";

/** Why an address was refused; stable codes shown to operators and counted in previews. */
export const EMAIL_INVALID_REASONS = [
  "empty",
  "contains_whitespace",
  "contains_control_character",
  "contains_invisible_character",
  "missing_at",
  "multiple_at",
  "missing_local_part",
  "missing_domain",
  "local_part_too_long",
  "address_too_long",
  "invalid_local_part",
  "domain_literal_unsupported",
  "invalid_domain",
  "domain_without_dot",
  "domain_label_too_long",
] as const;
export type EmailInvalidReason = (typeof EMAIL_INVALID_REASONS)[number];

export type NormalisedEmail =
  | {
      ok: true;
      /** The address to send to: trimmed, NFC, lowercased, domain in ASCII (punycode). */
      address: string;
      /**
       * The key identity matches on. Equal to `address` today: no provider-specific folding (Gmail
       * dots and plus tags are different mailboxes elsewhere); kept apart so matching can change alone.
       */
      match_key: string;
    }
  | { ok: false; reason: EmailInvalidReason };

/** RFC 5321 limits, in octets. */
const MAX_LOCAL_OCTETS = 64;
const MAX_ADDRESS_OCTETS = 254;
const MAX_LABEL_OCTETS = 63;

// Dot-atom (RFC 5322 atext) plus non-ASCII for internationalised local parts (RFC 6531).
// Quoted local parts are refused: no email platform we sync with accepts them.
const LOCAL_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+$/u;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const WHITESPACE = /[\s\u200B\u2060\uFEFF]/u;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001F\u007F-\u009F]/u;
// Invisible formatting characters (a soft hyphen, a zero-width joiner, a direction mark: pasted from
// a document): an address that shows as another would be a mailbox of its own, and a person's
// opt-out at one would not reach the other.
const INVISIBLE = /\p{Cf}/u;

const octets = (s: string): number => Buffer.byteLength(s, "utf8");
const fail = (reason: EmailInvalidReason): NormalisedEmail => ({ ok: false, reason });

/**
 * `fn` remembering its last results (frozen, so sharing them is safe), by the text it was given.
 * Bounded: emptied whenever it fills.
 */
function remembered<T extends object>(fn: (raw: string) => T): (raw: string) => Readonly<T> {
  const recent = new Map<string, Readonly<T>>();
  return (raw) => {
    const known = recent.get(raw);
    if (known !== undefined) return known;
    const result = Object.freeze(fn(raw));
    if (recent.size >= RECENT_MAX) recent.clear();
    recent.set(raw, result);
    return result;
  };
}
const RECENT_MAX = 4096;

/**
 * Normalises one raw address as a person or a system typed it. Pure. The last results are kept: a
 * plan asks for one contact's address several times over (eligibility, refusals, baselines, for
 * each platform), and the IDNA mapping is the costly part.
 */
export const normaliseEmail: (raw: string) => NormalisedEmail = remembered((raw) => normalise(raw));

function normalise(raw: string): NormalisedEmail {
  const trimmed = raw.trim();
  if (trimmed === "") return fail("empty");
  if (WHITESPACE.test(trimmed)) return fail("contains_whitespace");
  if (CONTROL.test(trimmed)) return fail("contains_control_character");

  const at = trimmed.lastIndexOf("@");
  if (at === -1) return fail("missing_at");
  const rawLocal = trimmed.slice(0, at);
  const rawDomain = trimmed.slice(at + 1);
  if (rawLocal.includes("@")) return fail("multiple_at");
  if (rawLocal === "") return fail("missing_local_part");
  if (rawDomain === "") return fail("missing_domain");
  if (INVISIBLE.test(rawLocal)) return fail("contains_invisible_character");

  const local = rawLocal.normalize("NFC").toLowerCase();
  if (octets(local) > MAX_LOCAL_OCTETS) return fail("local_part_too_long");
  if (!validLocal(local)) return fail("invalid_local_part");

  if (rawDomain.startsWith("[")) return fail("domain_literal_unsupported");
  const domainResult = asciiDomain(rawDomain);
  if (!domainResult.ok) return fail(domainResult.reason);

  const address = `${local}@${domainResult.domain}`;
  if (octets(address) > MAX_ADDRESS_OCTETS) return fail("address_too_long");
  return { ok: true, address, match_key: address };
}

/**
 * The key under which two spellings of one address are the same: the match key of a valid address,
 * else the text trimmed and lowercased (an invalid address still equals itself in another case).
 */
export function emailKey(raw: string): string {
  const n = normaliseEmail(raw);
  return n.ok ? n.match_key : raw.trim().toLowerCase();
}

/** Whether two addresses are the same mailbox as far as Concord tells (see `emailKey`). */
export function sameEmail(a: string, b: string): boolean {
  return a === b || emailKey(a) === emailKey(b);
}

function validLocal(local: string): boolean {
  return local.split(".").every((atom) => atom !== "" && LOCAL_ATOM.test(atom));
}

type DomainResult =
  | { ok: true; domain: string }
  | { ok: false; reason: "invalid_domain" | "domain_without_dot" | "domain_label_too_long" };

/**
 * A domain in ASCII, or why it is not one. The last domains are kept: a store's million addresses
 * share a few thousand domains.
 */
const asciiDomain = remembered((raw: string): DomainResult => mapDomain(raw));

function mapDomain(raw: string): DomainResult {
  // domainToASCII applies UTS #46 mapping (lowercase, NFC, punycode) and returns "" when it cannot.
  const domain = domainToASCII(raw.normalize("NFC"));
  if (domain === "") return { ok: false, reason: "invalid_domain" };
  const labels = domain.split(".");
  if (labels.length < 2) return { ok: false, reason: "domain_without_dot" };
  if (labels.some((l) => octets(l) > MAX_LABEL_OCTETS)) return { ok: false, reason: "domain_label_too_long" };
  if (!labels.every((l) => LDH_LABEL.test(l) && validPunycode(l)))
    return { ok: false, reason: "invalid_domain" };
  // A top-level label of digits only is an IP address written without brackets, not a domain.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? "")) return { ok: false, reason: "invalid_domain" };
  return { ok: true, domain };
}

/** An "xn--" label must decode and encode back to itself; some Node versions pass bad punycode through. */
function validPunycode(label: string): boolean {
  if (!label.startsWith("xn--")) return true;
  const unicode = domainToUnicode(label);
  return unicode !== "" && !unicode.startsWith("xn--") && domainToASCII(unicode) === label;
}

/** Human sentences for each reason, for the UI and the CLI. */
export const EMAIL_INVALID_MESSAGES: Record<EmailInvalidReason, string> = {
  empty: "The email address is empty.",
  contains_whitespace: "The email address contains a space or other whitespace.",
  contains_control_character: "The email address contains a control character.",
  contains_invisible_character:
    "The email address contains an invisible character before the @ (a soft hyphen, a zero-width joiner or a direction mark, often pasted from a document); type it again.",
  missing_at: "The email address has no @.",
  multiple_at: "The email address has more than one @ (quoted local parts are not supported).",
  missing_local_part: "The email address has nothing before the @.",
  missing_domain: "The email address has nothing after the @.",
  local_part_too_long: "The part before the @ is longer than 64 bytes.",
  address_too_long: "The email address is longer than 254 bytes.",
  invalid_local_part: "The part before the @ has characters or dots that are not allowed.",
  domain_literal_unsupported: "The domain is an IP address in brackets, which email platforms refuse.",
  invalid_domain: "The domain is not a valid host name.",
  domain_without_dot: "The domain has no dot (for example “localhost”).",
  domain_label_too_long: "A part of the domain is longer than 63 characters.",
};
