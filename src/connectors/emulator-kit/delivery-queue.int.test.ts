import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { DeliveryQueue } from "./delivery-queue";

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

describe("DeliveryQueue", () => {
  it("retries a failed delivery even when its timer fires before the wall clock says it is due", async () => {
    let failures = 1;
    let ahead = 0;
    const statuses: number[] = [];
    server = createServer((_req, res) => {
      const status = failures > 0 ? 500 : 200;
      if (failures > 0) {
        failures -= 1;
        // The wall clock reads 40 ms ahead once, when the retry is timed: its timer will fire
        // before the retry is due, as it can on a loaded machine.
        ahead = 40;
      }
      statuses.push(status);
      res.statusCode = status;
      res.end();
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const queue = new DeliveryQueue(
      {
        autoDeliver: true,
        timeoutMs: 5_000,
        retryScheduleMs: [5, 5],
        backoffScale: 1,
        delivered: (s) => s < 300,
        user_agent: "test",
        wall_clock: () => {
          const t = Date.now() + ahead;
          ahead = 0;
          return t;
        },
      },
      () => new Date(),
    );
    queue.enqueue({
      hook_id: "h",
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
      content_type: "text/plain",
      body: "x",
      type: "test",
    });
    // Waits for the deliveries, never for a time: each turn lets the queue's timers and calls run.
    while (queue.deliveries[0]?.status !== "delivered") await queue.idle();
    expect(statuses).toEqual([500, 200]);
    queue.close();
  });
});
