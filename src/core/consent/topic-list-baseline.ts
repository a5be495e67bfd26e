/**
 * How a pair's baseline keeps a platform record's membership of a list (a group, a tag) that stands
 * for a topic (ADR 35): `member`, or `left` with the time it was first seen out. The planner writes
 * and reads these keys; explain reads them to say since when someone is out of the topic's list.
 */
import type { TopicKey } from "./consent-event";

/** The baseline key of a record's membership of a list standing for a topic: `member` or `left`. */
export const topicListKey = (topic: TopicKey, list: string): string => `topic:${topic}:list:${list}`;
/** The baseline key of when the record was first seen out of a topic's list it had been in. */
export const leftAtKey = (topic: TopicKey, list: string): string => `${topicListKey(topic, list)}:left_at`;

const LEFT_AT_SUFFIX = leftAtKey("", "").slice(topicListKey("", "").length);

/**
 * When a record's agreed baseline first saw it out of a list standing for `topic`: the time, `null`
 * when it left but the time was not kept, `undefined` when it is out of none.
 */
export function leftTopicListSince(
  agreed: Readonly<Record<string, unknown>>,
  topic: TopicKey,
): string | null | undefined {
  const prefix = topicListKey(topic, "");
  for (const [key, value] of Object.entries(agreed)) {
    if (!key.startsWith(prefix) || key.endsWith(LEFT_AT_SUFFIX) || value !== "left") continue;
    const since = agreed[leftAtKey(topic, key.slice(prefix.length))];
    return typeof since === "string" ? since : null;
  }
  return undefined;
}
