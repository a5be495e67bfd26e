/**
 * Test helpers for the Raiser's Edge NXT emulator: a started emulator on loopback with a movable
 * clock, an authenticated HTTP caller, and a tiny webhook receiver.
 */
import { createFakeClock, type FakeClock } from "../fake-clock";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  startBlackbaudEmulator,
  type BlackbaudEmulatorOptions,
  type RunningBlackbaudEmulator,
} from "../../../src/connectors/blackbaud-renxt/emulator/blackbaud-emulator";

export const T0 = Date.parse("2026-03-02T12:00:00.000Z");

export type Harness = {
  emu: RunningBlackbaudEmulator;
  clock: FakeClock;
  token: string;
  call: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Reply>;
  control: (method: string, path: string, body?: unknown) => Promise<Reply>;
  close: () => Promise<void>;
};

export type Reply = { status: number; headers: Headers; body: any; text: string };

async function toReply(res: Response): Promise<Reply> {
  const text = await res.text();
  let body: any;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body, text };
}

export async function startHarness(options: BlackbaudEmulatorOptions = {}): Promise<Harness> {
  const clock = createFakeClock(new Date(T0).toISOString());
  const emu = await startBlackbaudEmulator({
    ratePerSecond: 1_000_000,
    webhooks: { autoDeliver: false },
    ...options,
    now: clock.now,
  });
  const minted = emu.mintToken();
  const token = String(minted.access_token);
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const h: Record<string, string> = {
      "Bb-Api-Subscription-Key": emu.subscriptionKey,
      Authorization: `Bearer ${token}`,
      ...headers,
    };
    if (body !== undefined && h["content-type"] === undefined) h["content-type"] = "application/json";
    const res = await fetch(`${emu.baseUrl}${path}`, {
      method,
      headers: h,
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    return toReply(res);
  };
  const control = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${emu.baseUrl}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    return toReply(res);
  };
  return { emu, clock, token, call, control, close: () => emu.close() };
}

export type Received = { method: string; url: string; headers: IncomingHttpHeaders; body: any };

export type Receiver = {
  url: string;
  received: Received[];
  posts: () => Received[];
  /** Status codes to answer POSTs with, in order; afterwards 200. */
  script: number[];
  handshake: "ok" | "no-header" | "500";
  /** Resolves when at least n POSTs have arrived. */
  waitForPosts: (n: number) => Promise<Received[]>;
  close: () => Promise<void>;
};

export async function startReceiver(): Promise<Receiver> {
  const waiters: { n: number; resolve: (r: Received[]) => void }[] = [];
  const receiver: Receiver = {
    url: "",
    received: [],
    posts: () => receiver.received.filter((r) => r.method === "POST"),
    script: [],
    handshake: "ok",
    waitForPosts: (n) =>
      new Promise((resolve) => {
        if (receiver.posts().length >= n) resolve(receiver.posts());
        else waiters.push({ n, resolve });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (chunk: Buffer) => (raw += chunk.toString("utf8")));
    req.on("end", () => {
      receiver.received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: raw === "" ? undefined : JSON.parse(raw),
      });
      if (req.method === "OPTIONS") {
        if (receiver.handshake === "500") res.writeHead(500).end();
        else if (receiver.handshake === "no-header") res.writeHead(200).end();
        else res.writeHead(200, { "WebHook-Allowed-Origin": "eventgrid.azure.net" }).end();
        return;
      }
      res.writeHead(receiver.script.shift() ?? 200).end();
      const count = receiver.posts().length;
      for (const w of [...waiters]) {
        if (count >= w.n) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(receiver.posts());
        }
      }
    });
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve();
    });
  });
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bb/handler?webhookKey=s3cret`;
  return receiver;
}
