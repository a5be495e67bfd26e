/**
 * Connect and Reconnect in a real headless browser (Debian's Chromium driven by playwright-core)
 * against the demo world with Raiser's Edge NXT, Constant Contact and Mailchimp: each connection's
 * credentials are revoked at its emulator, the overview shows it broken with a Reconnect button,
 * the button goes to the emulator's own "Allow access?" page, Allow comes back through Concord's
 * callback, and the connection works again with the new tokens sealed. Deny changes nothing and
 * says so. Without Chromium it is skipped with the reason, except under CI, where it fails.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildUiIfStale } from "../../ui/scripts/build-ui-if-stale";
import { spawnDemo } from "../support/demo-process";

const PASSWORD = "e2e-connect-password-0123";
const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const inCi = (process.env["CI"] ?? "") !== "";
const skipReason = existsSync(chromiumPath)
  ? undefined
  : `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`;

type Urls = { ui: string; api: string; emulators: Record<string, string> };

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

if (skipReason !== undefined && !inCi) console.warn(`connect browser test: skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined && !inCi)("Connect and Reconnect in headless Chromium", () => {
  let demo: ChildProcessWithoutNullStreams | undefined;
  let demoExited: Promise<number | null> | undefined;
  let stderr = "";
  let dir: string | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let urls: Urls;

  beforeAll(async () => {
    if (skipReason !== undefined) throw new Error(`The browser test needs Chromium under CI: ${skipReason}.`);
    buildUiIfStale();
    dir = mkdtempSync(join(tmpdir(), "concord-connect-e2e-"));
    const { proc } = await spawnDemo(dir, { CONCORD_ADMIN_PASSWORD: PASSWORD }, "renxt-cc-mailchimp");
    demo = proc;
    let stdout = "";
    proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    demoExited = new Promise((resolve) => proc.on("close", resolve));
    const line = await until("the demo's JSON line", 60_000, async () =>
      stdout.includes("\n") ? stdout.slice(0, stdout.indexOf("\n")) : undefined,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\ndemo stderr:\n${stderr}`);
    });
    urls = JSON.parse(line) as Urls;
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, baseURL: urls.ui });
    page = await context.newPage();
    await page.goto("/");
    await page.getByLabel("Admin password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (demo && demo.exitCode === null) {
      demo.kill("SIGTERM");
      const stopped = await Promise.race([
        demoExited,
        new Promise((resolve) =>
          setTimeout(() => {
            resolve("timeout");
          }, 15_000),
        ),
      ]);
      if (stopped === "timeout") demo.kill("SIGKILL");
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  /** The connection's health as the API reports it. */
  const health = async (id: string): Promise<string> => {
    const overview = await page.evaluate(async () => {
      const res = await fetch("/api/overview", { credentials: "same-origin" });
      return (await res.json()) as { connections: { id: string; health: { status: string } }[] };
    });
    return overview.connections.find((c) => c.id === id)?.health.status ?? "missing";
  };

  const revoke = async (id: string): Promise<void> => {
    const res = await fetch(`${urls.emulators[id] ?? ""}/__emulator/oauth/revoke`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
  };

  it.each(["re-nxt", "cc-main", "mc-main"])(
    "%s: revoked, shown broken with Reconnect; Allow on the vendor's page connects it again",
    async (id) => {
      await until(`the first sync before breaking ${id}`, 60_000, async () =>
        /first sync: /.test(stderr) ? true : undefined,
      );
      await revoke(id);
      await until(`${id} broken`, 60_000, async () => ((await health(id)) === "broken" ? true : undefined));

      await page.goto(`/?reconnect=${id}`);
      const card = page.getByRole("article", { name: `Connection ${id}` });
      const button = card.getByRole("button", { name: "Reconnect" });
      await button.waitFor();
      await button.click();
      // The emulator's own authorization page, on its own origin.
      await page.getByRole("button", { name: "Allow" }).waitFor();
      expect(new URL(page.url()).origin).toBe(new URL(urls.emulators[id] ?? "").origin);
      await page.getByRole("button", { name: "Allow" }).click();
      // Back through Concord's callback to the overview, which says so.
      await page
        .getByRole("status")
        .filter({ hasText: `Connected ${id}` })
        .waitFor()
        .catch(async (error: unknown) => {
          // Say where the browser ended and what the page said (a vendor's refusal, a notice).
          throw new Error(
            `${String(error)}\nat ${page.url()}:\n${(await page.locator("body").innerText()).slice(0, 2000)}`,
          );
        });
      expect(new URL(page.url()).origin).toBe(new URL(urls.ui).origin);
      expect(await health(id)).toBe("ok");
      // The next runs use the new tokens: the connection stays working.
      await until(`a run after reconnecting ${id}`, 60_000, async () => {
        const runs = await page.evaluate(async () => {
          const res = await fetch("/api/runs?limit=5", { credentials: "same-origin" });
          return (await res.json()) as { runs: { started_at: string }[] };
        });
        return runs.runs.some((r) => Date.parse(r.started_at) > Date.now() - 5_000) ? true : undefined;
      });
      expect(await health(id)).toBe("ok");
    },
    150_000,
  );

  it("Deny on the vendor's page changes nothing and says so", async () => {
    await page.goto("/");
    const card = page.getByRole("article", { name: "Connection cc-appeals" });
    await card.getByRole("button", { name: /Connect|Reconnect/ }).click();
    await page.getByRole("button", { name: "Deny" }).click();
    await page.getByRole("alert").filter({ hasText: "Connecting cc-appeals failed" }).waitFor();
    expect(await page.getByRole("alert").filter({ hasText: "access_denied" }).count()).toBe(1);
    expect(await health("cc-appeals")).toBe("ok");
  }, 60_000);
});
