/**
 * "Connect" and "Reconnect" for a system that authorises by OAuth 2 (seeds 002 and 004: click
 * Connect, log in, Allow): the vendor's authorization page with a single-use `state` that only a
 * signed-in operator can have made, and PKCE where the vendor takes it; the callback exchanges the
 * code, seals the tokens at once as the connection's renewed tokens, checks the connection and
 * marks it working. The callback carries no session (the session cookie is SameSite=Strict and the
 * browser comes from the vendor's site): the unguessable state, made for that connection, is its
 * proof. Waiting flows are kept in the store by the hash of their state, so the answer may come back
 * to any server process of the installation, and is taken by exactly one.
 */
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import type { OAuthSupport } from "../connectors/manifest";
import { networkTransport } from "../connectors/http/transport";
import type { HttpTransport } from "../connectors/connector";
import type { ConnectFlowRepository } from "../store/ports";
import type { OpenedConnection } from "./open-connection";
import { errorMessage } from "../core/error-code";

/** How long an authorization may take between Connect and the vendor's answer. */
const FLOW_TTL_MS = 10 * 60_000;
/** Flows waiting at once (each is a few hundred bytes); the oldest is dropped beyond it. */
const MAX_FLOWS = 100;

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

export type ConnectError = { code: string; message: string; status: number };
export type ConnectResult<T> = { ok: true; value: T } | { ok: false; error: ConnectError };

const failure = (status: number, code: string, message: string): { ok: false; error: ConnectError } => ({
  ok: false,
  error: { status, code, message },
});

const base64url = (b: Buffer): string => b.toString("base64url");

const TokenAnswerSchema = z.looseObject({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  // Mailchimp answers 0: a token that never expires.
  expires_in: z.coerce.number().nonnegative().optional(),
});

/**
 * Where a connection's authorization page is: the vendor's, or the same path beside the
 * connection's own token URL when that is somewhere else (an emulator, a sandbox).
 */
export function authorizeUrlOf(oauth: OAuthSupport, tokenUrl: string | undefined): string {
  if (tokenUrl === undefined) return oauth.authorize_url;
  const vendor = new URL(oauth.authorize_url);
  const token = new URL(tokenUrl);
  if (oauth.token_hosts.includes(token.host)) return oauth.authorize_url;
  return new URL(vendor.pathname, token.origin).toString();
}

export type ConnectFlows = {
  /** The vendor's authorization URL for the connection, with a new `state` for this session. */
  start: (
    opened: OpenedConnection,
    input: { redirect_uri: string; browser: string },
  ) => Promise<ConnectResult<{ authorize_url: string }>>;
  /** The vendor's answer: the tokens sealed, the connection checked and marked working. */
  finish: (
    opened: ReadonlyMap<string, OpenedConnection>,
    input: {
      connection_id: string;
      /** The starting browser's secret, from its cookie. */
      browser: string | undefined;
      state: string | undefined;
      code: string | undefined;
      error?: string | undefined;
      error_description?: string | undefined;
    },
  ) => Promise<ConnectResult<{ connection_id: string; account_label: string }>>;
};

