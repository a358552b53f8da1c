// Piscina entry used only when running from TypeScript sources (tests, dev): worker threads
// on Node 20 do not get tsx's loader hooks, so register them here, then load the task.
import { register } from 'tsx/esm/api';

register();
export default (await import('./inflate-task.ts')).default;
