/**
 * Which methods each registered path answers, so a request for a known path with another method
 * gets 405 and an `Allow` header (RFC 9110 §15.5.6) instead of the 404 of an unknown path.
 * uWebSockets.js routes by method first and has no such notion; every route module notes its
 * routes here as it registers them.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Route {
  readonly method: HttpMethod;
  readonly segments: readonly string[];
}

export class RouteMethods {
  readonly #routes: Route[] = [];

  /** `pattern` in uWS's syntax: `:name` is one segment, a trailing `*` whatever follows its slash. */
  note(method: HttpMethod, pattern: string): void {
    this.#routes.push({ method, segments: pattern.split('/') });
  }

  /** The methods some route answers for `url` (its path, no query), in registration order, each once. */
  allowed(url: string): HttpMethod[] {
    const parts = url.split('/');
    const out: HttpMethod[] = [];
    for (const route of this.#routes) if (!out.includes(route.method) && matches(route.segments, parts)) out.push(route.method);
    return out;
  }
}

function matches(pattern: readonly string[], parts: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '*' && i === pattern.length - 1) return parts.length > i;
    if (i >= parts.length) return false;
    if (p.startsWith(':')) {
      if (parts[i] === '') return false;
    } else if (p !== parts[i]) return false;
  }
  return parts.length === pattern.length;
}
