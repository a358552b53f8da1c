/**
 * The HTTP ceiling for the publish benchmark: a bare uWebSockets.js endpoint that
 * reads the whole body and answers 200, nothing else. Run as its own process.
 * Prints {"url": ...} on stdout once listening.
 */
import { loadUws, type UWS } from '../front/uws.js';

const { uws } = loadUws();
const app = uws.App();
app.post('/*', (res) => {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  let size = 0;
  res.onData((chunk, isLast) => {
    size += chunk.byteLength;
    if (isLast && !aborted) {
      res.cork(() => {
        res
          .writeStatus('200 OK')
          .writeHeader('content-type', 'application/json')
          .end(`{"accepted":${size > 0 ? 1 : 0}}`);
      });
    }
  });
});
app.listen('127.0.0.1', 0, (socket) => {
  if (!socket) process.exit(1);
  const port = uws.us_socket_local_port(socket as unknown as UWS.us_socket);
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${port}` }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
