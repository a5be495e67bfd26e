/**
 * The UI's only way to the server: JSON over HTTP under /api with the session cookie, and the
 * session's CSRF token on every request that changes something. Errors carry the API's code and
 * message; a lapsed session sends the UI back to the sign-in page.
 */
import { isRecord } from "./api-types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let csrfToken: string | null = null;
let sessionLost: (() => void) | undefined;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when the server says the session is gone (401 on anything but signing in). */
export function onSessionLost(listener: (() => void) | undefined): void {
  sessionLost = listener;
}

async function request<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken !== null) headers["x-csrf-token"] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (error) {
    throw new ApiError(0, "network_error", `The server cannot be reached (${String(error)}).`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  if (text !== "")
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  if (!res.ok) {
    const code = isRecord(json) && typeof json["code"] === "string" ? json["code"] : `http_${res.status}`;
    const message =
      isRecord(json) && typeof json["message"] === "string"
        ? json["message"]
        : `${method} ${path} answered ${res.status} ${res.statusText}.`;
    if (res.status === 401 && code !== "wrong_password") sessionLost?.();
    throw new ApiError(res.status, code, message);
  }
  return json as T;
}

export const apiGet = <T>(path: string): Promise<T> => request<T>("GET", path);
export const apiPost = <T>(path: string, body: unknown = {}): Promise<T> => request<T>("POST", path, body);
export const apiDelete = <T>(path: string): Promise<T> => request<T>("DELETE", path);

/** `?a=1&b=x` from the defined entries. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") search.set(k, String(v));
  const s = search.toString();
  return s === "" ? "" : `?${s}`;
}
