/**
 * Turns zod's issues into messages that say what was expected and what was found, in the words of
 * the config file (a "mapping", a "list"), and makes strict objects suggest the key that was meant.
 */
import { z } from "zod";
import { hint } from "./did-you-mean";

/** A short, human description of a value found in a file; long strings are cut. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null (an empty value)";
  if (typeof value === "string") {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `a list of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (typeof value === "object") {
    const keys = Object.keys(value);
    return keys.length === 0 ? "an empty mapping" : `a mapping with keys ${keys.slice(0, 6).join(", ")}`;
  }
  return typeof value;
}

const typeWords: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  record: "a mapping",
  null: "null",
  never: "nothing here",
};

const listValues = (values: readonly unknown[]): string => values.map((v) => JSON.stringify(v)).join(", ");

/**
 * The error map used for every config and environment parse. Messages from a schema's own `error`
 * (a regex's description, a secret's fix) win over this one.
 */
export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type": {
      const expected = typeWords[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return `required: expected ${expected}, found nothing`;
      return `expected ${expected}, found ${describeValue(issue.input)}`;
    }
    case "invalid_value": {
      const found = describeValue(issue.input);
      const extra =
        typeof issue.input === "string"
          ? hint(
              issue.input,
              issue.values.filter((v): v is string => typeof v === "string"),
            )
          : "";
      if (issue.values.length === 1) return `expected ${listValues(issue.values)}, found ${found}${extra}`;
      return `expected one of ${listValues(issue.values)}; found ${found}${extra}`;
    }
    case "too_small": {
      const min = String(issue.minimum);
      if (issue.origin === "array")
        return `expected at least ${min} item${min === "1" ? "" : "s"}, found ${describeValue(issue.input)}`;
      if (issue.origin === "string")
        return issue.minimum === 1
          ? "expected a non-empty string, found an empty one"
          : `expected at least ${min} characters, found ${describeValue(issue.input)}`;
      return `expected a number ${issue.inclusive === false ? ">" : "≥"} ${min}, found ${describeValue(issue.input)}`;
    }
    case "too_big": {
      const max = String(issue.maximum);
      if (issue.origin === "array")
        return `expected at most ${max} items, found ${describeValue(issue.input)}`;
      if (issue.origin === "string")
        return `expected at most ${max} characters, found ${describeValue(issue.input)}`;
      return `expected a number ${issue.inclusive === false ? "<" : "≤"} ${max}, found ${describeValue(issue.input)}`;
    }
    case "invalid_format":
      return `expected ${issue.format === "regex" ? "a value of the documented form" : `a valid ${issue.format}`}, found ${describeValue(issue.input)}`;
    case "unrecognized_keys":
      return `unknown key${issue.keys.length === 1 ? "" : "s"} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    case "invalid_union":
      return `expected one of the documented forms, found ${describeValue(issue.input)}`;
    default:
      return undefined;
  }
};

/**
 * A strict object whose unknown-key message names the closest known key, or, for a key an earlier
 * version took (`moved`), says where its setting lives now. One message per object: the loader
 * splits single-key issues into a path that ends at the unknown key.
 */
export function strictObject<S extends z.core.$ZodLooseShape>(
  shape: S,
  options: { moved?: Readonly<Record<string, string>> } = {},
) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== "unrecognized_keys") return undefined;
      const parts = issue.keys.map((k) => {
        const moved = options.moved?.[k];
        return moved !== undefined
          ? `"${k}" is no longer a key here: ${moved}`
          : `unknown key "${k}"${hint(k, known)}`;
      });
      return `${parts.join("; ")}; expected one of: ${known.join(", ")}`;
    },
  });
}
