/**
 * The demo's people on Concord's own pages, over real HTTP like a mail client and a browser: the
 * one-click URL of an email's List-Unsubscribe header, the preference centre, and the sign-up form
 * whose confirmation email arrives in the demo's outbox. The demo serves these pages at its own
 * address and sends their email to that outbox (`withPersonPages`).
 */
import { createServer, type AddressInfo } from "node:net";
import { SignupSchema, type ConcordConfig } from "../config/concord-config";
import type { SecretKey } from "../config/secret-box";
import { contactsByEmail, linkSigner, personalLinks, type PersonalLinks } from "../runs/personal-links";
import type { StoreSession } from "../store/ports";
import type { Outbox } from "./outbox";
import type { ConcordPages } from "./simulator";
import { connectionsFor, type DemoWorldSpec } from "./worlds";

/** `port`, or a free one on `host` when it is 0 (so the public address is known before listening). */
export async function freePort(port: number, host: string): Promise<number> {
  if (port !== 0) return port;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const chosen = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  return chosen;
}

/**
 * The demo's config with Concord's person pages on: `server.public_url` at the demo's address (unless
 * the config sets one) and, unless it has one, a sign-up form into the world's main platform, in
 * its first mapped list, its email leaving through the local outbox.
 */
export function withPersonPages(
  config: ConcordConfig,
  base: string,
  outboxPort: number,
  world: DemoWorldSpec,
): ConcordConfig {
  const server = { ...config.server, public_url: config.server.public_url ?? base };
  if (config.signup !== undefined) return { ...config, server };
  const main = connectionsFor(world, "main")[0];
  const pair = config.pairs.find((p) => p.platforms.some((pp) => pp.connection === main));
  if (main === undefined || pair === undefined) return { ...config, server };
  const list = pair.audiences.find((a) => a.platform === main)?.platform_list;
  const signup = SignupSchema.parse({
    organisation: "the demo organisation",
    connection: main,
    lists: list !== undefined ? [list] : [],
    // The simulator signs many people up from one address.
    per_address_hourly: 10_000,
    smtp: { host: "127.0.0.1", port: outboxPort, from: "hello@demo.example.org" },
  });
  return { ...config, server, signup };
}

const FORM = "application/x-www-form-urlencoded";

/** The person pages as the simulator uses them; undefined when links cannot be signed. */
export function concordPages(deps: {
  store: StoreSession;
  key: SecretKey | string;
  config: ConcordConfig;
  outbox: Outbox;
}): ConcordPages | undefined {
  const signer = linkSigner(deps.key, deps.config);
  if (!signer.ok) return undefined;
  const publicUrl = signer.value.public_url;
  const linksOf = async (email: string): Promise<PersonalLinks | undefined> => {
    const [id] = (await contactsByEmail(deps.store, email)) ?? [];
    return id === undefined ? undefined : personalLinks(deps.store, signer.value, id, new Date());
  };
  const post = async (url: string, body: string, agent: string): Promise<boolean> => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": FORM, "user-agent": agent },
      body,
      redirect: "manual",
    });
    await res.arrayBuffer();
    return res.status === 200;
  };
  const topic = deps.config.topics[0];
  return {
    oneClick: async (email) => {
      const links = await linksOf(email);
      return (
        links !== undefined &&
        post(links.one_click_url, links.list_unsubscribe_post, "DemoMail/1.0 (one-click)")
      );
    },
    ...(topic === undefined
      ? {}
      : {
          leaveTopic: {
            topic: topic.key,
            label: topic.label,
            run: async (email: string) => {
              const links = await linksOf(email);
              if (links === undefined) return false;
              const page = await fetch(links.preferences_url, {
                headers: { "user-agent": "DemoBrowser/1.0" },
              });
              const html = await page.text();
              const ticked = [
                ...html.matchAll(/<input type="checkbox" id="[^"]*" name="([^"]+)" checked>/g),
              ].map((m) => m[1] ?? "");
              const leaving = `topic:${topic.key}`;
              if (!ticked.includes(leaving)) return false;
              // As a browser sends the form: its hidden fields (the state the page showed) and the
              // boxes left ticked.
              const hidden = [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map(
                (m): [string, string] => [m[1] ?? "", m[2] ?? ""],
              );
              const form = new URLSearchParams([
                ...hidden,
                ...ticked.filter((k) => k !== leaving).map((k): [string, string] => [k, "on"]),
              ]);
              return post(links.preferences_url, form.toString(), "DemoBrowser/1.0");
            },
          },
        }),
    ...(deps.config.signup === undefined
      ? {}
      : {
          signUp: (person: { email: string; first_name: string; last_name: string }) =>
            post(
              `${publicUrl}/l/signup`,
              new URLSearchParams({
                ...person,
                ...(topic !== undefined ? { topic: topic.key } : {}),
              }).toString(),
              "DemoBrowser/1.0",
            ),
          confirmSignUp: async (email: string) => {
            const mail = deps.outbox.mails.filter((m) => m.to.includes(email)).at(-1);
            const link = /https?:\/\/\S+\/l\/c\/[A-Za-z0-9_-]{43}/.exec(mail?.body ?? "")?.[0];
            if (link === undefined) return false;
            // As a browser: the page first, then its Confirm button (the form names what it showed).
            const page = await fetch(link, { headers: { "user-agent": "DemoBrowser/1.0" } });
            const shown = /name="shown" value="([^"]*)"/.exec(await page.text())?.[1] ?? "";
            return post(link, new URLSearchParams({ confirm: "yes", shown }).toString(), "DemoBrowser/1.0");
          },
        }),
  };
}
