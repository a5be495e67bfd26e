/**
 * The admin UI in a real headless browser — Debian's Chromium driven by playwright-core, no browser
 * download — against the real demo (`concord demo`) as a child process: sign in, see live activity,
 * find a person the simulator unsubscribed and see the event in their timeline, run a dry run and see the
 * plan, open the reconciliation report. With UPDATE_SCREENSHOTS=1 it saves the main pages to
 * docs/screenshots/. Without Chromium it is skipped with the reason, except under CI, where it fails.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildUiIfStale } from "../../ui/scripts/build-ui-if-stale";
import { spawnDemo } from "../support/demo-process";

const root = join(import.meta.dirname, "..", "..");
const PASSWORD = "e2e-admin-password-0123";
const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const inCi = (process.env["CI"] ?? "") !== "";
const screenshots = process.env["UPDATE_SCREENSHOTS"] === "1";
const screenshotDir = join(root, "docs", "screenshots");

const skipReason = existsSync(chromiumPath)
  ? undefined
  : `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`;

type Urls = {
  ui: string;
  api: string;
  emulators: Record<"re-nxt" | "cc-main" | "cc-appeals", string>;
};

/** Polls `probe` until it yields a value (what a browser test must wait for: another process's work). */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function shot(page: Page, name: string, fullPage = false): Promise<void> {
  if (!screenshots) return;
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage });
}

