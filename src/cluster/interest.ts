/**
 * This node's interest on NATS: the subjects its bindings map to (subject-map.ts), counted, so
 * a thousand subscriptions to one pattern are one NATS subscription and the last one to go
 * unsubscribes it. Cost follows bindings, never messages.
 */
import { bindingSubjects, type BindingExchangeType } from './subject-map.js';

export interface SubjectSubscriber {
  subscribe(subject: string): void;
  unsubscribe(subject: string): void;
}

export class Interest {
  readonly #counts = new Map<string, number>();
  readonly #nats: SubjectSubscriber;
  /** Bindings whose subjects are a superset of what they match (filtered on arrival). */
  inexact = 0;

  constructor(nats: SubjectSubscriber) {
    this.#nats = nats;
  }

  add(type: BindingExchangeType, exchange: string, pattern: string): void {
    if (exchange === '') return;
    const { subjects, exact } = bindingSubjects(type, exchange, pattern);
    if (!exact) this.inexact++;
    for (const s of subjects) {
      const n = this.#counts.get(s) ?? 0;
      this.#counts.set(s, n + 1);
      if (n === 0) this.#nats.subscribe(s);
    }
  }

  remove(type: BindingExchangeType, exchange: string, pattern: string): void {
    if (exchange === '') return;
    const { subjects, exact } = bindingSubjects(type, exchange, pattern);
    if (!exact) this.inexact--;
    for (const s of subjects) {
      const n = this.#counts.get(s);
      if (n === undefined) continue;
      if (n > 1) this.#counts.set(s, n - 1);
      else {
        this.#counts.delete(s);
        this.#nats.unsubscribe(s);
      }
    }
  }

  /** Distinct subjects subscribed. */
  get size(): number {
    return this.#counts.size;
  }
}
