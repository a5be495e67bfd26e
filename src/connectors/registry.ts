/**
 * Every system Concord connects to, one manifest each: the config check, `concord emulate`, the
 * engine and the UI all read this list. Adding a system is its folder under src/connectors/ and one
 * line here.
 */
import { blackbaudRenxtManifest } from "./blackbaud-renxt/manifest";
import { constantContactManifest } from "./constant-contact/manifest";
import { growthZoneManifest } from "./growthzone/manifest";
import { kindfulManifest } from "./kindful/manifest";
import { mailchimpManifest } from "./mailchimp/manifest";
import type { ConnectorManifest } from "./manifest";

export const MANIFESTS: readonly ConnectorManifest[] = [
  constantContactManifest,
  mailchimpManifest,
  blackbaudRenxtManifest,
  kindfulManifest,
  growthZoneManifest,
];

/** The ids of every system, as the config's `connections[].system` takes them. */
export const SYSTEM_IDS: readonly string[] = MANIFESTS.map((m) => m.id);

/** The manifest of a system, or undefined for an id no connector has. */
export function manifestFor(system: string): ConnectorManifest | undefined {
  return MANIFESTS.find((m) => m.id === system);
}

/** The manifest of a system the config already validated: a missing one is a bug. */
export function manifestOf(system: string): ConnectorManifest {
  const found = manifestFor(system);
  if (!found) throw new Error(`no connector for system "${system}"`);
  return found;
}
