/**
 * `concord demo` as a real process, in each world: one JSON line with the URLs, Concord and the
 * emulators answer, the simulator's first opt-out in the main platform account reaches Raiser's
 * Edge NXT, and SIGTERM stops everything cleanly.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnDemo } from "../../test/support/demo-process";

type Urls = {
  ui: string;
  api: string;
  signup: string;
  emulators: Record<string, string>;
};

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe("concord demo", () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  afterEach(() => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
  });

  it.each([
    { world: "renxt-cc", connections: ["cc-appeals", "cc-main", "re-nxt"], main: "cc-main" },
    { world: "renxt-mailchimp", connections: ["mc-main", "re-nxt"], main: "mc-main" },
    {
      world: "renxt-cc-mailchimp",
      connections: ["cc-appeals", "cc-main", "mc-main", "re-nxt"],
      main: "cc-main",
    },
    {
      world: "kindful-cc",
      connections: ["cc-appeals", "cc-main", "kindful"],
      main: "cc-main",
      crm: "kindful",
    },
    {
      world: "growthzone-cc",
      connections: ["cc-appeals", "cc-main", "growthzone"],
      main: "cc-main",
      crm: "growthzone",
    },
    {
      world: "growthzone-mailchimp",
      connections: ["growthzone", "mc-main"],
      main: "mc-main",
      crm: "growthzone",
    },
  ])(
    "$world: starts everything, prints one JSON line, carries a simulated opt-out across, and stops on SIGTERM",
    async ({ world, connections, main, crm = "re-nxt" }) => {
      const dir = mkdtempSync(join(tmpdir(), "concord-demo-"));
      const { proc, ports } = await spawnDemo(dir, {}, world);
      child = proc;
      let stdout = "";
      let stderr = "";
      proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) =>
        proc.on("close", (code) => {
          resolve(code);
        }),
      );

      const line = await until("the JSON line", 60_000, async () =>
        stdout.includes("\n") ? stdout.slice(0, stdout.indexOf("\n")) : undefined,
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}\nstderr:\n${stderr}`);
      });
      const urls = JSON.parse(line) as Urls;
      expect(Object.keys(urls).sort()).toEqual(["api", "emulators", "signup", "ui"]);
      const form = await fetch(urls.signup);
      expect(form.status).toBe(200);
      expect(await form.text()).toContain("Sign up for email from the demo organisation");
      expect(Object.keys(urls.emulators).sort()).toEqual(connections);
      if (crm === "re-nxt") expect(urls.emulators["re-nxt"]).toBe(`http://127.0.0.1:${String(ports.re)}`);

      const health = await fetch(urls.ui.replace(/\/$/, "/healthz"));
      expect(health.status).toBe(200);
      for (const base of Object.values(urls.emulators)) {
        const res = await fetch(`${base}/__emulator/requests`);
        expect(res.status).toBe(200);
      }

      // The simulator's first act: a contact unsubscribes by the footer link in the main account
      // (global), which Concord carries to Raiser's Edge NXT as "Requests No Email" at the next poll.
      const constituent = await until("the simulator's first opt-out", 60_000, async () => {
        const match = new RegExp(`${main}\\s+contact: .*unsubscribe.*\\[record (\\d+)`).exec(stderr);
        return match?.[1];
      });
      /** True once the CRM shows its opt-out from all email on the record. */
      const noEmail = async (id: string): Promise<true | undefined> => {
        const res = await fetch(`${urls.emulators[crm] ?? ""}/__emulator/state`);
        const state = (await res.json()) as {
          constituents?: { id: string; requests_no_email: boolean }[];
          contacts?: {
            id?: number;
            email_opt_in?: string;
            ContactId?: number;
            Emails?: { Restriction: string }[];
          }[];
        };
        const out =
          crm === "re-nxt"
            ? state.constituents?.find((c) => c.id === id)?.requests_no_email === true
            : crm === "kindful"
              ? state.contacts?.find((c) => String(c.id) === id)?.email_opt_in === "No"
              : (state.contacts?.find((c) => String(c.ContactId) === id)?.Emails?.[0]?.Restriction ??
                  "None") !== "None";
        return out ? true : undefined;
      };
      await until("the opt-out in Raiser's Edge NXT", 60_000, () => noEmail(constituent));
      // The run's line is printed once the run has finished, a moment after its writes.
      await until("the run's line naming the opt-out written to Raiser's Edge NXT", 60_000, async () =>
        new RegExp(`concord\\s+\\S+ (poll|webhook|first sync): .*${crm} record_opt_out`).test(stderr)
          ? true
          : undefined,
      );
      // Once the first sync is done, a person uses Concord's own one-click URL (real HTTP, as a mail
      // client does): Raiser's Edge NXT follows in seconds.
      const clicked = await until("a one-click on Concord's own URL", 60_000, async () => {
        const match =
          /concord\s+contact: a person pressed their mail client's Unsubscribe.*\[record (\d+)/.exec(stderr);
        return match?.[1];
      });
      await until("the one-click opt-out in Raiser's Edge NXT", 60_000, () => noEmail(clicked));
      // Then the preference centre and the sign-up form, confirmed from the emailed link.
      await until("a topic left on Concord's preference centre", 60_000, async () =>
        /concord\s+contact: a person unticked "Fundraising appeals" on Concord's preference centre/.test(
          stderr,
        )
          ? true
          : undefined,
      );
      await until("a sign-up confirmed from Concord's email", 90_000, async () =>
        /concord\s+contact: a person confirmed the link Concord emailed them/.test(stderr) ? true : undefined,
      );
      expect(stderr).not.toMatch(/[\w.+-]+@[\w-]+\.[\w.]+/); // ids, never addresses

      proc.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(stdout.trim().split("\n")).toEqual([line]);
      expect(stderr).toContain("The demo stopped.");
    },
    240_000,
  );
});
