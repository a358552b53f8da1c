import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Project root: two levels above this module, in src/bench (tsx) or dist/bench (compiled). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The peer clients' dependency island (benchmarks/peers/package.json). */
export const PEERS_DIR = join(PROJECT_ROOT, 'benchmarks', 'peers');
export const NATIVE_BENCH_DIR = join(PROJECT_ROOT, 'native-bench');
