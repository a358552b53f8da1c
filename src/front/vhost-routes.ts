/**
 * Virtual hosts over HTTP, RabbitMQ's shape: `GET /v1/vhosts` (each with what it holds),
 * `GET/PUT/DELETE /v1/vhosts/<name>`; and what deleting one does (its connections closed with the
 * reason, its queues and exchanges deleted on the shards), also run at start for the remains of a
 * deletion a crash interrupted. Creating, changing and deleting a vhost takes `manage` in `/`
 * (the administrator); listing shows the vhosts where the user may monitor.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { BrokerError, ErrorCode } from '../protocol/errors.js';
import { tokenFrom, UNAUTHORIZED_MESSAGE } from '../control/auth.js';
import { parseLimits, type Vhost } from '../control/vhosts.js';
import { DEFAULT_VHOST, prefixOf, type VhostScope } from '../protocol/vhost-name.js';
import { authorize } from './http-auth.js';
import { checkFraming, refuseFraming, sendRefusal } from './http-util.js';
import { run, withBody } from './management-routes.js';
import { vhostUsage, type VhostUsage } from './vhost-usage.js';

/** Closes every connection in a vhost with `reason`; returns how many. */
export type CloseConnections = (vhost: Vhost, reason: string) => number;

export function registerVhostRoutes(app: TemplatedApp, ctx: BrokerContext, closeConnections: CloseConnections): void {
  const note = (method: 'GET' | 'PUT' | 'DELETE', path: string): void => ctx.routes.note(method, path);
  note('GET', '/v1/vhosts');
  app.get('/v1/vhosts', (res, req) => {
    if (refusedFraming(res, req, ctx)) return;
    const user = ctx.auth.authenticate(tokenFrom(req.getHeader('authorization'), req.getQuery('token')));
    if (user === null) {
      sendRefusal(res, ctx.refusals, 401, { error: ErrorCode.unauthorized, message: UNAUTHORIZED_MESSAGE });
      return;
    }
    const visible = ctx.vhosts.list().filter((v) => user.principalIn(v)?.canMonitor === true);
    run(res, ctx.refusals, async () => {
      const usage = await vhostUsage(
        ctx,
        visible.map((v) => v.prefix),
      );
      return [200, visible.map((v) => vhostJson(v, usage.get(v.prefix)))];
    });
  });
  note('GET', '/v1/vhosts/:name');
  app.get('/v1/vhosts/:name', (res, req) => {
    if (refusedFraming(res, req, ctx)) return;
    const principal = authorize(res, req, ctx, 'monitor', param(req));
    if (principal === null) return;
    const vhost = principal.vhost;
    run(res, ctx.refusals, async () => {
      const usage = await vhostUsage(ctx, [vhost.prefix]);
      return [200, vhostJson(vhost, usage.get(vhost.prefix))];
    });
  });
  note('PUT', '/v1/vhosts/:name');
  app.put('/v1/vhosts/:name', (res, req) => {
    if (refusedFraming(res, req, ctx)) return;
    const name = param(req);
    if (authorize(res, req, ctx, 'manage', DEFAULT_VHOST) === null) return;
    withBody(res, ctx.refusals, async (body) => {
      if (body.description !== undefined && typeof body.description !== 'string')
        throw new BrokerError(ErrorCode.badRequest, 'description must be a string');
      const existing = ctx.vhosts.get(name);
      const limits = body.limits === undefined ? undefined : parseLimits(body.limits, existing?.limits);
      const { vhost, created } = ctx.vhosts.put(name, body.description as string | undefined, limits);
      ctx.topology.registry.ensureVhost(vhost.prefix);
      ctx.log.info({ vhost: name, limits: vhost.limitsJson(), created }, created ? 'vhost created' : 'vhost changed');
      return [created ? 201 : 200, vhostJson(vhost, undefined)];
    });
  });
  note('DELETE', '/v1/vhosts/:name');
  app.del('/v1/vhosts/:name', (res, req) => {
    if (refusedFraming(res, req, ctx)) return;
    const name = param(req);
    if (authorize(res, req, ctx, 'manage', DEFAULT_VHOST) === null) return;
    run(res, ctx.refusals, async () => {
      const vhost = ctx.vhosts.remove(name);
      const connections = closeConnections(vhost, `vhost '${name}' was deleted`);
      const removed = await deleteVhostContents(ctx, vhost);
      ctx.log.info({ vhost: name, connections, ...removed }, 'vhost deleted');
      return [
        200,
        { deleted: name, connections_closed: connections, queues_deleted: removed.queues, exchanges_deleted: removed.exchanges },
      ];
    });
  });
}

/**
 * Deletes every queue and exchange of `vhost` (whose record is already gone): on the shards, so
 * durable ones are gone from the logs too, then from the main thread's topology.
 */
export async function deleteVhostContents(ctx: BrokerContext, vhost: VhostScope): Promise<{ queues: number; exchanges: number }> {
  let queues = 0;
  for (const name of ctx.topology.queueNamesIn(vhost.prefix)) {
    try {
      await ctx.management.deleteQueueNamed(name, false, false);
      queues++;
    } catch (err) {
      // Gone meanwhile (an exclusive queue whose connection just closed), or its shard is down.
      ctx.log.warn({ err, queue: name, vhost: vhost.name }, 'a queue of a deleted vhost could not be deleted');
    }
  }
  let exchanges = 0;
  for (const x of ctx.topology.listExchanges()) {
    if (x.builtIn || prefixOf(x.name) !== vhost.prefix) continue;
    try {
      await ctx.management.deleteExchange(vhost, x.name.slice(vhost.prefix.length), false);
      exchanges++;
    } catch (err) {
      ctx.log.warn({ err, exchange: x.name, vhost: vhost.name }, 'an exchange of a deleted vhost could not be deleted');
    }
  }
  ctx.topology.registry.removeVhost(vhost.prefix);
  return { queues, exchanges };
}

/** RabbitMQ's vhost object, with what it holds when `usage` is known. */
function vhostJson(v: Vhost, usage: VhostUsage | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { name: v.name, description: v.description, tracing: false, limits: v.limitsJson() };
  out.connections = v.connections;
  out.queues = usage?.queues ?? 0;
  if (usage !== undefined) {
    out.messages = usage.ready + usage.unacked;
    out.messages_ready = usage.ready;
    out.messages_unacknowledged = usage.unacked;
    out.message_bytes_ready = usage.readyBytes;
  }
  if (v.limits.maxQueuedBytes !== null) out.over_max_queued_bytes = v.overBudget;
  return out;
}

function param(req: HttpRequest): string {
  const raw = req.getParameter(0) ?? '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function refusedFraming(res: HttpResponse, req: HttpRequest, ctx: BrokerContext): boolean {
  const framing = checkFraming(req, false);
  if (framing === null) return false;
  refuseFraming(res, framing, ctx.refusals);
  return true;
}
