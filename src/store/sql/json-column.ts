/** Reading and writing JSON text columns: parsed with zod on the way out, so a corrupt row fails loudly. */
import type { z } from "zod";

export function parseJsonColumn<S extends z.ZodType>(schema: S, text: string, where: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${where}: column is not valid JSON`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Error(`${where}: unexpected JSON shape: ${parsed.error.message}`);
  return parsed.data;
}

export const toJsonColumn = (value: unknown): string => JSON.stringify(value);
