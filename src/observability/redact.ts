/**
 * Removes secrets and personal data from anything about to be logged: values under secret-looking
 * keys are censored, email addresses anywhere are masked, names and phone numbers under known keys
 * are removed, and tokens inside free text (Bearer headers, JWTs, `refresh_token=…`) are cut out.
 */

export const REDACTED = "[redacted]";

// `jane.doe@example.org`, also URL-encoded (`jane%40example.org`) and in any script
// (`zoë@exämple.de`, `用户@例子.中国`). The local part's first character is kept so an operator can
// still tell two masked addresses apart in most cases.
// Bounded (a local part is at most 64 characters, a domain 253) so a long run without an `@`
// costs little.
const EMAIL_RE =
  /([\p{L}\p{N}_%+'&!#$*^{|}~-])[\p{L}\p{N}\p{M}._%+'&!#$*^{|}~-]{0,63}(@|%40)([\p{L}\p{N}\p{M}-]{1,63}(?:\.[\p{L}\p{N}\p{M}-]{1,63}){0,8}\.[\p{L}\p{M}]{2,63})/gu;
// A URL's or a path's query string (`?key=…`, `?webhookKey=…`, `?email=…`): cut whole, since a
// receiver's secret or a person's data may sit under any name there.
const QUERY_RE =
  /((?:https?:\/\/|\/)[^\s"'<>?#/]{0,256}(?:\/[^\s"'<>?#/]{0,256}){0,16})\?(?!\[redacted\])[^\s"'<>#]+/g;
// A person's link or a sign-up confirmation in a path (`/l/u/<token>`, `/l/c/<token>`): the token is
// a bearer of the person's consent.
const PERSON_LINK_RE = /(\/l\/[upc]\/)[A-Za-z0-9_.-]{8,}/g;
// A password in a URL's user part (`postgres://concord:secret@db:5432/…`, or with no user name:
// `redis://:secret@cache:6379`): the user stays.
const URL_PASSWORD_RE = /\b([a-z][a-z0-9+.-]{1,20}:\/\/[^\s:/@]{0,256}):(?!\[redacted\]@)[^\s/@]{1,256}@/gi;
// An Authorization value: `Bearer …` (in any case: HTTP/2 headers arrive lower-cased), `Basic …`,
// GrowthZone's `ApiKey …`, Kindful's `Token token="…"`. Only `Bearer` in any case: "basic" and
// "token" in lower case are words of the log's own sentences.
const AUTH_SCHEME_RE =
  /\b([Bb][Ee][Aa][Rr][Ee][Rr]|Basic|Token|Digest|ApiKey)(\s+)(?!\[redacted\])(?:[A-Za-z_]+=)?"?[A-Za-z0-9\-._~+/]+=*"?/g;
const JWT_RE = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
const SECRET_WORDS =
  "token|secret|password|passwd|pwd|passphrase|authorization|cookie|api[_-]?key|subscription[_-]?key|private[_-]?key|access[_-]?key|webhook[_-]?key|code[_-]?verifier|signature";
// `"refresh_token":"abc"` inside a JSON text.
const JSON_PAIR_RE = new RegExp(
  `("[^"\\\\]*(?:${SECRET_WORDS})[^"\\\\]*"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`,
  "gi",
);
// `refresh_token=abc` in a query or form body, `client_secret: abc` in a header-like text.
// A quoted value too (`token="…"`, `token: "…"`); its closing quote stays.
const KEY_VALUE_RE = new RegExp(
  `\\b([A-Za-z0-9_-]*(?:${SECRET_WORDS})[A-Za-z0-9_-]*)(=|:\\s*)("?)(?!\\s|\\[redacted\\]|"|Bearer\\b|Basic\\b|Token\\b|Digest\\b|ApiKey\\b|https?:)([^\\s"&,;]+)`,
  "gi",
);

/** Masks every email address in `text`: `jane@example.org` → `j***@example.org`. */
export function redactEmail(text: string): string {
  return text.replace(
    EMAIL_RE,
    (_m, first: string, at: string, domain: string) => `${first}***${at}${domain}`,
  );
}

/** Masks emails and cuts credentials out of free text. */
export function redactString(text: string): string {
  return redactEmail(
    text
      .replace(URL_PASSWORD_RE, (_m, user: string) => `${user}:${REDACTED}@`)
      .replace(QUERY_RE, (_m, before: string) => `${before}?${REDACTED}`)
      .replace(PERSON_LINK_RE, (_m, path: string) => `${path}${REDACTED}`)
      .replace(JWT_RE, REDACTED)
      .replace(AUTH_SCHEME_RE, (_m, scheme: string, space: string) => `${scheme}${space}${REDACTED}`)
      .replace(JSON_PAIR_RE, (m, key: string) =>
        isSecretKey(key.slice(1, key.indexOf('"', 1))) ? `${key}"${REDACTED}"` : m,
      )
      .replace(KEY_VALUE_RE, (m, key: string, sep: string, quote: string) =>
        isSecretKey(key) ? `${key}${sep}${quote}${REDACTED}` : m,
      ),
  );
}

/** `refreshToken`, `Bb-Api-Subscription-Key` → `refresh_token`, `bb_api_subscription_key`. */
const normaliseKey = (key: string): string =>
  key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_");

const SECRET_KEY_RE =
  /(^|_)(tokens?|secrets?|password|passwd|pwd|passphrase|authorization|auth|cookies?|set_cookie|api_?key|subscription_key|private_key|access_key|secret_key|webhook_key|credentials?|signature|code_verifier)(_|$)/;
// Keys that name something about a secret without holding it: where it lives, when it expires.
const NOT_SECRET_SUFFIX_RE = /_(url|uri|at|in|type|count|id|ids|kind|ref|expires|expiry|source|length)$/;

export function isSecretKey(key: string): boolean {
  const k = normaliseKey(key);
  return SECRET_KEY_RE.test(k) && !NOT_SECRET_SUFFIX_RE.test(k);
}

// Bare `name` is left alone: it names lists, connections and topics far more often than people.
const PERSONAL_KEYS = new Set([
  "first_name",
  "last_name",
  "middle_name",
  "full_name",
  "display_name",
  "given_name",
  "family_name",
  "preferred_name",
  "former_name",
  "maiden_name",
  "nickname",
  "nick_name",
  "first",
  "last",
  "middle",
  "fname",
  "lname",
  "phone",
  "phone_number",
  "mobile",
  "sms_number",
  "address_line1",
  "address_line2",
  "address_lines",
  "street",
  "street_address",
  "birthdate",
  "date_of_birth",
]);

export function isPersonalKey(key: string): boolean {
  return PERSONAL_KEYS.has(normaliseKey(key));
}

const MAX_DEPTH = 10;

/** A deep copy of `value` with every secret and piece of personal data removed; never mutates. */
export function redactValue(value: unknown): unknown {
  return walk(value, 0, new WeakSet());
}

function walk(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === "string") return redactString(value);
  if (value === null || typeof value !== "object")
    return typeof value === "bigint" ? value.toString() : value;
  if (seen.has(value)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => walk(item, depth + 1, seen));
    const out: Record<string, unknown> = {};
    if (value instanceof Error) {
      out["type"] = value.name;
      out["message"] = redactString(value.message);
      if (value.stack !== undefined) out["stack"] = redactString(value.stack);
      if (value.cause !== undefined) out["cause"] = walk(value.cause, depth + 1, seen);
    }
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined || typeof item === "function") continue;
      if (isSecretKey(key)) out[key] = REDACTED;
      else if (isPersonalKey(key) && typeof item === "string") out[key] = item === "" ? "" : REDACTED;
      else out[key] = walk(item, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}
