// Auto-pagination over both cursor styles of the API: `next_cursor` lists (absent on the last
// page) and the event log's `after_seq` / `next_after_seq` / `has_more`.
import { AgentdeskError, type Result } from "./problem.js";

/**
 * Every item of a listing, page after page, fetched lazily as you iterate
 * (`for await (const x of client.sessions.listAll(orgId))`). A page the server refuses throws an
 * {@link AgentdeskError} carrying its problem; a network failure (after the retries) rejects.
 */
export interface PageIterator<T> extends AsyncIterable<T> {
  /**
   * Collects the items into an array, stopping after `max` items (default: all of them; a
   * listing can be long, so give a bound where it may be).
   */
  toArray(max?: number | undefined): Promise<T[]>;
}

function pageIterator<T>(items: () => AsyncGenerator<T, void, undefined>): PageIterator<T> {
  return {
    [Symbol.asyncIterator]: items,
    async toArray(max = Number.POSITIVE_INFINITY) {
      const out: T[] = [];
      if (max <= 0) return out;
      for await (const item of items()) {
        out.push(item);
        if (out.length >= max) break;
      }
      return out;
    },
  };
}

/** A page of a `next_cursor` listing. */
export interface CursorPage<T> {
  /** The page's items. */
  items: T[];
  /** Pass as `cursor` for the next page; absent on the last one. */
  next_cursor?: string | undefined;
}

/** Pages through a `next_cursor` listing: `fetchPage(undefined)` first, then each `next_cursor`. */
export function cursorPages<T>(fetchPage: (cursor: string | undefined) => Promise<Result<CursorPage<T>>>): PageIterator<T> {
  return pageIterator(async function* () {
    let cursor: string | undefined;
    do {
      const page = await fetchPage(cursor);
      if (page.error) throw new AgentdeskError(page.error, page.response);
      yield* page.data.items;
      cursor = page.data.next_cursor;
    } while (cursor !== undefined);
  });
}

/** A page of the event log (`events.list`). */
export interface SeqPage<T> {
  /** Events with `seq > after_seq`, oldest first. */
  items: T[];
  /** The `after_seq` of the next page. */
  next_after_seq: number;
  /** Whether more events were already there beyond this page. */
  has_more: boolean;
}

/**
 * Pages through the event log from `afterSeq` with `next_after_seq` while `has_more`: every
 * event that was in the log when the last page was read, each once, in `seq` order.
 */
export function seqPages<T>(afterSeq: number, fetchPage: (afterSeq: number) => Promise<Result<SeqPage<T>>>): PageIterator<T> {
  return pageIterator(async function* () {
    let after = afterSeq;
    for (;;) {
      const page = await fetchPage(after);
      if (page.error) throw new AgentdeskError(page.error, page.response);
      yield* page.data.items;
      if (!page.data.has_more) return;
      after = page.data.next_after_seq;
    }
  });
}
