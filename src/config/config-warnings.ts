/**
 * What a valid config may still get wrong: addresses that would carry credentials, personal links
 * or alerts in the clear. Warnings, not errors: an emulator or a test server on this machine speaks
 * plain http on purpose.
 */
import type { ConcordConfig } from "./concord-config";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** Plain http to a host other than this machine. */
function cleartext(url: string): boolean {
  try {
    const u = new URL(url);
    return (
      u.protocol === "http:" && !LOOPBACK.has(u.hostname.toLowerCase()) && !u.hostname.startsWith("127.")
    );
  } catch {
    return false;
  }
}

export function configWarnings(config: ConcordConfig): string[] {
  const warnings: string[] = [];
  config.connections.forEach((c, i) => {
    for (const key of ["base_url", "token_url"] as const) {
      const url = c[key];
      if (url !== undefined && cleartext(url))
        warnings.push(
          `connections[${i}].${key}: ${url} is plain http to another machine, so ${c.id}'s credentials and data would travel unencrypted; use https (plain http is for an emulator on this machine).`,
        );
    }
  });
  const publicUrl = config.server.public_url;
  if (publicUrl !== undefined && cleartext(publicUrl))
    warnings.push(
      `server.public_url: ${publicUrl} is plain http, so people's unsubscribe and preference links, sign-ins and webhooks would travel unencrypted; serve Concord behind https.`,
    );
  if (config.server.trust_proxy === true)
    warnings.push(
      "server.trust_proxy: true believes any X-Forwarded-For, which a client can write itself (its sign-in and sign-up limits, and the address kept as consent evidence); give the number of proxies in front (1) or their addresses instead, unless nothing but the proxy can reach the server.",
    );
  config.notifications.webhook_urls.forEach((u, i) => {
    if (u.kind === "plain" && cleartext(u.value))
      warnings.push(
        `notifications.webhook_urls[${i}]: plain http to another machine; alerts would travel unencrypted, use https.`,
      );
  });
  return warnings;
}
