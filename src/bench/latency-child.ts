/**
 * The latency workload's client process for one system (latency-runner.ts LatencyClients): it lives
 * for all the rounds of that system, as a user's publisher and subscriber would, and runs one
 * measurement (runAtRate) per `run` command, each reported as a `result`. argv[2]: the
 * LatencySystemSpec, JSON. `stop` ends it.
 */
import { finishChild, runChild, sendToParent } from './child-channel.js';
import {
  type LatencyChildCommand,
  type LatencyChildReport,
  type LatencySystemSpec,
  runAtRate,
  serializeRun,
  systemOf,
} from './latency-runner.js';

runChild(async () => {
  const system = systemOf(JSON.parse(process.argv[2] ?? '{}') as LatencySystemSpec);
  // One command at a time: the parent waits for each result before it sends the next.
  process.on('message', (command: LatencyChildCommand) => {
    if (command.type === 'stop') {
      void finishChild({ type: 'final' } satisfies LatencyChildReport, []);
      return;
    }
    runAtRate(system, command.rate, command.warmSeconds, command.seconds).then(
      (run) => sendToParent({ type: 'result', run: serializeRun(run) } satisfies LatencyChildReport),
      (err: unknown) =>
        sendToParent({ type: 'runFailed', message: err instanceof Error ? err.message : String(err) } satisfies LatencyChildReport),
    );
  });
  await sendToParent({ type: 'ready' } satisfies LatencyChildReport);
});
