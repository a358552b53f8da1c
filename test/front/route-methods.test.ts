import { describe, expect, it } from 'vitest';
import { RouteMethods } from '../../src/front/route-methods.js';

describe('RouteMethods', () => {
  const routes = new RouteMethods();
  routes.note('GET', '/v1/queues');
  routes.note('GET', '/v1/queues/:name');
  routes.note('PUT', '/v1/queues/:name');
  routes.note('DELETE', '/v1/queues/:name');
  routes.note('DELETE', '/v1/queues/:name/contents');
  routes.note('POST', '/v1/publish/*');
  routes.note('GET', '/v1/queues/:name'); // noted twice: listed once

  it('lists the methods of every route that matches, each once, in registration order', () => {
    expect(routes.allowed('/v1/queues')).toEqual(['GET']);
    expect(routes.allowed('/v1/queues/jobs')).toEqual(['GET', 'PUT', 'DELETE']);
    expect(routes.allowed('/v1/queues/jobs/contents')).toEqual(['DELETE']);
  });

  it('a parameter takes exactly one non-empty segment; a trailing * takes any rest', () => {
    expect(routes.allowed('/v1/queues/')).toEqual([]);
    expect(routes.allowed('/v1/queues/a/b')).toEqual([]);
    expect(routes.allowed('/v1/publish/topic/a.b')).toEqual(['POST']);
    expect(routes.allowed('/v1/publish/queue/x/y/z')).toEqual(['POST']);
    expect(routes.allowed('/v1/publish')).toEqual([]);
  });

  it('an unknown path has no methods', () => {
    expect(routes.allowed('/v2/queues')).toEqual([]);
    expect(routes.allowed('/')).toEqual([]);
  });
});
