/**
 * A vendor's "next page" links, followed each once and at most `max` pages in one read: a link seen
 * before, or a chain longer than any real list, is a vendor fault, not a reason to loop forever.
 */
import type { ConnectorResult } from "../connector";

/** More pages than any account has (100,000 pages of 500 contacts: 50 million). */
export const MAX_PAGES = 100_000;

export function nextLinks(vendor: string, max = MAX_PAGES): (href: string) => ConnectorResult<string> {
  const seen = new Set<string>();
  return (href) => {
    if (seen.has(href))
      return {
        ok: false,
        error: {
          code: "bad_response",
          message: `${vendor} gave the same next-page link twice; the read stops instead of looping.`,
        },
      };
    if (seen.size >= max)
      return {
        ok: false,
        error: {
          code: "bad_response",
          message: `${vendor} gave more than ${max} pages in one read; the read stops there.`,
        },
      };
    seen.add(href);
    return { ok: true, value: href };
  };
}
