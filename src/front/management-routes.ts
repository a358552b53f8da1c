/**
 * The management HTTP API, shaped like RabbitMQ's so its users feel at home:
 * exchanges, queues and bindings under /v1, JSON bodies with RabbitMQ's field names
 * (auto_delete, arguments, destination_type, routing_key), JSON errors per the contract.
 */
import { qualify } from '../protocol/vhost-name.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { checkFraming, refuseFraming, sendError, sendJson, sendRefusal, sendText, watchAbort, type ResponseState } from './http-util.js';
import { queueRows, RateSampler } from './queue-rows.js';
import type { WorkPacer } from './work-pacer.js';
import { streamAnswer } from './stream-answer.js';
import type { Principal } from '../control/auth.js';
import { authorize } from './http-auth.js';
import type { RefusalLog } from './refusal-log.js';
import type { HttpMethod } from './route-methods.js';
import { pageOf, parsePageQuery, selectPage, type Page, type PageQuery } from './list-pages.js';
import { describeIn, localName, prefixOf, VHOST_SEPARATOR, vhostOf } from '../protocol/vhost-name.js';
import type { Vhost } from '../control/vhosts.js';

/** Management bodies are small; anything larger is a mistake or an attack. */
const MAX_MANAGEMENT_BODY = 64 * 1024;

type Json = Record<string, unknown>;

/** Connections and channels as RabbitMQ's management API lists them (the AMQP front's). */
export interface ConnectionListing {
  connections(vhost: Vhost): Array<Record<string, unknown>>;
  channels(vhost: Vhost): Array<Record<string, unknown>>;
}

