/**
 * The latency workload's client process: one run (latency-runner.ts runAtRate) with a fresh heap,
 * its result as the `final` report. argv[2]: a LatencyRunSpec, JSON.
 */
import { finishChild, runChild, sendToParent } from './child-channel.js';
import { type LatencyChildReport, type LatencyRunSpec, runAtRate, serializeRun, systemOf } from './latency-runner.js';

runChild(async () => {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LatencyRunSpec;
  await sendToParent({ type: 'ready' } satisfies LatencyChildReport);
  const run = await runAtRate(systemOf(spec.system), spec.rate, spec.warmSeconds, spec.seconds);
  await finishChild({ type: 'final', run: serializeRun(run) } satisfies LatencyChildReport, []);
});
