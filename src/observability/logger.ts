/**
 * The structured logger (pino, ISO-8601 UTC times) whose every line passes through redaction
 * before it is written, so no call site can leak a token or an email address by mistake.
 */
import { pino, type DestinationStream, type Logger as PinoLogger, type LevelWithSilent } from "pino";
import { redactString, redactValue } from "./redact";

export { redactEmail, redactString, redactValue } from "./redact";

export type Logger = PinoLogger;
export type LoggerOptions = {
  level?: LevelWithSilent;
  /** Where lines go; stdout when absent. Tests pass a stream that collects them. */
  destination?: DestinationStream;
  /** Fields on every line (service, instance…), redacted like everything else. */
  bindings?: Record<string, unknown>;
};

/**
 * Redacts a whole serialized line. Done at the very end, not in pino's formatters, because child
 * bindings and serializer output (an error's message, a request's URL) never pass through those.
 */
export function redactLogLine(line: string): string {
  const newline = line.endsWith("\n") ? "\n" : "";
  try {
    return JSON.stringify(redactValue(JSON.parse(line))) + newline;
  } catch {
    // Not JSON (a custom stream format): still cut credentials and addresses out of the text.
    return redactString(line);
  }
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const pinoOptions = {
    level: options.level ?? "info",
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: { streamWrite: redactLogLine },
  };
  const root = options.destination === undefined ? pino(pinoOptions) : pino(pinoOptions, options.destination);
  return options.bindings === undefined ? root : root.child(options.bindings);
}
