/**
 * The open-loop workload's pub/sub reference: uWebSockets.js's built-in topic pub/sub and nothing
 * else. Run as its own process; prints {"url": "ws://127.0.0.1:port"} on stdout once listening.
 *
 * - `/sub`: the socket subscribes to topic `bench` on open, then gets the text frame `ready` (so
 *   the client knows the subscription is live before anything is published).
 * - `/pub`: every binary message is `app.publish('bench', message, true)`ed; the text frame `flush`
 *   is echoed at once. uWS handles one socket's messages in order, so the echo means everything
 *   sent before it was published (the same promise as a NATS PING/PONG or shardmq's flush()).
 *
 * maxBackpressure is 64 MiB per socket, as shardmq's own WebSocket front and NATS's default
 * max_pending: a subscriber further behind than that is skipped (its messages dropped), which the
 * harness counts as lost at the subscriber.
 */
import { loadUws, type UWS } from '../front/uws.js';

const TOPIC = 'bench';
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;

const { uws } = loadUws();
const app = uws.App();
app.ws('/sub', {
  compression: uws.DISABLED,
  maxBackpressure: MAX_BACKPRESSURE_BYTES,
  idleTimeout: 120,
  open: (ws) => {
    ws.subscribe(TOPIC);
    ws.send('ready', false);
  },
});
app.ws('/pub', {
  compression: uws.DISABLED,
  maxBackpressure: MAX_BACKPRESSURE_BYTES,
  maxPayloadLength: 1024 * 1024,
  idleTimeout: 120,
  message: (ws, message, isBinary) => {
    if (isBinary) app.publish(TOPIC, message, true);
    else ws.send('flush', false);
  },
});
app.listen('127.0.0.1', 0, (socket) => {
  if (!socket) process.exit(1);
  const port = uws.us_socket_local_port(socket as unknown as UWS.us_socket);
  process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${port}` }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
