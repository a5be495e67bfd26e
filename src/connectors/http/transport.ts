/**
 * How a connector's HTTP calls leave the process. By default over the network (undici); a host may
 * hand the runtime another transport (a proxy, an in-process server, a recorder), and every call of
 * the HTTP client and of the OAuth token refresh goes through it.
 */
import { request } from "undici";
import type { HttpTransport, TransportRequest, TransportResponse } from "../connector";

const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** The network: undici, with the caller's timeouts and a cap on the answer's size. */
export const networkTransport: HttpTransport = async (
  url: string,
  init: TransportRequest,
): Promise<TransportResponse> => {
  const response = await request(url, {
    method: init.method,
    headers: init.headers,
    body: init.body,
    headersTimeout: init.timeout_ms,
    bodyTimeout: init.timeout_ms,
  });
  const text = await readCapped(response.body, init.max_bytes ?? MAX_RESPONSE_BYTES);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(response.headers)) {
    if (typeof v === "string") headers[k] = v;
    else if (Array.isArray(v)) headers[k] = v.join(", ");
  }
  return { status: response.statusCode, headers, text };
};

async function readCapped(body: AsyncIterable<Buffer | Uint8Array>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) throw new Error(`response larger than ${max} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString("utf8");
}
