/**
 * Maps a scope a connector observed (all email, the whole account, one of the system's constructs)
 * to a ledger scope through the config's topics, which say per connection what each topic is there.
 */
import type { ConcordConfig, TopicConstruct } from "../config/concord-config";
import { GLOBAL_SCOPE, topicScope, type Scope } from "../core/consent/consent-event";
import type { ConstructRef, ObservedScope } from "../connectors/connector";
import { sha256Hex } from "./content-hash";

/** The config's topics as seen from one connection. */
export type ScopeMapping = {
  /** The connection the observation came from. */
  connection_id: string;
  topics: ConcordConfig["topics"];
};

export type ResolvedScope = {
  scope: Scope;
  /** Set when a construct had no configured topic and its slug was used as the topic key. */
  unmapped_construct?: string;
};

const same = (a: string, b: string): boolean => a.trim().toLowerCase() === b.trim().toLowerCase();

/** Whether a configured construct is the observed one: by id, else by name when the config names it. */
export function constructMatches(configured: TopicConstruct, observed: ConstructRef): boolean {
  if (configured.type !== observed.type) return false;
  if (configured.id !== undefined) return same(configured.id, observed.id);
  if (configured.name === undefined) return false;
  return same(configured.name, observed.name ?? observed.id);
}

/** The topic whose construct on `connection` is the whole account, if one is. */
export function accountTopic(topics: ConcordConfig["topics"], connection: string): string | undefined {
  return topics.find((t) => t.constructs[connection]?.type === "account")?.key;
}

/**
 * `account` → the topic the account stands for, else global (seed 000: an unmapped Constant Contact
 * account's unsubscribes are "Requests No Email"); `construct` → the topic it stands for, else a
 * topic keyed by its name's slug, so the opt-out is kept and narrows only that construct.
 */
export function resolveObservedScope(observed: ObservedScope, mapping: ScopeMapping): ResolvedScope {
  switch (observed.kind) {
    case "global":
      return { scope: GLOBAL_SCOPE };
    case "account": {
      const topic = accountTopic(mapping.topics, mapping.connection_id);
      return { scope: topic !== undefined ? topicScope(topic) : GLOBAL_SCOPE };
    }
    case "construct": {
      const { construct } = observed;
      const byTopic = mapping.topics.find((t) => {
        const configured = t.constructs[mapping.connection_id];
        return configured !== undefined && constructMatches(configured, construct);
      });
      if (byTopic) return { scope: topicScope(byTopic.key) };
      const name = construct.name ?? construct.id;
      return { scope: topicScope(constructSlug(name)), unmapped_construct: name };
    }
  }
}

/** A topic key from a construct's name: lowercase words joined by `-`; a name with no letters or digits gets a digest. */
export function constructSlug(name: string): string {
  const slug = name
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/, "");
  return slug === "" ? `category-${sha256Hex(name).slice(0, 16)}` : slug;
}
