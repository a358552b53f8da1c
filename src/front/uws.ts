import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export type { UWS };

const require = createRequire(import.meta.url);

export class NativeUwsError extends Error {
  override readonly name = 'NativeUwsError';
}

/**
 * Loads uWebSockets.js and fails loudly unless its native binary loaded.
 *
 * The trufflesuite republish silently falls back to a `ws`-based stub when no
 * binary matches this Node ABI (docs/engine-notes.md §3): publish/subscribe become no-ops
 * and throughput collapses. A broker must refuse to start on that.
 */
export function loadUws(): { uws: typeof UWS; binary: string } {
  const uws = require('uWebSockets.js') as typeof UWS;
  const binary = Object.keys(require.cache).find((k) => /uws_[a-z0-9_]+\.node$/.test(k));
  if (!binary || typeof (uws as { getParts?: unknown }).getParts !== 'function') {
    throw new NativeUwsError(
      `uWebSockets.js did not load its native binary for Node ${process.version} ` +
        `(ABI ${process.versions.modules}, ${process.platform}-${process.arch}); ` +
        'it fell back to a slow ws-based stub, so shardmq refuses to start. Use Node 20.',
    );
  }
  return { uws, binary: binary.slice(binary.lastIndexOf('/') + 1) };
}
