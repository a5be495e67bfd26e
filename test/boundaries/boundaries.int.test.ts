/** The import-boundary check (`npm run boundaries`) passes on our tree and fails on forbidden imports. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const depcruise = join(root, "node_modules", ".bin", "depcruise");
const config = join(root, ".dependency-cruiser.cjs");

async function cruise(cwd: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(depcruise, ["src", "--config", config, "--output-type", "err"], {
      cwd,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, output: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

describe("import boundaries", () => {
  it("fails on each forbidden import in the fixture tree", async () => {
    const { code, output } = await cruise(join(root, "test", "fixtures", "boundary-violation"));
    expect(code).not.toBe(0);
    expect(output).toContain("core-is-pure: src/core/impure.ts → src/store/db.ts");
    expect(output).toContain(
      "connectors-stay-in-their-lane: src/connectors/blackbaud-renxt/connector.ts → src/store/db.ts",
    );
    expect(output).toContain(
      "no-connector-imports-another: src/connectors/blackbaud-renxt/connector.ts → src/connectors/constant-contact/client.ts",
    );
    expect(output).toContain(
      "emulator-never-imports-its-client: src/connectors/constant-contact/emulator/server.ts → src/connectors/constant-contact/client.ts",
    );
  });

  it("passes on the project's own source tree", async () => {
    const { code, output } = await cruise(root);
    expect(output).toContain("no dependency violations found");
    expect(code).toBe(0);
  });
});
