#!/usr/bin/env -S node --no-memory-reducer
// The published entry runs the compiled CLI; `npm run build` produces dist/. The V8 flag is the
// broker's (src/cli/gc-tuning.ts): the main thread's heap takes it only from the command line.
import '../dist/cli/main.js';
