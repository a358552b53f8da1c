/** Helpers for tests that drive the broker with amqplib. */
import type amqp from 'amqplib';

/** An AMQP exception as amqplib reports it: the reply code in `code`, RabbitMQ's text in the message. */
export type AmqpErr = Error & { code?: number };

/** Runs `act` on a fresh channel and returns the error the channel closed with. */
export async function channelError(connection: amqp.ChannelModel, act: (ch: amqp.Channel) => unknown): Promise<AmqpErr> {
  const ch = await connection.createChannel();
  const closed = new Promise<AmqpErr>((resolve) => ch.on('error', resolve));
  try {
    await act(ch);
  } catch {
    // The RPC's rejection; the channel's error event carries the code.
  }
  return closed;
}
