/**
 * The one canonical JSON: keys sorted at every depth, no whitespace, undefined members left out. The
 * ledger's hash chain, event ids, operation ids and content hashes all hash this form, so the same
 * value always yields the same bytes whatever order its fields were built in.
 */

/** A JSON value as the merge and the hashers see it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Serialises like JSON.stringify but with object keys sorted by UTF-16 code unit, at every depth.
 * Throws on what JSON cannot represent faithfully (bigint, functions, symbols, NaN/Infinity, Maps,
 * Sets, cycles): a silently lossy canonical form would make different values hash alike.
 */
export function canonicalJson(value: unknown): string {
  const out = write(value, new Set());
  if (out === undefined)
    throw new TypeError("canonicalJson: the value has no JSON form (undefined, function or symbol)");
  return out;
}

function write(value: unknown, ancestors: Set<object>): string | undefined {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${String(value)} has no JSON form`);
      return JSON.stringify(value);
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "bigint":
      throw new TypeError("canonicalJson: bigint has no JSON form");
    case "object":
      break;
  }
  if (value === null) return "null";
  const obj = value;
  if (ancestors.has(obj)) throw new TypeError("canonicalJson: the value is cyclic");
  if ("toJSON" in obj && typeof obj.toJSON === "function")
    return write((obj.toJSON as () => unknown)(), ancestors);
  ancestors.add(obj);
  try {
    if (Array.isArray(obj))
      return `[${obj.map((item: unknown) => write(item, ancestors) ?? "null").join(",")}]`;
    const proto = Object.getPrototypeOf(obj) as unknown;
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError(
        `canonicalJson: only plain objects have a canonical form, got ${obj.constructor.name}`,
      );
    const entries: string[] = [];
    for (const key of Object.keys(obj).sort()) {
      const v = write((obj as Record<string, unknown>)[key], ancestors);
      if (v !== undefined) entries.push(`${JSON.stringify(key)}:${v}`);
    }
    return `{${entries.join(",")}}`;
  } finally {
    ancestors.delete(obj);
  }
}