export function registerManagementRoutes(uwsApp: TemplatedApp, ctx: BrokerContext, listing?: ConnectionListing): void {
  const m = ctx.management;
  const rates = new RateSampler();
  const pacer = ctx.pacer;
  // Every management route needs a principal allowed to manage its vhost (when auth is on). A
  // route over one object answers two paths: `/v1/queues/<name>?vhost=v` and RabbitMQ's
  // `/v1/queues/<v>/<name>`; `param(i)` is the i-th parameter after the vhost.
  type Handler = (res: HttpResponse, req: HttpRequest, principal: Principal, param: (i: number) => string) => void;
  const guarded =
    (handler: Handler, vhostInPath: boolean) =>
    (res: HttpResponse, req: HttpRequest): void => {
      const framing = checkFraming(req, false);
      if (framing !== null) {
        refuseFraming(res, framing, ctx.refusals);
        return;
      }
      const principal = authorize(res, req, ctx, 'manage', vhostInPath ? param(req, 0) : undefined);
      const skip = vhostInPath ? 1 : 0;
      if (principal !== null) handler(res, req, principal, (i) => param(req, i + skip));
    };
  const route =
    (method: HttpMethod, register: (path: string, handler: (res: HttpResponse, req: HttpRequest) => void) => unknown) =>
    (path: string, h: Handler): void => {
      ctx.routes.note(method, path);
      register(path, guarded(h, false));
      if (!path.includes('/:')) return;
      const withVhost = path.replace(/^(\/v1\/[a-z]+\/)/, '$1:vhost/');
      ctx.routes.note(method, withVhost);
      register(withVhost, guarded(h, true));
    };
  const app = {
    get: route('GET', (p, h) => uwsApp.get(p, h)),
    put: route('PUT', (p, h) => uwsApp.put(p, h)),
    post: route('POST', (p, h) => uwsApp.post(p, h)),
    del: route('DELETE', (p, h) => uwsApp.del(p, h)),
  };

  if (listing !== undefined) {
    // RabbitMQ's /api/connections and /api/channels (at most 1,000 each).
    app.get('/v1/connections', (res, _req, principal) => sendJson(res, 200, listing.connections(principal.vhost)));
    app.get('/v1/channels', (res, _req, principal) => sendJson(res, 200, listing.channels(principal.vhost)));
  }

  app.get('/v1/exchanges', (res, req, principal) => {
    const q = pageQueryOf(res, req, ctx.refusals);
    if (q === undefined) return;
    const prefix = principal.vhost.prefix;
    const list = m.topology
      .listExchanges()
      .filter((x) => prefixOf(x.name) === prefix)
      .map(exchangeJson);
    try {
      sendJson(res, 200, q === null ? list : pageOfList(list, (x) => x.name as string, q));
    } catch (err) {
      sendError(res, err, undefined, ctx.refusals);
    }
  });
  app.get('/v1/exchanges/:name', (res, _req, principal, p) => {
    const name = p(0);
    const x = holdsSeparator(name) ? undefined : m.topology.registry.getExchange(principal.vhost.prefix + name);
    if (x === undefined)
      sendRefusal(res, ctx.refusals, 404, {
        error: ErrorCode.notFound,
        message: `no exchange '${name}' in vhost '${principal.vhost.name}'`,
      });
    else sendJson(res, 200, exchangeJson(x));
  });
  app.put('/v1/exchanges/:name', (res, _req, principal, p) => {
    const name = p(0);
    withBody(res, ctx.refusals, async (body) => {
      const type = str(body.type, 'type', 'direct');
      const { created } = await m.declareExchange(principal.vhost, {
        name,
        type,
        durable: bool(body.durable, 'durable', true),
        autoDelete: bool(body.auto_delete, 'auto_delete', false),
        internal: bool(body.internal, 'internal', false),
        arguments: obj(body.arguments, 'arguments'),
        passive: false,
      });
      return [created ? 201 : 200, { name, created }];
    });
  });
  app.del('/v1/exchanges/:name', (res, req, principal, p) => {
    const name = p(0);
    const ifUnused = req.getQuery('if-unused') === 'true';
    // AMQP's delete is idempotent; RabbitMQ's HTTP API answers 404 for what is not there.
    run(res, ctx.refusals, async () => {
      const { deleted } = await m.deleteExchange(principal.vhost, name, ifUnused);
      if (!deleted) throw new BrokerError(ErrorCode.notFound, `no exchange '${name}' in vhost '${principal.vhost.name}'`);
      return [200, { deleted }];
    });
  });

  app.get('/v1/queues', (res, req, principal) => {
    const q = pageQueryOf(res, req, ctx.refusals);
    if (q === undefined) return;
    const prefix = principal.vhost.prefix;
    const names = ctx.topology.sortedQueueNamesIn(prefix);
    if (q === null) {
      // The whole list (as it is now), in slices across event-loop turns: deliveries never wait behind it.
      writeQueueSlices(res, ctx, rates, pacer, names.slice(0, names.length), '[', ']');
      return;
    }
    let selected: ReturnType<typeof selectPage>;
    try {
      // Filters and order see the names the vhost's clients use (the prefix is common to all, so the order is the same).
      selected = selectPage(names, q, prefix.length === 0 ? undefined : (n) => n.slice(prefix.length));
    } catch (err) {
      sendError(res, err, undefined, ctx.refusals);
      return;
    }
    // RabbitMQ's key order; the items in slices like the whole list (a page of 500 is 200 kB of JSON).
    const head = `{"filtered_count":${selected.filtered},"item_count":${selected.names.length},"items":[`;
    const tail = `],"page":${q.page},"page_count":${selected.pageCount},"page_size":${q.pageSize},"total_count":${names.length}}`;
    writeQueueSlices(res, ctx, rates, pacer, selected.names, head, tail);
  });
  app.get('/v1/queues/:name', (res, _req, principal, p) => {
    // A name holding the vhost separator names no queue of this vhost (vhost-name.ts).
    const name = holdsSeparator(p(0)) ? VHOST_SEPARATOR : principal.vhost.prefix + p(0);
    const state = watchAbort(res);
    if (ctx.topology.getQueue(name) === undefined) {
      sendRefusal(res, ctx.refusals, 404, { error: ErrorCode.notFound, message: `no ${describeIn('queue', name)}` }, state);
      return;
    }
    void queueRows(ctx, rates, [name]).then((rows) => {
      if (rows.length === 0)
        sendRefusal(res, ctx.refusals, 404, { error: ErrorCode.notFound, message: `no ${describeIn('queue', name)}` }, state);
      else sendText(res, 200, 'application/json', rows[0], state);
    });
  });
  app.put('/v1/queues/:name', (res, _req, principal, p) => {
    const name = p(0);
    withBody(res, ctx.refusals, async (body) => {
      if (body.exclusive === true)
        throw new BrokerError(ErrorCode.badRequest, 'exclusive queues belong to a connection and cannot be declared over HTTP');
      const ok = await m.declareQueue(
        principal.vhost,
        {
          name,
          passive: false,
          durable: bool(body.durable, 'durable', true),
          // Over HTTP there is no connection to own an exclusive queue (RabbitMQ refuses it too).
          exclusive: false,
          autoDelete: bool(body.auto_delete, 'auto_delete', false),
          arguments: obj(body.arguments, 'arguments'),
        },
        0,
      );
      return [ok.created ? 201 : 200, { name: ok.queue, created: ok.created, messages: ok.messageCount, consumers: ok.consumerCount }];
    });
  });
  app.del('/v1/queues/:name', (res, req, principal, p) => {
    const name = p(0);
    const ifUnused = req.getQuery('if-unused') === 'true';
    const ifEmpty = req.getQuery('if-empty') === 'true';
    run(res, ctx.refusals, async () => {
      const qualifiedName = qualify(principal.vhost.prefix, name);
      if (m.topology.getQueue(qualifiedName) === undefined)
        throw new BrokerError(ErrorCode.notFound, `no ${describeIn('queue', qualifiedName)}`);
      return [200, await m.deleteQueue(principal.vhost, name, ifUnused, ifEmpty)];
    });
  });
  app.del('/v1/queues/:name/contents', (res, _req, principal, p) => {
    const name = p(0);
    run(res, ctx.refusals, async () => [200, await m.purgeQueue(principal.vhost, name)]);
  });

  app.get('/v1/bindings', (res, req, principal) => {
    const q = pageQueryOf(res, req, ctx.refusals);
    if (q === undefined) return;
    const prefix = principal.vhost.prefix;
    const list = m.topology
      .listBindings()
      .filter((b) => prefixOf(b.source) === prefix)
      .map((b) => ({
        source: localName(b.source),
        destination: localName(b.destination),
        vhost: principal.vhost.name,
        destination_type: b.destinationType,
        routing_key: b.routingKey,
        arguments: b.arguments,
      }));
    // Bindings have no name: a page filters and orders them by source exchange, then destination.
    try {
      sendJson(res, 200, q === null ? list : pageOfList(list, (b) => `${b.source}\u0000${b.destination}`, q));
    } catch (err) {
      sendError(res, err, undefined, ctx.refusals);
    }
  });
  const binding = (res: HttpResponse, bind: boolean, principal: Principal): void => {
    withBody(res, ctx.refusals, async (body) => {
      const source = str(body.source, 'source');
      const destination = str(body.destination, 'destination');
      const type = str(body.destination_type, 'destination_type', 'queue');
      const key = str(body.routing_key, 'routing_key', '');
      const args = obj(body.arguments, 'arguments');
      if (type === 'queue') {
        if (bind) await m.bindQueue(source, destination, key, args, principal);
        else await m.unbindQueue(principal.vhost, source, destination, key, args);
      } else if (type === 'exchange') {
        if (bind) await m.bindExchange(destination, source, key, args, principal);
        else await m.unbindExchange(principal.vhost, destination, source, key, args);
      } else {
        throw new BrokerError(ErrorCode.badRequest, `destination_type must be "queue" or "exchange" (got ${JSON.stringify(type)})`);
      }
      return [bind ? 201 : 200, { source, destination, destination_type: type, routing_key: key, arguments: args }];
    });
  };
  app.post('/v1/bindings', (res, _req, principal) => binding(res, true, principal));
  app.del('/v1/bindings', (res, _req, principal) => binding(res, false, principal));

  // Streams (x-queue-type: stream): their figures, and their entries from an offset as NDJSON.
  app.get('/v1/streams/:name', (res, _req, principal, p) => {
    const name = p(0);
    run(res, ctx.refusals, async () => [200, await m.streamInfo(principal.vhost, name)]);
  });
  app.get('/v1/streams/:name/messages', (res, req, principal, p) => {
    const name = p(0);
    const state = watchAbort(res);
    const rawLimit = req.getQuery('limit');
    const rawOffset = req.getQuery('offset');
    const rawTimestamp = req.getQuery('timestamp');
    void (async () => {
      const limit = rawLimit === undefined || rawLimit === '' ? STREAM_READ_DEFAULT_LIMIT : Number(rawLimit);
      if (!Number.isInteger(limit) || limit < 1 || limit > STREAM_READ_MAX_LIMIT) {
        throw new BrokerError(
          ErrorCode.badRequest,
          `limit must be an integer from 1 to ${STREAM_READ_MAX_LIMIT} (got ${JSON.stringify(rawLimit)})`,
        );
      }
      if (rawTimestamp !== undefined && rawOffset !== undefined)
        throw new BrokerError(ErrorCode.badRequest, 'give offset or timestamp, not both');
      let offset: unknown = rawOffset === undefined || rawOffset === '' ? 'first' : rawOffset;
      if (rawTimestamp !== undefined) {
        const ms = /^\d+$/.test(rawTimestamp) ? Number(rawTimestamp) : rawTimestamp;
        offset = { timestamp: ms };
      }
      // One shard answer carries a bounded number of bytes: ask again from where it stopped.
      const first = await m.streamRead(principal.vhost, name, offset, limit);
      const lines = [...first.lines];
      let bytes = lines.reduce((n, l) => n + l.length, 0);
      let next = first.next_offset;
      while (lines.length < limit && lines.length > 0 && bytes < STREAM_READ_MAX_RESPONSE_CHARS) {
        const more = await m.streamRead(principal.vhost, name, next, limit - lines.length);
        if (more.lines.length === 0) break;
        lines.push(...more.lines);
        for (const l of more.lines) bytes += l.length;
        next = more.next_offset;
        if (state.aborted) return null;
      }
      return { lines, next, first: first.first_offset, skipped: first.skipped };
    })().then(
      (out) => {
        if (out === null || state.aborted) return;
        res.cork(() => {
          res.writeStatus('200 OK');
          res.writeHeader('content-type', 'application/x-ndjson');
          res.writeHeader('x-stream-first-offset', String(out.first));
          res.writeHeader('x-stream-next-offset', String(out.next));
          res.writeHeader('x-stream-skipped', String(out.skipped));
          res.end(out.lines.length === 0 ? '' : out.lines.join('\n') + '\n');
        });
      },
      (err: unknown) => {
        const e = err instanceof BrokerError ? err : new BrokerError(ErrorCode.internal, (err as Error).message);
        sendRefusal(res, ctx.refusals, e.status, { error: e.code, message: e.message }, state);
      },
    );
  });
}

