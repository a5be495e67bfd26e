/**
 * The process the random-kill test kills: one sync of the config's first pair on a SQLite store file,
 * counting kill points (every vendor response, every committed batch of one operation) and sending
 * itself SIGKILL at the point it was given. Without a kill point it runs to the end and prints one
 * JSON line: how many points it passed and what the run reported. Test support, never shipped in a
 * command.
 */
import { readFileSync } from "node:fs";
import { ConcordConfigShapeSchema } from "../../src/config/concord-config";
import { createLogger } from "../../src/observability/logger";
import { openStore } from "../../src/store/open-store";
import { connectionHealthTracker } from "../../src/connections/connection-health";
import { openConnections } from "../../src/connections/open-connection";
import { syncPair } from "../../src/runs/sync-pair";
import { TEST_ENV, TEST_KEY } from "./test-credentials";

type ChildArgs = {
  db_file: string;
  config: unknown;
  kill_at?: number;
  /** Killed right after this connection's token endpoint answers, before a rotated token is saved. */
  kill_at_token_of?: string;
};

const args = JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")) as ChildArgs;
const store = await openStore({ file: args.db_file });
const config = ConcordConfigShapeSchema.parse(args.config);
const pair = config.pairs[0];
if (!pair) throw new Error("the config has no pair");
const now = (): Date => new Date();
let points = 0;
const point = (): void => {
  points += 1;
  if (args.kill_at !== undefined && points >= args.kill_at) process.kill(process.pid, "SIGKILL");
};
const health = connectionHealthTracker({ store, logger: createLogger({ level: "silent" }), now });
const connections = openConnections(
  config.connections,
  {
    store,
    env: TEST_ENV,
    key: TEST_KEY,
    health,
    now,
    // Bulk activities are polled without waiting: the emulators finish them in a poll or two.
    sleep: () => new Promise((resolve) => setImmediate(resolve)),
    onApiCall: (connectionId, call) => {
      if (connectionId === args.kill_at_token_of && call.path.endsWith("/token"))
        process.kill(process.pid, "SIGKILL");
      point();
    },
  },
  config.topics,
);
const report = await syncPair({ store, config, connections, now, batch_size: 1, afterBatch: point }, pair);
await store.close();
process.stdout.write(
  `${JSON.stringify({
    points,
    status: report.status,
    operations: report.plan?.operations.length ?? 0,
    waiting: report.execution?.waiting ?? [],
    rejections: report.execution?.rejections ?? [],
  })}\n`,
);
