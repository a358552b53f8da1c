/** Checked before anything is sent, so a bad destination fails at the call with the typed error the broker would have sent. */
import { DestinationError, parseDestination } from '../protocol/destination.js';
import { BadDestinationError } from './errors.js';

export function checkDestination(destination: string, op: string): void {
  if (typeof destination !== 'string') throw new TypeError(`destination must be a string (got ${typeof destination})`);
  try {
    parseDestination(destination);
  } catch (err) {
    if (err instanceof DestinationError) throw new BadDestinationError('bad_destination', err.message, { op });
    throw err;
  }
}
