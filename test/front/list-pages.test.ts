import { describe, expect, it } from 'vitest';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, pageOf, parsePageQuery, selectPage } from '../../src/front/list-pages.js';

const query = (params: Record<string, string>) => (key: string) => params[key];
const names = Array.from({ length: 250 }, (_, i) => `q-${String(i).padStart(3, '0')}`);

describe('list pages (RabbitMQ HTTP API pagination)', () => {
  it('parse - no page means the whole list; page alone takes the default size', () => {
    expect(parsePageQuery(query({}))).toBeNull();
    const q = parsePageQuery(query({ page: '2' }));
    expect(q).toMatchObject({ page: 2, pageSize: DEFAULT_PAGE_SIZE, filter: null, reverse: false });
  });

  it('parse - bad values are 400 bad_request with the field named', () => {
    for (const [params, field] of [
      [{ page: '0' }, 'page'],
      [{ page: '1.5' }, 'page'],
      [{ page: '1', page_size: String(MAX_PAGE_SIZE + 1) }, 'page_size'],
      [{ page: '1', sort: 'messages' }, 'sort'],
      [{ page: '1', name: '(', use_regex: 'true' }, 'regular expression'],
      [{ name: 'x' }, 'need page'],
    ] as const) {
      expect(() => parsePageQuery(query(params))).toThrow(
        expect.objectContaining({ code: 'bad_request', message: expect.stringContaining(field) }),
      );
    }
    expect(parsePageQuery(query({ page: '1', sort: 'name' }))).not.toBeNull();
  });

  it('select - pages slice the sorted names; the last page is short; past it is 400', () => {
    const q = parsePageQuery(query({ page: '3', page_size: '100' }))!;
    const p = selectPage(names, q);
    expect(p).toMatchObject({ filtered: 250, pageCount: 3 });
    expect(p.names).toEqual(names.slice(200));
    const answer = pageOf(p.names, q, p.filtered, p.pageCount, names.length);
    expect(answer).toEqual({
      filtered_count: 250,
      item_count: 50,
      items: names.slice(200),
      page: 3,
      page_count: 3,
      page_size: 100,
      total_count: 250,
    });
    expect(() => selectPage(names, parsePageQuery(query({ page: '4', page_size: '100' }))!)).toThrow(/out of range/);
  });

  it('select - name filters by substring, or by regex with use_regex; sort_reverse walks from the end', () => {
    const sub = selectPage(names, parsePageQuery(query({ page: '1', name: '-01' }))!);
    expect(sub.names).toEqual(names.filter((n) => n.includes('-01')));
    expect(sub.filtered).toBe(10);
    const re = selectPage(names, parsePageQuery(query({ page: '1', name: '^q-2[0-4]5$', use_regex: 'true' }))!);
    expect(re.names).toEqual(['q-205', 'q-215', 'q-225', 'q-235', 'q-245']);
    const rev = selectPage(names, parsePageQuery(query({ page: '2', page_size: '5', sort_reverse: 'true' }))!);
    expect(rev.names).toEqual(['q-244', 'q-243', 'q-242', 'q-241', 'q-240']);
    // An empty result is one empty page, not an error.
    const none = selectPage(names, parsePageQuery(query({ page: '1', name: 'nothing' }))!);
    expect(none).toEqual({ names: [], filtered: 0, pageCount: 1 });
  });
});
