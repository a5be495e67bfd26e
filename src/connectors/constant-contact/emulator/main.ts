/**
 * Runs the Constant Contact V3 emulator alone: `npx tsx src/connectors/constant-contact/emulator/main.ts --port 4010`.
 */
import { runConstantContactEmulator } from "./constant-contact-emulator";

function readPort(argv: string[]): number {
  const index = argv.findIndex((a) => a === "--port" || a.startsWith("--port="));
  if (index < 0) return 4010;
  const arg = argv[index] ?? "";
  const raw = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[index + 1];
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port must be 0-65535, got ${String(raw)}`);
  return port;
}

const started = await runConstantContactEmulator({ port: readPort(process.argv.slice(2)), logger: false });
const stop = (): void => {
  void started.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
