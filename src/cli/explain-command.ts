/**
 * `concord explain <email>`: a person's consent timeline across systems and the rule and event
 * behind each current state. Exit codes: 0 found, 1 no contact has the address, 2 not an email
 * address (or a bad `--as-of`).
 */
import { InvalidArgumentError, type Command } from "commander";
import { formatExplanation, parseAsOf, type ExplainResult } from "../explain/explain-contact";
import { EXIT_OK, EXIT_PROBLEM, EXIT_USAGE } from "./exit-codes";

export type ExplainCommandDeps = {
  /** Resolves the explanation; `undefined` when the engine could not open (the error is already reported). */
  explain: (
    email: string,
    options: { as_of?: string; config?: string },
  ) => Promise<ExplainResult | undefined>;
  out: (line: string) => void;
  err: (line: string) => void;
  setExitCode: (code: number) => void;
};

function asOfArgument(value: string): string {
  const parsed = parseAsOf(value);
  if (!parsed.ok) throw new InvalidArgumentError(parsed.message);
  return parsed.as_of;
}

export const explainExitCode = (result: ExplainResult): number => {
  switch (result.kind) {
    case "found":
      return EXIT_OK;
    case "not_found":
      return EXIT_PROBLEM;
    case "invalid_email":
    case "invalid_as_of":
      return EXIT_USAGE;
  }
};

export function registerExplainCommand(program: Command, deps: ExplainCommandDeps): void {
  program
    .command("explain")
    .description(
      "Show a person's consent timeline across every system and, for each connection's scope, the current state, the rule that decided it and the event behind it",
    )
    .argument("<email>", "the person's address (primary or any older or secondary one)")
    .option("--json", "print the explanation as one JSON document")
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .option(
      "--as-of <iso>",
      "evaluate at this time, counting only events that happened by then (ISO-8601 with Z or an offset; a date alone means the end of that day, UTC)",
      asOfArgument,
    )
    .action(async (email: string, options: { json?: boolean; asOf?: string; config?: string }) => {
      const result = await deps.explain(email, {
        ...(options.asOf !== undefined ? { as_of: options.asOf } : {}),
        ...(options.config !== undefined ? { config: options.config } : {}),
      });
      if (result === undefined) {
        deps.setExitCode(EXIT_USAGE);
        return;
      }
      const code = explainExitCode(result);
      if (options.json === true) deps.out(JSON.stringify(result));
      else if (code === EXIT_OK) for (const line of formatExplanation(result).split("\n")) deps.out(line);
      else deps.err(formatExplanation(result));
      deps.setExitCode(code);
    });
}