export function connectFlows(deps: {
  /** Where waiting flows are kept: shared by every server process. */
  store: { connectFlows: ConnectFlowRepository };
  now: () => Date;
  transport?: HttpTransport;
  /** Marks the connection working again (its health and alert). */
  succeeded: (connectionId: string) => Promise<void>;
}): ConnectFlows {
  const flows = deps.store.connectFlows;
  const transport = deps.transport ?? networkTransport;

  return {
    start: async (opened, input) => {
      const oauth = opened.manifest.oauth;
      if (oauth === undefined)
        return failure(
          409,
          "not_oauth",
          `${opened.manifest.label} does not authorise by OAuth: give its ${Object.keys(opened.manifest.credentials).join(", ")} with concord secrets set.`,
        );
      const creds = await opened.credentials.get();
      const clientId = creds["client_id"];
      if (clientId === undefined || clientId === "")
        return failure(
          409,
          "no_client_id",
          `Connection ${opened.connection.id} has no client_id: give the OAuth app's client id in connections[].credentials.client_id.`,
        );
      const state = base64url(randomBytes(32));
      const verifier = oauth.pkce ? base64url(randomBytes(48)) : undefined;
      await flows.put(
        {
          state_hash: sha256(state),
          connection_id: opened.connection.id,
          browser_hash: sha256(input.browser),
          redirect_uri: input.redirect_uri,
          verifier: verifier ?? null,
          expires_at: new Date(deps.now().getTime() + FLOW_TTL_MS).toISOString(),
        },
        { now: deps.now().toISOString(), keep: MAX_FLOWS },
      );
      const url = new URL(authorizeUrlOf(oauth, opened.endpoint.token_url));
      url.searchParams.set("response_type", "code");
      url.searchParams.set("client_id", clientId);
      url.searchParams.set("redirect_uri", input.redirect_uri);
      url.searchParams.set("state", state);
      if (oauth.scopes.length > 0) url.searchParams.set("scope", oauth.scopes.join(" "));
      if (verifier !== undefined) {
        url.searchParams.set("code_challenge", base64url(createHash("sha256").update(verifier).digest()));
        url.searchParams.set("code_challenge_method", "S256");
      }
      return { ok: true, value: { authorize_url: url.toString() } };
    },

    finish: async (connections, input) => {
      // Single use: an answer is taken once, whatever it says.
      const flow = input.state === undefined ? undefined : await flows.take(sha256(input.state));
      if (
        flow === undefined ||
        flow.expires_at <= deps.now().toISOString() ||
        flow.connection_id !== input.connection_id ||
        input.browser === undefined ||
        sha256(input.browser) !== flow.browser_hash
      )
        return failure(
          400,
          "connect_state_invalid",
          "This answer does not match a Connect started in this browser in the last 10 minutes: press Connect again.",
        );
      if (input.error !== undefined)
        return failure(
          400,
          "connect_refused",
          `The vendor did not authorise the connection (${input.error}${input.error_description ? `: ${input.error_description}` : ""}). Nothing changed; press Connect to try again.`,
        );
      if (input.code === undefined || input.code === "")
        return failure(400, "connect_no_code", "The vendor answered without an authorization code.");
      const opened = connections.get(flow.connection_id);
      const oauth = opened?.manifest.oauth;
      const tokenUrl = opened?.endpoint.token_url;
      if (!opened || !oauth || tokenUrl === undefined)
        return failure(409, "not_oauth", `Connection ${flow.connection_id} cannot be connected by OAuth.`);

      const creds = await opened.credentials.get();
      const clientId = creds["client_id"] ?? "";
      const secret = creds["client_secret"];
      const form = new URLSearchParams({
        grant_type: "authorization_code",
        code: input.code,
        redirect_uri: flow.redirect_uri,
      });
      if (flow.verifier !== null) form.set("code_verifier", flow.verifier);
      const headers: Record<string, string> = {
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
      };
      if (oauth.client_auth === "basic" && secret)
        headers["authorization"] = `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`;
      else {
        form.set("client_id", clientId);
        if (secret) form.set("client_secret", secret);
      }
      let answer;
      try {
        answer = await transport(tokenUrl, {
          method: "POST",
          headers,
          body: form.toString(),
          timeout_ms: 30_000,
          max_bytes: 64 * 1024,
        });
      } catch (error) {
        return failure(
          502,
          "connect_unreachable",
          `The token endpoint ${tokenUrl} is unreachable: ${errorMessage(error)}.`,
        );
      }
      const parsed = answer.status === 200 ? TokenAnswerSchema.safeParse(safeJson(answer.text)) : undefined;
      if (!parsed?.success)
        return failure(
          502,
          "connect_exchange_failed",
          `The vendor refused the authorization code (HTTP ${answer.status}${vendorError(answer.text)}). Nothing changed; press Connect to try again.`,
        );
      const tokens = parsed.data;
      const granted: Record<string, string> = { access_token: tokens.access_token };
      if (tokens.refresh_token !== undefined) granted["refresh_token"] = tokens.refresh_token;
      if (tokens.expires_in !== undefined && tokens.expires_in > 0)
        granted["access_token_expires_at"] = new Date(
          deps.now().getTime() + tokens.expires_in * 1000,
        ).toISOString();
      if (oauth.after_grant !== undefined) {
        const more = await oauth.after_grant(tokens.access_token, { token_url: tokenUrl, transport });
        if (!more.ok) return failure(502, "connect_metadata_failed", more.error);
        Object.assign(granted, more.value);
      }
      const sealed = await opened.credentials.replace(granted);
      if (!sealed.ok) return failure(409, "connect_cannot_seal", sealed.error);
      const check = await opened.session().check();
      if (!check.ok)
        return failure(
          502,
          "connect_check_failed",
          `The tokens are saved, but the connection's check failed (${check.error.code}: ${check.error.message}).`,
        );
      await deps.succeeded(opened.connection.id);
      return {
        ok: true,
        value: { connection_id: opened.connection.id, account_label: check.value.account_label },
      };
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function vendorError(text: string): string {
  const body = safeJson(text) as { error?: unknown; error_description?: unknown } | undefined;
  return typeof body?.error === "string"
    ? `: ${body.error}${typeof body.error_description === "string" ? `, ${body.error_description}` : ""}`
    : "";
}
