/**
 * Why a server could not listen, said so that whoever started it knows what to change: the port
 * taken, a port the process may not open, or a host that is not this machine's.
 */
import { errorCode, errorMessage } from "../core/error-code";

export const isAddressInUse = (error: unknown): boolean => errorCode(error) === "EADDRINUSE";

/** "could not listen on 127.0.0.1:8080: …", with what to change (`--port`/`PORT`, `--host`/`HOST`). */
export function listenFailure(error: unknown, host: string, port: number): string {
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const because = (() => {
    switch (errorCode(error)) {
      case "EADDRINUSE":
        return "the port is taken by another process; stop it, or choose another port with --port (or PORT)";
      case "EACCES":
        return "this user may not open that port (ports below 1024 need privileges); choose another with --port (or PORT)";
      case "EADDRNOTAVAIL":
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return "that host is not an address of this machine; choose another with --host (or HOST), e.g. 127.0.0.1 or 0.0.0.0";
      default:
        return errorMessage(error);
    }
  })();
  return `could not listen on ${where}: ${because}`;
}
