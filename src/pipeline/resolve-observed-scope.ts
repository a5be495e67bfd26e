/** Maps a connector's observed consent scope (global, a whole account, a CRM category) to a ledger scope through the pair's config. */
import type { ConcordConfig, Pair } from "../config/concord-config";
import { GLOBAL_SCOPE, topicScope, type Scope } from "../core/consent/consent-event";
import type { ObservedScope } from "../connectors/connector";
import { sha256Hex } from "./content-hash";

/** The pair's topic mapping as seen from one connection of the pair. */
export type ScopeMapping = {
  /** The connection the observation came from. */
  connection_id: string;
  pair: Pair;
  topics: ConcordConfig["topics"];
};

export type ResolvedScope = {
  scope: Scope;
  /** Set when a CRM category had no configured topic and its slug was used as the topic key. */
  unmapped_category?: string;
};

const same = (a: string, b: string): boolean => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * `account` → the pair platform's topic, else global (seed 000: an unmapped Constant Contact account's
 * unsubscribes are "Requests No Email"); `category` → the topic whose CRM category it is, else a topic
 * keyed by the category's slug, so the opt-out is kept and narrows only that category.
 */
export function resolveObservedScope(observed: ObservedScope, mapping: ScopeMapping): ResolvedScope {
  switch (observed.kind) {
    case "global":
      return { scope: GLOBAL_SCOPE };
    case "account": {
      const platform = mapping.pair.platforms.find((p) => p.connection === mapping.connection_id);
      return { scope: platform?.topic !== undefined ? topicScope(platform.topic) : GLOBAL_SCOPE };
    }
    case "category": {
      const { category } = observed;
      const byTopic = mapping.topics.find((t) => {
        const name = t.crm_categories[mapping.pair.crm];
        return name !== undefined && same(name, category);
      });
      if (byTopic) return { scope: topicScope(byTopic.key) };
      const byPlatform = mapping.pair.platforms.find(
        (p) => p.topic !== undefined && p.crm_category !== undefined && same(p.crm_category, category),
      );
      if (byPlatform?.topic !== undefined) return { scope: topicScope(byPlatform.topic) };
      return { scope: topicScope(categorySlug(category)), unmapped_category: category };
    }
  }
}

/** A topic key from a category name: lowercase words joined by `-`; a name with no letters or digits gets a digest. */
export function categorySlug(category: string): string {
  const slug = category
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/, "");
  return slug === "" ? `category-${sha256Hex(category).slice(0, 16)}` : slug;
}
