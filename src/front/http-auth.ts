/**
 * Who is asking, for every HTTP route: the user of a request's token, in the vhost the request
 * names (`?vhost=`, or the path's own for the RabbitMQ form; `/` when none), checked for a right.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { ErrorCode } from '../protocol/errors.js';
import { tokenFrom, UNAUTHORIZED_MESSAGE, vhostRefused, type Principal } from '../control/auth.js';
import { DEFAULT_VHOST } from '../protocol/vhost-name.js';
import { sendRefusal } from './http-util.js';

/** What a request must be allowed, beyond a valid token. */
export type Right = 'any' | 'manage' | 'monitor';

/**
 * Answers 401/403/404 and returns null unless the request's token is valid, its vhost exists, and
 * the user has rules there including `right`; otherwise returns the user's principal in that vhost.
 * Reads headers synchronously, as uWS requires. `vhostName` is the path's vhost, when it has one.
 */
export function authorize(res: HttpResponse, req: HttpRequest, ctx: BrokerContext, right: Right, vhostName?: string): Principal | null {
  const user = ctx.auth.authenticate(tokenFrom(req.getHeader('authorization'), req.getQuery('token')));
  if (user === null) {
    sendRefusal(res, ctx.refusals, 401, { error: ErrorCode.unauthorized, message: UNAUTHORIZED_MESSAGE });
    return null;
  }
  const name = vhostName ?? queryVhost(req);
  const vhost = ctx.vhosts.get(name);
  if (vhost === undefined) {
    sendRefusal(res, ctx.refusals, 404, { error: ErrorCode.notFound, message: `no vhost '${name}'` });
    return null;
  }
  const principal = user.principalIn(vhost);
  if (principal === null) {
    const refusal = vhostRefused(user.name, name);
    sendRefusal(res, ctx.refusals, 403, { error: refusal.code, message: refusal.message });
    return null;
  }
  const allowed = right === 'any' || (right === 'manage' ? principal.canManage : principal.canMonitor);
  if (!allowed) {
    sendRefusal(res, ctx.refusals, 403, {
      error: ErrorCode.accessRefused,
      message: `user ${principal.name} may not ${right === 'manage' ? 'manage' : 'monitor'} vhost '${name}'`,
    });
    return null;
  }
  return principal;
}

/** The `vhost` query parameter (uWS decodes it: `%2F` is `/`); `/` when absent or empty. */
export function queryVhost(req: HttpRequest): string {
  const raw = req.getQuery('vhost');
  return raw === undefined || raw === '' ? DEFAULT_VHOST : raw;
}