/** Entries a stream read answers with when no limit is given, and the most it takes. */
const STREAM_READ_DEFAULT_LIMIT = 100;
const STREAM_READ_MAX_LIMIT = 10_000;
/** A response stops growing past this (JSON characters): the client goes on from x-stream-next-offset. */
const STREAM_READ_MAX_RESPONSE_CHARS = 16 * 1024 * 1024;

function param(req: HttpRequest, i: number): string {
  const raw = req.getParameter(i);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function exchangeJson(x: {
  name: string;
  type: string;
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: Readonly<Json>;
}): Json {
  return {
    name: localName(x.name),
    vhost: vhostOf(x.name),
    type: x.type,
    durable: x.durable,
    auto_delete: x.autoDelete,
    internal: x.internal,
    arguments: x.arguments,
  };
}

/** Queues per slice of a list answer: each slice is one round of shard lookups and one write. */
const SLICE = 100;

/** The pagination of a list request, null for none; undefined when it was refused (400 sent). */
function pageQueryOf(res: HttpResponse, req: HttpRequest, refusals: RefusalLog): PageQuery | null | undefined {
  try {
    return parsePageQuery((key) => req.getQuery(key));
  } catch (err) {
    sendError(res, err, undefined, refusals);
    return undefined;
  }
}

/** A page of an in-memory list (exchanges, bindings), ordered by `key`. */
function pageOfList<T>(list: T[], key: (item: T) => string, q: PageQuery): Page<T> {
  const keyed = new Map<string, T[]>();
  for (const item of list) {
    const k = key(item);
    const same = keyed.get(k);
    if (same === undefined) keyed.set(k, [item]);
    else same.push(item);
  }
  const keys = [...keyed.keys()].sort();
  const selected = selectPage(keys, q);
  const items = selected.names.flatMap((k) => keyed.get(k) as T[]);
  return pageOf(items, q, selected.filtered, selected.pageCount, list.length);
}

/**
 * `head`, the queues in `names` as comma-separated JSON objects, then `tail`, SLICE queues at a
 * time: each slice asks only the shards that own its queues for just those queues. Written by
 * streamAnswer as it is made, so no turn of the main thread (or of a shard) does more than about one
 * slice's work, deliveries interleave, and the pacer (--management-share) keeps the walk to its share
 * of the time (the shards' lookups count: time a shard was not delivering). A queue deleted meanwhile
 * is left out (an item_count read before may then be one too high).
 */
async function* queueSliceParts(
  ctx: BrokerContext,
  rates: RateSampler,
  names: readonly string[],
  head: string,
  tail: string,
): AsyncGenerator<string> {
  yield head;
  let wrote = false;
  for (let i = 0; i < names.length; i += SLICE) {
    const rows = await queueRows(ctx, rates, names.slice(i, i + SLICE));
    if (rows.length === 0) continue;
    yield (wrote ? ',' : '') + rows.join(',');
    wrote = true;
  }
  yield tail;
}

function writeQueueSlices(
  res: HttpResponse,
  ctx: BrokerContext,
  rates: RateSampler,
  pacer: WorkPacer,
  names: readonly string[],
  head: string,
  tail: string,
): void {
  void streamAnswer(res, watchAbort(res), 'application/json', queueSliceParts(ctx, rates, names, head, tail), pacer).catch((err: unknown) =>
    ctx.log.error({ err }, 'a queue listing failed'),
  );
}

/** Runs an async handler and answers with its [status, body] or its BrokerError. */
export function run(
  res: HttpResponse,
  refusals: RefusalLog,
  work: () => Promise<[number, unknown]>,
  state: ResponseState = watchAbort(res),
): void {
  work().then(
    ([status, body]) => sendJson(res, status, body, state),
    (err: unknown) => {
      const e = err instanceof BrokerError ? err : new BrokerError(ErrorCode.internal, (err as Error).message);
      sendRefusal(res, refusals, e.status, { error: e.code, message: e.message }, state);
    },
  );
}

/** Reads a bounded JSON object body, then runs the handler with it. */
export function withBody(res: HttpResponse, refusals: RefusalLog, work: (body: Json) => Promise<[number, unknown]>): void {
  const state = watchAbort(res);
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed) return;
    size += chunk.byteLength;
    if (size > MAX_MANAGEMENT_BODY) {
      failed = true;
      sendRefusal(
        res,
        refusals,
        413,
        { error: ErrorCode.tooLarge, message: `management bodies are limited to ${MAX_MANAGEMENT_BODY} bytes` },
        state,
      );
      return;
    }
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!isLast) return;
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = {};
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text);
      } catch (err) {
        sendRefusal(
          res,
          refusals,
          400,
          { error: ErrorCode.badRequest, message: `body is not valid JSON: ${(err as Error).message}` },
          state,
        );
        return;
      }
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      sendRefusal(res, refusals, 400, { error: ErrorCode.badRequest, message: 'body must be a JSON object' }, state);
      return;
    }
    run(res, refusals, () => work(body as Json), state);
  });
}

function str(v: unknown, name: string, fallback?: string): string {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'string') throw new BrokerError(ErrorCode.badRequest, `${name} must be a string`);
  return v;
}

function bool(v: unknown, name: string, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new BrokerError(ErrorCode.badRequest, `${name} must be a boolean`);
  return v;
}

function obj(v: unknown, name: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BrokerError(ErrorCode.badRequest, `${name} must be an object`);
  return v as Record<string, unknown>;
}

function holdsSeparator(name: string): boolean {
  return name.indexOf(VHOST_SEPARATOR) >= 0;
}