if (skipReason !== undefined && !inCi) console.warn(`admin UI browser test: skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined && !inCi)(
  "the admin UI in headless Chromium against the demo",
  () => {
    let demo: ChildProcessWithoutNullStreams | undefined;
    let demoExited: Promise<number | null> | undefined;
    let stderr = "";
    let dir: string | undefined;
    let browser: Browser | undefined;
    let page: Page;
    let urls: Urls;

    beforeAll(async () => {
      if (skipReason !== undefined)
        throw new Error(`The browser test needs Chromium under CI: ${skipReason}.`);
      const built = buildUiIfStale();
      if (built !== undefined) console.log(`admin UI built (${built})`);

      dir = mkdtempSync(join(tmpdir(), "concord-ui-e2e-"));
      const { proc } = await spawnDemo(dir, { CONCORD_ADMIN_PASSWORD: PASSWORD });
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
      page.on("pageerror", (error) => {
        console.error(`browser page error: ${error.message}`);
      });
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

    it("asks for the password and signs in", async () => {
      await page.goto("/");
      await page.getByLabel("Admin password").fill("not the password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").filter({ hasText: "wrong_password" }).waitFor();

      await page.getByLabel("Admin password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
      // The session cookie is HttpOnly and limited to /api; the CSRF token is never in a cookie.
      const cookies = await page.context().cookies();
      const session = cookies.find((c) => c.name === "concord_session");
      expect(session?.httpOnly).toBe(true);
      expect(session?.path).toBe("/api");
      expect(session?.sameSite).toBe("Strict");
    });

    it("shows every connection and live activity without a reload", async () => {
      for (const id of ["re-nxt", "cc-main", "cc-appeals"])
        await page.getByRole("article", { name: `Connection ${id}` }).waitFor();
      // The first sync (and the polls after it) appear without reloading: the overview refreshes itself.
      const activity = page.locator("ul.activity li").filter({ hasText: "re-cc" }).first();
      await activity.waitFor({ timeout: 100_000 });
      await page.getByRole("heading", { name: "Opt-out propagation, last 24 h" }).waitFor();
      await page.locator("ul.activity li").nth(2).waitFor({ timeout: 100_000 }); // more than the first sync
      // The pair says how many contacts its last whole plan covered.
      await page
        .getByRole("row")
        .filter({ hasText: "re-cc" })
        .getByText(/^[\d,]+ contacts$/)
        .waitFor({ timeout: 100_000 });
    }, 240_000);

    it("finds a person the simulator unsubscribed and shows the opt-out in their timeline", async () => {
      // The simulator reports each act on the demo's stderr by ids, never addresses: wait for a
      // person of Raiser's Edge NXT to unsubscribe from the main Constant Contact account.
      const act =
        /cc-main\s+contact: a contact (?:clicked the unsubscribe link|unsubscribed with the mail client's one-click|marked an email as spam)[^\n]*\[record (\d+)/g;
      const from = stderr.length;
      const constituentId = await until(
        "the simulator to unsubscribe someone from cc-main",
        90_000,
        async () => Promise.resolve([...stderr.slice(from).matchAll(act)][0]?.[1]),
      );
      const state = (await (await fetch(`${urls.emulators["re-nxt"]}/__emulator/state`)).json()) as {
        constituents: { id: string; email_addresses: { address: string; primary: boolean }[] }[];
      };
      const email = state.constituents
        .find((c) => c.id === constituentId)
        ?.email_addresses.find((e) => e.primary)?.address;
      expect(email, `constituent ${constituentId}'s primary address`).toBeDefined();
      if (email === undefined) return;

      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "People" }).click();
      await page.getByRole("searchbox").fill(email);
      await page.getByRole("button", { name: "Search" }).click();
      await page.getByRole("row").filter({ hasText: email }).getByRole("link").first().click();
      await page.getByRole("heading", { name: "Consent timeline" }).waitFor();

      // The next poll (every second) reads the unsubscribe; until then the page is refreshed.
      const event = page
        .getByRole("list", { name: "Consent events, newest first" })
        .getByRole("listitem")
        .filter({ hasText: "Constant Contact (cc-main)" })
        .filter({ hasText: /opt-out/i });
      await until("the unsubscribe in the timeline", 30_000, async () => {
        if ((await event.count()) > 0) return true;
        await page.getByRole("button", { name: "Refresh" }).click();
        await page.waitForTimeout(500);
        return undefined;
      });
      expect(await event.first().textContent()).toMatch(/opt-out.*all email.*by the contact/i);
      // Main is not mapped to a topic: an opt-out from all email, and cc-main may no longer send.
      await page
        .getByRole("row")
        .filter({ hasText: "cc-main" })
        .filter({ hasText: "not sendable" })
        .first()
        .waitFor({ timeout: 10_000 });
      await page.getByRole("heading", { name: "Linked records" }).waitFor();
      await page.getByRole("heading", { name: "List memberships" }).waitFor();
      // The printable proof opens with the session the page has.
      const [proof] = await Promise.all([
        page.context().waitForEvent("page"),
        page.getByRole("link", { name: "printable page" }).click(),
      ]);
      await proof.getByRole("heading", { name: "Proof of consent" }).waitFor();
      await proof.getByRole("cell", { name: "opt_out", exact: true }).first().waitFor();
      await proof.close();
      await shot(page, "person", true);
    }, 150_000);

    it("records that person's written request to receive email again, and their timeline shows it", async () => {
      // Still on the page of the person the simulator unsubscribed.
      const section = page.getByRole("region", {
        name: "The person asked in writing to receive email again",
      });
      await section.getByText("Record their written request…").click();
      await section.getByLabel("Where the request is (reference)").fill("ticket 4411");
      await section.getByLabel("Its words").fill("Please send me your newsletter again.");
      // She wrote just now (the browser's local time, to the second).
      const t = new Date();
      const two = (n: number) => String(n).padStart(2, "0");
      await section
        .getByLabel("When they asked")
        .fill(
          `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}T${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`,
        );
      await section.getByLabel("Recorded by").fill("UI test");
      await section.getByRole("button", { name: "Record the request" }).click();
      await section
        .getByRole("status", { name: "Override" })
        .filter({ hasText: /opt-outs? lifted; all email is sendable now/ })
        .waitFor({ timeout: 30_000 });
      // The timeline shows the override, by the operator, with the request's reference.
      await page
        .getByRole("list", { name: "Consent events, newest first" })
        .getByRole("listitem")
        .filter({ hasText: "ticket 4411" })
        .first()
        .waitFor({ timeout: 10_000 });
    }, 60_000);

    it("runs a dry run from the Runs page and shows the plan", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Runs" }).click();
      await page.getByRole("button", { name: "Dry run" }).first().click();
      const preview = page.getByRole("region", { name: "Dry-run preview" });
      await preview.waitFor({ timeout: 60_000 });
      const text = (await preview.textContent()) ?? "";
      expect(text).toMatch(/Dry run of re-cc: plan plan_/);
      expect(text).toContain("Changes planned");
      expect(text).toContain("Skipped records, by reason");
      // Every skipped record is grouped by its reason, and the groups open to name the records.
      const group = preview
        .locator("details.group")
        .filter({ hasText: /cc-main · opted_out/ })
        .first();
      await group.locator("summary").click();
      await group.getByRole("listitem").first().waitFor();
      await shot(page, "runs-dry-run");

      // The first sync's stored plan: gains, operations by kind and reason.
      await page.getByLabel("Kind").selectOption("sync");
      await page.getByRole("table").last().getByRole("row").last().getByRole("link").click();
      await page.getByRole("heading", { name: /^Plan plan_/ }).waitFor();
      expect(await page.locator(".gains").textContent()).toMatch(/\+\d+contacts for cc-main/);
      // How many contacts the plan covered, and how many of them were settled and unchanged.
      await page.getByText(/^\d[\d,]* in the plan; \d[\d,]* of them unchanged/).waitFor();
      await shot(page, "run-plan");
    });

    it("opens the reconciliation report and exports it as CSV", async () => {
      await page
        .getByRole("navigation", { name: "Main" })
        .getByRole("link", { name: "Reconciliation" })
        .click();
      await page.getByRole("heading", { name: "Reconciliation", level: 1 }).waitFor();
      await page.getByRole("button", { name: "Run reconciliation now" }).click();
      const report = page.getByRole("region", { name: /Pair re-cc/ });
      await report.waitFor({ timeout: 60_000 });
      await report.getByText("Contacts compared").waitFor();
      expect(await report.textContent()).toMatch(/Opted out, as each system shows it.*re-nxt \d+/);

      const csv = await page.request.get("/api/reconciliation.csv");
      expect(csv.status()).toBe(200);
      expect(csv.headers()["content-type"]).toContain("text/csv");
      expect((await csv.text()).split("\n")[0]).toBe(
        "pair_id,email,contact_id,connection_id,scope,kind,fixable,system_shows,rules_say,cause",
      );
      await shot(page, "reconciliation");
    });

    it("puts a duplicate constituent in the review queue and resolves it there", async () => {
      // An admin enters someone again in Raiser's Edge NXT with the same address: Concord does not
      // guess whether it is the same person; the record goes to review.
      const reNxt = urls.emulators["re-nxt"];
      const state = (await (await fetch(`${reNxt}/__emulator/state`)).json()) as {
        constituents: {
          type: string;
          first?: string;
          last?: string;
          deceased: boolean;
          inactive: boolean;
          email: { address: string } | null;
        }[];
      };
      const original = state.constituents.find(
        (c) =>
          c.type === "Individual" &&
          !c.deceased &&
          !c.inactive &&
          c.email !== null &&
          /^[\w.+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(c.email.address),
      );
      if (original?.email == null) throw new Error("the demo has no individual with a valid address");
      const email = original.email.address;
      const added = await fetch(`${reNxt}/__emulator/act`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          as: "admin",
          action: "add_constituent",
          constituent: {
            type: "Individual",
            first: original.first,
            last: original.last ?? "Duplicate",
            email: { address: email, type: "Email" },
          },
        }),
      });
      expect(added.status).toBe(200);

      await page
        .getByRole("navigation", { name: "Main" })
        .getByRole("link", { name: /Review queue/ })
        .click();
      await page.getByRole("heading", { name: "Review queue", level: 1 }).waitFor();
      const item = page.getByRole("region", { name: `ambiguous identity ${email}` });
      await until("the duplicate in the review queue", 30_000, async () => {
        if ((await item.count()) > 0) return true;
        await page.getByRole("button", { name: "Refresh" }).click();
        await page.waitForTimeout(500);
        return undefined;
      });
      await item.getByText("already has a record in this system").waitFor();
      await item.getByRole("button", { name: "Link to this contact" }).first().waitFor();
      await shot(page, "review");

      await item.getByRole("button", { name: "Keep as a contact of its own" }).click();
      await item.getByRole("status").filter({ hasText: "Resolved." }).waitFor({ timeout: 30_000 });
    });

    it("erases a person from their page: a preview first, then what each system did", async () => {
      const state = (await (await fetch(`${urls.emulators["re-nxt"]}/__emulator/state`)).json()) as {
        constituents: {
          type: string;
          deceased: boolean;
          inactive: boolean;
          email?: { address: string } | null;
        }[];
      };
      const person = state.constituents
        .filter(
          (c) =>
            c.type === "Individual" &&
            !c.deceased &&
            !c.inactive &&
            c.email != null &&
            /^[\w.+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(c.email.address),
        )
        .at(-1);
      if (person?.email == null) throw new Error("the demo has no individual with a valid address");
      const email = person.email.address;

      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "People" }).click();
      await page.getByRole("searchbox").fill(email);
      await page.getByRole("button", { name: "Search" }).click();
      await page.getByRole("row").filter({ hasText: email }).getByRole("link").first().click();
      const section = page.getByRole("region", { name: "Erase this person" });
      await section.getByText("The person asked to be forgotten…").click();
      await section.getByLabel("Recorded by").fill("UI test");
      await section.getByLabel("The person's request (reference)").fill("ticket 77");
      await section.getByRole("button", { name: "Preview the erasure" }).click();
      await section
        .getByRole("status", { name: "Erasure" })
        .filter({ hasText: "nothing was changed" })
        .waitFor();
      await section
        .getByText(/re-nxt record \S+ planned/)
        .first()
        .waitFor();
      await shot(page, "erasure-preview", true);

      // The last individual is the duplicate entered above: two contacts hold the address, so the
      // erasure waits for the operator to say that both are the person who asked.
      await section.getByText(/2 contacts with this address \(con_/).waitFor();
      await section
        .getByLabel("All 2 contacts at this address are the person who asked: erase every one")
        .check();
      await section.getByRole("button", { name: "Erase everywhere" }).click();
      await section
        .getByRole("status", { name: "Erasure" })
        .filter({ hasText: "never imported again" })
        .waitFor({ timeout: 30_000 });
      // The page reloads: the contact is erased, and no longer found by its address.
      await page.getByText("erased", { exact: true }).first().waitFor();
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "People" }).click();
      await page.getByRole("searchbox").fill(email);
      await page.getByRole("button", { name: "Search" }).click();
      await page
        .getByText(/no one|nobody|no contact/i)
        .first()
        .waitFor();
    }, 90_000);

    it("shows the daily charts on the overview, and a lapsed session returns to sign-in", async () => {
      // The overview once there is some history: activity, lag against the clocks, the charts.
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview" }).click();
      await page
        .getByRole("region", { name: "Operations applied per day" })
        .locator("svg rect")
        .first()
        .waitFor({ timeout: 15_000 });
      // The compliance report: one row per legal clock, and its CSV.
      const compliance = page.getByRole("region", { name: "Compliance report (30 days)" });
      await compliance.getByRole("row").filter({ hasText: "CASL: 10 business days" }).waitFor();
      await compliance.getByRole("link", { name: "Download CSV" }).waitFor();
      await shot(page, "overview", true);

      // Signed out elsewhere (the cookie gone): the next request answers 401 and the UI asks again.
      // That request is the click on Runs or the overview's own refresh, whichever comes first: once
      // the refresh has signed out, the link is gone and the click has nothing left to do.
      await page.context().clearCookies();
      const signIn = page.getByLabel("Admin password");
      await Promise.race([
        signIn.waitFor({ timeout: 60_000 }),
        page
          .getByRole("navigation", { name: "Main" })
          .getByRole("link", { name: "Runs" })
          .click({ timeout: 60_000 })
          .catch(() => signIn.waitFor({ timeout: 60_000 })),
      ]);
      await signIn.waitFor({ timeout: 15_000 });
      await page.getByText("Your session ended").waitFor();
    }, 120_000);
  },
);
