import { describe, expect, it } from 'vitest';
import { urlList } from '../../src/cli/pub.js';

describe('cli - pub and sub --url', () => {
  it('url list - one URL, or the nodes of a cluster comma-separated (spaces and empty parts ignored), in order', () => {
    expect(urlList('http://127.0.0.1:7070')).toEqual(['http://127.0.0.1:7070']);
    expect(urlList('http://a:7070, http://b:7071,,http://c:7072 ')).toEqual(['http://a:7070', 'http://b:7071', 'http://c:7072']);
    expect(urlList(' , ')).toEqual([]);
  });
});
