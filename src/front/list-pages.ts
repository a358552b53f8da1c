/**
 * Pagination of the management lists, in the shape of RabbitMQ's HTTP API: `page` (from 1),
 * `page_size` (default 100, at most 500), `name` (a substring of the name, or with `use_regex=true`
 * a regular expression), `sort` (only `name`: the lists are kept in name order, and sorting by a
 * figure would need every queue's figures for every page), `sort_reverse`. A paged answer is
 * `{filtered_count, item_count, items, page, page_count, page_size, total_count}`.
 * Without `page` a list is answered whole, as RabbitMQ does.
 */
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import type { SortedList } from '../control/sorted-names.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 500;

export interface PageQuery {
  readonly page: number;
  readonly pageSize: number;
  /** Keeps the names it accepts; null: all. */
  readonly filter: ((name: string) => boolean) | null;
  readonly reverse: boolean;
}

export interface Page<T> {
  readonly filtered_count: number;
  readonly item_count: number;
  readonly items: T[];
  readonly page: number;
  readonly page_count: number;
  readonly page_size: number;
  readonly total_count: number;
}

/** The pagination a request asks for (null: none, answer the whole list); 400 for a bad value. */
export function parsePageQuery(query: (key: string) => string | undefined): PageQuery | null {
  const pageText = query('page');
  const name = query('name');
  const useRegex = query('use_regex') === 'true';
  const sort = query('sort');
  if (sort !== undefined && sort !== '' && sort !== 'name') {
    throw new BrokerError(ErrorCode.badRequest, `sort must be 'name' (got '${sort}'): lists are kept in name order`);
  }
  const reverse = query('sort_reverse') === 'true';
  if (pageText === undefined || pageText === '') {
    if (name !== undefined || query('page_size') !== undefined || reverse)
      throw new BrokerError(ErrorCode.badRequest, 'name, page_size and sort_reverse need page (page=1 for the first)');
    return null;
  }
  const page = positiveInt(pageText, 'page', Number.MAX_SAFE_INTEGER);
  const sizeText = query('page_size');
  const pageSize = sizeText === undefined ? DEFAULT_PAGE_SIZE : positiveInt(sizeText, 'page_size', MAX_PAGE_SIZE);
  let filter: ((name: string) => boolean) | null = null;
  if (name !== undefined && name !== '') {
    if (useRegex) {
      let re: RegExp;
      try {
        re = new RegExp(name);
      } catch (err) {
        throw new BrokerError(ErrorCode.badRequest, `name is not a valid regular expression: ${(err as Error).message}`);
      }
      filter = (n) => re.test(n);
    } else {
      filter = (n) => n.includes(name);
    }
  }
  return { page, pageSize, filter, reverse };
}

/**
 * The page of `names` (sorted ascending) that `q` asks for: a filter walks the names once (on
 * `local(name)` when given: a vhost's clients filter by the names they use), a plain page is
 * sliced straight out. The names answered are as stored. 400 when the page is past the last one.
 */
export function selectPage(
  names: SortedList,
  q: PageQuery,
  local?: (name: string) => string,
): { names: string[]; filtered: number; pageCount: number } {
  let list: SortedList = names;
  if (q.filter !== null) {
    const keep = q.filter;
    const kept: string[] = [];
    for (const n of names) if (keep(local === undefined ? n : local(n))) kept.push(n);
    list = kept;
  }
  const filtered = list.length;
  const pageCount = Math.max(1, Math.ceil(filtered / q.pageSize));
  if (q.page > pageCount && filtered > 0) {
    throw new BrokerError(ErrorCode.badRequest, `page ${q.page} is out of range: there are ${pageCount} page(s) of ${q.pageSize}`);
  }
  const from = (q.page - 1) * q.pageSize;
  const out = q.reverse
    ? list.slice(Math.max(0, filtered - from - q.pageSize), filtered - from).reverse()
    : list.slice(from, from + q.pageSize);
  return { names: out, filtered, pageCount };
}

/** A page answer for items already selected by selectPage. */
export function pageOf<T>(items: T[], q: PageQuery, filtered: number, pageCount: number, total: number): Page<T> {
  return {
    filtered_count: filtered,
    item_count: items.length,
    items,
    page: q.page,
    page_count: pageCount,
    page_size: q.pageSize,
    total_count: total,
  };
}

function positiveInt(text: string, field: string, max: number): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new BrokerError(ErrorCode.badRequest, `${field} must be an integer from 1 to ${max} (got '${text}')`);
  }
  return n;
}
