/**
 * A tiny typed event emitter. Unlike node:events, an `error` with no listener does not throw (the
 * client reports it to its logger instead), and a listener that throws cannot break the client's
 * own bookkeeping: the throw is caught and reported the same way.
 */

type Listener<A> = (arg: A) => void;

export class TypedEmitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Array<Listener<never>>>();
  readonly #onListenerError: (event: string, err: unknown) => void;

  constructor(onListenerError: (event: string, err: unknown) => void) {
    this.#onListenerError = onListenerError;
  }

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const list = this.#listeners.get(event);
    if (list === undefined) this.#listeners.set(event, [listener as Listener<never>]);
    else list.push(listener as Listener<never>);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapper: Listener<Events[K]> = (arg) => {
      this.off(event, wrapper);
      listener(arg);
    };
    return this.on(event, wrapper);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const list = this.#listeners.get(event);
    if (list === undefined) return this;
    const i = list.indexOf(listener as Listener<never>);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /** Calls every listener; returns false when there was none. */
  protected emit<K extends keyof Events>(event: K, arg: Events[K]): boolean {
    const list = this.#listeners.get(event);
    if (list === undefined || list.length === 0) return false;
    for (const listener of [...list]) {
      try {
        (listener as Listener<Events[K]>)(arg);
      } catch (err) {
        this.#onListenerError(String(event), err);
      }
    }
    return true;
  }
}
