/**
 * Runs the Raiser's Edge NXT emulator on its own:
 * `npx tsx src/connectors/blackbaud-renxt/emulator/main.ts --port 4020`.
 */
import { runBlackbaudEmulator } from "./blackbaud-emulator";

function portFromArgs(argv: string[]): number {
  const i = argv.findIndex((a) => a === "--port" || a.startsWith("--port="));
  if (i < 0) return 4020;
  const raw = argv[i]!.includes("=") ? argv[i]!.split("=")[1] : argv[i + 1];
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`Invalid --port value: ${String(raw)}`);
  return port;
}

const running = await runBlackbaudEmulator({ port: portFromArgs(process.argv.slice(2)) });
const stop = (): void => {
  void running.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
