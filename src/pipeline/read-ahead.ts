/**
 * One page ahead: the next page of a read is fetched while the caller records the current one, so a
 * rate-limited read costs the larger of fetching and recording, not their sum. At most one page
 * waits in memory beside the one being recorded.
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  const it = source[Symbol.asyncIterator]();
  let pending = it.next();
  let finished = false;
  try {
    for (;;) {
      const result = await pending;
      if (result.done === true) {
        finished = true;
        return;
      }
      pending = it.next();
      // Awaited at the next turn; a caller that stops before then must not leave it unhandled.
      pending.catch(() => undefined);
      yield result.value;
    }
  } catch (error) {
    finished = true;
    throw error;
  } finally {
    // The caller stopped early (a failed page, a store error): let the read clean up. An async
    // generator answers `return` after the page it is fetching, which is dropped, failed or not.
    if (!finished && it.return) await it.return().catch(() => undefined);
  }
}
