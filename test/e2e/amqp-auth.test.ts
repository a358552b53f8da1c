/**
 * The broker's users over AMQP: the password is the user's token (PLAIN and AMQPLAIN); a refused
 * login is connection.close 403 (authentication_failure_close); each publish, consume, bind and
 * declaration is checked against the same rights as on HTTP and WebSocket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '../../src/front/broker.js';
import { startBroker } from '../helpers/broker.js';
import { channelError } from '../helpers/amqp-client.js';

const dir = mkdtempSync(join(tmpdir(), 'shardmq-amqp-auth-'));
let broker: Broker;
let port: number;

beforeAll(async () => {
  const users = join(dir, 'users.json');
  writeFileSync(
    users,
    JSON.stringify({
      users: [
        { name: 'sensor', token: 'sensor-token-1', publish: ['/topic/sensors.#'], subscribe: ['/queue/readings'] },
        { name: 'admin', token: 'admin-token-1', publish: ['#'], subscribe: ['#'], manage: true },
      ],
    }),
  );
  broker = await startBroker({ 'users-file': users });
  port = broker.amqpPort ?? 0;
});
afterAll(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const url = (user: string, password: string): string => `amqp://${user}:${password}@127.0.0.1:${port}`;

describe('e2e - AMQP login and rights', () => {
  it('a wrong password, a wrong user name for a token, and guest are refused with 403', async () => {
    for (const u of [url('sensor', 'wrong-token'), url('admin', 'sensor-token-1'), url('guest', 'guest')]) {
      await expect(amqp.connect(u)).rejects.toThrow(/ACCESS_REFUSED|403/);
    }
    // AMQPLAIN takes the same credentials.
    const plain = await amqp.connect(url('admin', 'admin-token-1'), { credentials: amqp.credentials.amqplain('admin', 'admin-token-1') });
    await plain.close();
  });

  it("each method is checked against the user's rights: publish, declare, bind, consume", async () => {
    const admin = await amqp.connect(url('admin', 'admin-token-1'));
    const ach = await admin.createChannel();
    await ach.assertQueue('readings', { durable: false });
    await ach.bindQueue('readings', 'amq.topic', 'sensors.#');

    const sensor = await amqp.connect(url('sensor', 'sensor-token-1'));
    const pub = await sensor.createConfirmChannel();
    await new Promise<void>((resolve, reject) =>
      pub.publish('amq.topic', 'sensors.t1', Buffer.from('21.5'), {}, (err) => (err ? reject(err) : resolve())),
    );
    const denied = [
      await channelError(sensor, (ch) => ch.publish('amq.topic', 'billing.x', Buffer.from('no'))),
      await channelError(sensor, (ch) => ch.assertQueue('sensor-own', { durable: false })),
      await channelError(sensor, (ch) => ch.assertExchange('sensor-x', 'topic')),
      await channelError(sensor, async (ch) => {
        const q = await ch.assertQueue('', { exclusive: true });
        await ch.bindQueue(q.queue, 'amq.topic', 'billing.#');
      }),
      await channelError(sensor, (ch) => ch.consume('other', () => {})),
    ];
    for (const err of denied) expect([err.code, err.message]).toEqual([403, expect.stringMatching(/ACCESS_REFUSED/)]);
    // What it may do still works after the refusals: read its queue.
    const ch = await sensor.createChannel();
    const got = await new Promise<string>(
      (resolve) => void ch.consume('readings', (m) => m && resolve(m.content.toString()), { noAck: true }),
    );
    expect(got).toBe('21.5');
    await sensor.close();
    await admin.close();
  });
});
