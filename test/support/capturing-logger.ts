import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/observability/logger";

/** A logger whose lines (one JSON object each) are kept in `lines` for the test to read. */
export function capturingLogger(level: "info" | "debug" = "info"): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString("utf8"));
      done();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}
