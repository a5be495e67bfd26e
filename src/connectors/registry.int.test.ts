/**
 * The registry is the whole list of systems: every connector folder has its manifest there under
 * its own name, and every manifest is complete enough to configure, emulate and connect with — its
 * options have defaults, its emulator starts and grants the credentials the manifest asks for, and a
 * session opened with them passes its check against that emulator.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { CredentialAccess } from "./connector";
import { MANIFESTS, manifestFor, SYSTEM_IDS } from "./registry";

const here = import.meta.dirname;

async function connectorFolders(): Promise<string[]> {
  const folders: string[] = [];
  for (const entry of await readdir(here, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const hasManifest = await stat(join(here, entry.name, "manifest.ts")).then(
      () => true,
      () => false,
    );
    if (hasManifest) folders.push(entry.name);
  }
  return folders.sort();
}

describe("the connector registry", () => {
  it("lists every connector folder once, under the folder's name", async () => {
    expect([...SYSTEM_IDS].sort()).toEqual(await connectorFolders());
    expect(new Set(SYSTEM_IDS).size).toBe(SYSTEM_IDS.length);
    expect(manifestFor("no-such-system")).toBeUndefined();
  });

  describe.each(MANIFESTS.map((m) => [m.id, m] as const))("%s", (_id, manifest) => {
    it("declares what a connection needs: credentials with descriptions, options with defaults, sane limits", () => {
      expect(Object.keys(manifest.credentials).length).toBeGreaterThan(0);
      for (const [name, spec] of Object.entries(manifest.credentials))
        expect(spec.description.length, `${manifest.id}.${name}`).toBeGreaterThan(10);
      expect(manifest.options.safeParse({}).success).toBe(true);
      expect(manifest.options.safeParse({ no_such_option: 1 }).success).toBe(false);
      expect(manifest.limits.requests_per_second).toBeGreaterThan(0);
      expect(manifest.limits.max_concurrency).toBeGreaterThan(0);
      expect(manifest.capabilities.channels.length).toBeGreaterThan(0);
      expect(Object.keys(manifest.topics).length).toBeGreaterThan(0);
    });

    it("its emulator starts, grants every required credential, and a session with them passes its check", async () => {
      const emulator = await manifest.emulator.start({ port: 0 });
      try {
        const granted = await emulator.grant();
        for (const [name, spec] of Object.entries(manifest.credentials))
          if (spec.required) expect(granted[name], `${manifest.id} grants ${name}`).toBeTruthy();
        for (const name of Object.keys(granted)) expect(Object.keys(manifest.credentials)).toContain(name);

        let held: Record<string, string | undefined> = { ...granted };
        const credentials: CredentialAccess = {
          get: () => Promise.resolve(held),
          save: (changes) => {
            held = { ...held, ...changes };
            return Promise.resolve();
          },
        };
        const session = manifest.connect(
          {
            connection_id: `${manifest.id}-check`,
            base_url: emulator.base_url,
            token_url: emulator.token_url,
            credentials,
            options: manifest.options.parse({}),
          },
          { now: () => new Date(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
        );
        const checked = await session.check();
        expect(checked.ok, JSON.stringify(checked)).toBe(true);
        const lists = await session.lists();
        expect(lists.ok, JSON.stringify(lists)).toBe(true);
      } finally {
        await emulator.close();
      }
    });
  });
});
