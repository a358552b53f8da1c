/**
 * The value types of a field table: message headers and the `arguments` of management ops.
 * Their own module because both the properties codec (properties.ts) and the op definitions
 * (ws-binary.ts) need them, and properties.ts already imports ws-binary.ts's field readers.
 */

/**
 * A header or argument value. `Uint8Array` (the table type `x`, AMQP's byte array) is an addition
 * to the broker-wide type in src/queue/types.ts; decoding always yields a copy, never a view.
 */
export type HeaderValue = string | number | boolean | null | Uint8Array | HeaderValue[] | { [k: string]: HeaderValue };
export type HeaderTable = Record<string, HeaderValue>;
