// Worker entry used only when running from TypeScript sources (tests, dev).
// Node 20 does not apply --import loader hooks inside worker threads
// (nodejs/node#47747), so the worker registers tsx itself, then loads the real entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.__entry);
