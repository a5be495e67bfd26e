/**
 * Links written into platform fields: the same link all window long, and working `link_ttl` after
 * any send in the window (CASL: an unsubscribe keeps working 60 days after a message).
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FIELD_LINK_WINDOW_MS, fieldLinks, readToken, type LinkSigner } from "./personal-links";

const DAY = 86_400_000;
const signer: LinkSigner = {
  key: randomBytes(32),
  public_url: "https://concord.example.org",
  ttl_ms: 60 * DAY,
};
const tokenOf = (url: string): string => url.slice(url.lastIndexOf("/") + 1);

describe("links in platform fields", () => {
  const windowStart =
    Math.floor(Date.parse("2026-12-06T00:00:00Z") / FIELD_LINK_WINDOW_MS) * FIELD_LINK_WINDOW_MS;
  const firstDay = new Date(windowStart + 1_000);
  const lastDay = new Date(windowStart + FIELD_LINK_WINDOW_MS - 1_000);

  it("are the same all window long", () => {
    expect(fieldLinks(signer, "c1", 0, firstDay)).toEqual(fieldLinks(signer, "c1", 0, lastDay));
  });

  it("sent on the window's last day, still work link_ttl later", () => {
    const token = tokenOf(fieldLinks(signer, "c1", 0, lastDay).one_click_url);
    expect(readToken(signer, token, new Date(lastDay.getTime() + 59 * DAY)).ok).toBe(true);
    expect(readToken(signer, token, new Date(lastDay.getTime() + 60 * DAY + 60_000))).toEqual({
      ok: false,
      error: "expired",
    });
  });
});
