/**
 * The topology helpers (declare, delete, purge, bind, unbind of exchanges and queues) as requests,
 * each success recorded in the TopologyRecorder so that the same topology is declared and bound
 * again on a new socket after a reconnect.
 */
import type { HeaderTable } from '../protocol/field-table.js';
import { encodedTableLength } from '../protocol/properties.js';
import type { ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions } from '../protocol/ws-binary-encode.js';
import { Opcode } from '../protocol/ws-binary.js';
import { ConnectionError, restoreError } from './errors.js';
import type { ClientSession } from './session.js';
import { QueueDeclaration, TopologyRecorder, queueName, type DeclareQueueResult } from './topology.js';

export class TopologyOps {
  readonly #session: ClientSession;
  readonly #topology = new TopologyRecorder();
  readonly #queueRenamed: (previous: string, queue: string) => void;

  constructor(session: ClientSession, queueRenamed: (previous: string, queue: string) => void) {
    this.#session = session;
    this.#queueRenamed = queueRenamed;
  }

  async declareExchange(name: string, type: string, options: ExchangeDeclareOptions): Promise<void> {
    await this.#session.request(Opcode.DECLARE_EXCHANGE, 64 + 3 * (name.length + type.length) + tableSize(options.arguments), (w, id) =>
      w.declareExchange(id, name, type, options),
    );
    this.#topology.declaredExchange(name, type, options);
  }

  async deleteExchange(name: string, options: { ifUnused?: boolean }): Promise<void> {
    await this.#session.request(Opcode.DELETE_EXCHANGE, 64 + 3 * name.length, (w, id) =>
      w.deleteExchange(id, name, options.ifUnused === true),
    );
    this.#topology.deletedExchange(name);
  }

  async declareQueue(name: string, options: QueueDeclareOptions): Promise<DeclareQueueResult> {
    const ok = await this.#session.request(Opcode.DECLARE_QUEUE, 64 + 3 * name.length + tableSize(options.arguments), (w, id) =>
      w.declareQueue(id, name, options),
    );
    const record = this.#topology.declaredQueue(name, ok.name, options);
    return new QueueDeclaration(record, ok.name, ok.messageCount, ok.consumerCount);
  }

  async deleteQueue(name: string, options: QueueDeleteOptions): Promise<{ messageCount: number }> {
    const ok = await this.#session.request(Opcode.DELETE_QUEUE, 64 + 3 * name.length, (w, id) => w.deleteQueue(id, name, options));
    this.#topology.deletedQueue(name);
    return { messageCount: ok.messageCount };
  }

  async purgeQueue(name: string): Promise<{ messageCount: number }> {
    const ok = await this.#session.request(Opcode.PURGE_QUEUE, 64 + 3 * name.length, (w, id) => w.purgeQueue(id, name));
    return { messageCount: ok.messageCount };
  }

  async bindQueue(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): Promise<void> {
    await this.#session.request(
      Opcode.BIND_QUEUE,
      64 + 3 * (queue.length + exchange.length + routingKey.length) + tableSize(args),
      (w, id) => w.bindQueue(id, queue, exchange, routingKey, args),
    );
    this.#topology.boundQueue(queue, exchange, routingKey, args);
  }

  async unbindQueue(queue: string, exchange: string, routingKey: string, args: HeaderTable | undefined): Promise<void> {
    await this.#session.request(
      Opcode.UNBIND_QUEUE,
      64 + 3 * (queue.length + exchange.length + routingKey.length) + tableSize(args),
      (w, id) => w.unbindQueue(id, queue, exchange, routingKey, args),
    );
    this.#topology.unboundQueue(queue, exchange, routingKey, args);
  }

  async bindExchange(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): Promise<void> {
    await this.#session.request(
      Opcode.BIND_EXCHANGE,
      64 + 3 * (destination.length + source.length + routingKey.length) + tableSize(args),
      (w, id) => w.bindExchange(id, destination, source, routingKey, args),
    );
    this.#topology.boundExchange(destination, source, routingKey, args);
  }

  async unbindExchange(destination: string, source: string, routingKey: string, args: HeaderTable | undefined): Promise<void> {
    await this.#session.request(
      Opcode.UNBIND_EXCHANGE,
      64 + 3 * (destination.length + source.length + routingKey.length) + tableSize(args),
      (w, id) => w.unbindExchange(id, destination, source, routingKey, args),
    );
    this.#topology.unboundExchange(destination, source, routingKey, args);
  }

  // ---- after a reconnect ----------------------------------------------------------------------

  /** The re-declares of the recorded exchanges and queues, in their order (to run, windowed); a server-named queue takes its new name. */
  redeclare(): Array<() => Promise<unknown>> {
    const sent: Array<() => Promise<unknown>> = [];
    for (const x of this.#topology.exchanges.values()) {
      sent.push(() =>
        this.#session
          .send(Opcode.DECLARE_EXCHANGE, 1024 + tableSize(x.options.arguments), (w, id) => w.declareExchange(id, x.name, x.type, x.options))
          .catch(this.#softly(`re-declaring exchange '${x.name}'`)),
      );
    }
    for (const q of [...this.#topology.queues.values()]) {
      sent.push(() =>
        this.#session
          .send(Opcode.DECLARE_QUEUE, 1024 + tableSize(q.options.arguments), (w, id) =>
            w.declareQueue(id, q.serverNamed ? '' : q.name, q.options),
          )
          .then(
            (ok) => {
              if (!q.serverNamed || ok.name === q.name) return;
              const previous = q.name;
              this.#topology.renamedQueue(q, ok.name);
              this.#queueRenamed(previous, ok.name);
            },
            this.#softly(`re-declaring queue '${q.name}'`),
          ),
      );
    }
    return sent;
  }

  /** The re-binds of the recorded bindings (to run once the exchanges and queues they name are back). */
  rebind(): Array<() => Promise<unknown>> {
    const sent: Array<() => Promise<unknown>> = [];
    for (const b of this.#topology.bindings) {
      if (b.kind === 'queue') {
        const queue = queueName(b.queue);
        sent.push(() =>
          this.#session
            .send(Opcode.BIND_QUEUE, 1024 + tableSize(b.args), (w, id) => w.bindQueue(id, queue, b.exchange, b.routingKey, b.args))
            .catch(this.#softly(`re-binding queue '${queue}' to '${b.exchange}' with '${b.routingKey}'`)),
        );
      } else {
        sent.push(() =>
          this.#session
            .send(Opcode.BIND_EXCHANGE, 1024 + tableSize(b.args), (w, id) =>
              w.bindExchange(id, b.destination, b.source, b.routingKey, b.args),
            )
            .catch(this.#softly(`re-binding exchange '${b.destination}' to '${b.source}' with '${b.routingKey}'`)),
        );
      }
    }
    return sent;
  }

  /** A refused re-declare or re-bind is reported and the restore goes on; a drop ends the restore. */
  #softly(what: string): (err: unknown) => void {
    return (err) => {
      if (err instanceof ConnectionError) throw err;
      this.#session.report(restoreError(err, what));
    };
  }
}

function tableSize(args: HeaderTable | undefined): number {
  return args === undefined ? 4 : encodedTableLength(args);
}
