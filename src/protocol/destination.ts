/**
 * Destinations as the contract names them (design.md §2), parsed once at the edge.
 * `/topic/<key>`, `/queue/<name>`, `/exchange/<exchange>/<key>`.
 */
export const DestinationType = { topic: 1, queue: 2, exchange: 3 } as const;
export type DestinationType = (typeof DestinationType)[keyof typeof DestinationType];

export interface Destination {
  readonly type: DestinationType;
  /**
   * For `/queue/<name>`: declare the queue on first use. False for `/amq/queue/<name>`, which
   * names an existing queue (server-named `amq.gen-…` ones included) without declaring it,
   * as RabbitMQ's STOMP plugin does.
   */
  readonly declare: boolean;
  /** Exchange name for `/exchange/`, `amq.topic` for `/topic/`, '' (the default exchange) for `/queue/`. */
  readonly exchange: string;
  /** Routing key (topic, exchange) or queue name (queue). May hold `*`/`#` when it is a subscription pattern. */
  readonly name: string;
}

/** AMQP shortstr limit: names and routing keys are at most 255 bytes. */
export const MAX_NAME_BYTES = 255;

export class DestinationError extends Error {
  override readonly name = 'DestinationError';
  readonly code = 'bad_destination';
}

/** Parses a destination; `slashOptional` accepts the HTTP form without the leading slash. */
export function parseDestination(input: string, slashOptional = false): Destination {
  const text = slashOptional && !input.startsWith('/') ? '/' + input : input;
  if (text.startsWith('/topic/')) {
    return make(DestinationType.topic, 'amq.topic', text.slice(7), input);
  }
  if (text.startsWith('/amq/queue/')) {
    const name = text.slice(11);
    if (name.length === 0) throw new DestinationError(`queue name is empty in ${JSON.stringify(input)}`);
    return make(DestinationType.queue, '', name, input, false);
  }
  if (text.startsWith('/queue/')) {
    const name = text.slice(7);
    if (name.length === 0) throw new DestinationError(`queue name is empty in ${JSON.stringify(input)}`);
    if (name.startsWith('amq.')) {
      throw new DestinationError(`queue names starting with "amq." are reserved (got ${JSON.stringify(name)})`);
    }
    return make(DestinationType.queue, '', name, input);
  }
  if (text.startsWith('/exchange/')) {
    const rest = text.slice(10);
    const slash = rest.indexOf('/');
    const exchange = slash < 0 ? rest : rest.slice(0, slash);
    if (exchange.length === 0) throw new DestinationError(`exchange name is empty in ${JSON.stringify(input)}`);
    checkName(exchange, input);
    return make(DestinationType.exchange, exchange, slash < 0 ? '' : rest.slice(slash + 1), input);
  }
  throw new DestinationError(
    `destination must start with /topic/, /queue/, /amq/queue/ or /exchange/ (got ${JSON.stringify(truncate(input))})`,
  );
}

function make(type: DestinationType, exchange: string, name: string, input: string, declare = true): Destination {
  checkName(name, input);
  return { type, exchange, name, declare };
}

function checkName(name: string, input: string): void {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new DestinationError(`name or routing key longer than ${MAX_NAME_BYTES} bytes in ${JSON.stringify(truncate(input))}`);
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw new DestinationError(`control character in destination ${JSON.stringify(truncate(input))}`);
  }
}

function truncate(s: string): string {
  return s.length > 80 ? s.slice(0, 80) + '…' : s;
}

/** The destination a subscriber is shown for a delivered message. */
export function formatDestination(type: DestinationType, exchange: string, name: string): string {
  if (type === DestinationType.topic) return '/topic/' + name;
  if (type === DestinationType.queue) return '/queue/' + name;
  return '/exchange/' + exchange + '/' + name;
}
