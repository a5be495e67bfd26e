/**
 * A connection's memory of a system's slow-changing configuration tables (a tenant's solicit codes),
 * shared by the sessions of one opened connection: a webhook's re-read, a session of its own, then
 * does not ask for the table again. An answer is kept for its time to live; a failure is never kept.
 */
import type { ConnectorResult, Remember } from "../connector";

export function createRemember(now: () => Date): Remember {
  const kept = new Map<string, { at: number; value: Promise<ConnectorResult<unknown>> }>();
  return <T>(key: string, ttl_ms: number, load: () => Promise<ConnectorResult<T>>) => {
    const held = kept.get(key);
    if (held !== undefined && now().getTime() - held.at < ttl_ms)
      return held.value as Promise<ConnectorResult<T>>;
    // Callers at the same moment share one load; a failed one is forgotten, so the next asks again.
    const value = load().then((answer) => {
      if (!answer.ok && kept.get(key)?.value === value) kept.delete(key);
      return answer;
    });
    kept.set(key, { at: now().getTime(), value });
    return value;
  };
}
