/**
 * A vendor's field names live in its connector's folder and nowhere else in Concord's code: each
 * manifest lists its vendor terms, and this looks for them in every other source file (the engine,
 * the planner, the store, the server, the demo, the UI, and the other connectors).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MANIFESTS } from "../../src/connectors/registry";

const root = join(import.meta.dirname, "..", "..");
const SOURCE = /\.(ts|tsx)$/;
const TEST = /\.test\.tsx?$/;

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile() && SOURCE.test(e.name) && !TEST.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

type Leak = { file: string; line: number; term: string; connector: string };

/** Every occurrence of a connector's vendor term outside that connector's folder, under `tree`. */
async function vendorTermLeaks(tree: string, manifests: { id: string; vendor_terms: readonly string[] }[]) {
  const files = [...(await sourceFiles(join(tree, "src"))), ...(await sourceFiles(join(tree, "ui", "src")))];
  const leaks: Leak[] = [];
  for (const file of files) {
    const path = relative(tree, file).split(sep).join("/");
    const lines = (await readFile(file, "utf8")).split("\n");
    for (const m of manifests) {
      if (path.startsWith(`src/connectors/${m.id}/`)) continue;
      for (const term of m.vendor_terms)
        lines.forEach((text, i) => {
          if (text.includes(term)) leaks.push({ file: path, line: i + 1, term, connector: m.id });
        });
    }
  }
  return leaks;
}

describe("vendor terms stay in their connector", () => {
  const made: string[] = [];
  afterAll(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });

  it("every manifest names its vendor terms", () => {
    for (const m of MANIFESTS) expect(m.vendor_terms.length, m.id).toBeGreaterThan(0);
  });

  it("finds a vendor term written outside its connector, in the engine, another connector or the UI", async () => {
    const tree = await mkdtemp(join(tmpdir(), "concord-vendor-terms-"));
    made.push(tree);
    const m = MANIFESTS[0]!;
    const other = MANIFESTS.find((x) => x.id !== m.id)!;
    const term = m.vendor_terms[0]!;
    const put = async (path: string, text: string) => {
      await mkdir(join(tree, path, ".."), { recursive: true });
      await writeFile(join(tree, path), text);
    };
    await put(`src/connectors/${m.id}/mapping.ts`, `export const f = "${term}";\n`); // its own: fine
    await put(`src/connectors/${m.id}/mapping.test.ts`, `"${term}";\n`); // a test: fine
    await put("src/planner/plan.ts", `// ok\nconst x = r["${term}"];\n`);
    await put(`src/connectors/${other.id}/connector.ts`, `"${term}";\n`);
    await put("ui/src/pages/Contact.tsx", `<td>{c.${term}}</td>\n`);

    const leaks = await vendorTermLeaks(tree, [m]);
    expect(leaks.map((l) => `${l.file}:${l.line}`).sort()).toEqual(
      [
        "src/planner/plan.ts:2",
        `src/connectors/${other.id}/connector.ts:1`,
        "ui/src/pages/Contact.tsx:1",
      ].sort(),
    );
  });

  it("Concord's own code names no vendor field outside that vendor's connector", async () => {
    const leaks = await vendorTermLeaks(root, [...MANIFESTS]);
    expect(leaks.map((l) => `${l.file}:${l.line} names ${l.connector}'s "${l.term}"`)).toEqual([]);
  });
});
