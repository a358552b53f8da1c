/** Who is asking, for every HTTP route: the principal of a request's token, checked for a right. */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { BrokerContext } from './context.js';
import { ErrorCode } from '../protocol/errors.js';
import { tokenFrom, UNAUTHORIZED_MESSAGE, type Principal } from '../control/auth.js';
import { sendRefusal } from './http-util.js';

/** What a request must be allowed, beyond a valid token. */
export type Right = 'any' | 'manage' | 'monitor';

/**
 * Answers 401/403 and returns null unless the request's token is valid and its principal has
 * `right`; otherwise returns the principal. Reads headers synchronously, as uWS requires.
 */
export function authorize(res: HttpResponse, req: HttpRequest, ctx: BrokerContext, right: Right): Principal | null {
  const principal = ctx.auth.authenticate(tokenFrom(req.getHeader('authorization'), req.getQuery('token')));
  if (principal === null) {
    sendRefusal(res, ctx.refusals, 401, { error: ErrorCode.unauthorized, message: UNAUTHORIZED_MESSAGE });
    return null;
  }
  const allowed = right === 'any' || (right === 'manage' ? principal.canManage : principal.canMonitor);
  if (!allowed) {
    sendRefusal(res, ctx.refusals, 403, {
      error: ErrorCode.accessRefused,
      message: `user ${principal.name} may not ${right === 'manage' ? 'manage' : 'monitor'} the broker`,
    });
    return null;
  }
  return principal;
}
