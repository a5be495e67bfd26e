/** Content hashes of records and observations: sha256 over their canonical JSON, so equal content hashes equally. */
import { createHash } from "node:crypto";
import { canonicalJson } from "../core/canonical-json";

export const sha256Hex = (text: string): string => createHash("sha256").update(text).digest("hex");

/** sha256 (hex) of the value's canonical JSON (sorted keys; undefined properties left out). */
export const contentHash = (value: unknown): string => sha256Hex(canonicalJson(value));
