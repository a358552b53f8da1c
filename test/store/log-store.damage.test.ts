/**
 * Issue 18, item 2: one damaged byte costs the record it lands in, never the records after it.
 * A segment of a few hundred records of random sizes; one byte changed at a time, at every
 * position of the header and of the first and last records and at a seeded sample of the rest
 * (lengths, CRCs, types, bodies alike); recovery must bring back every record the change did not
 * touch, count the one it did, and shorten no file except a torn tail of the newest segment (after
 * copying it aside). Once for the newest segment, once for an older one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStore } from '../../src/store/log-store.js';
import { scanSegment } from '../../src/store/segment.js';
import { Prng, testSeed } from '../helpers/prng.js';
import { tempDirs } from '../helpers/temp-dir.js';
import { DurabilityProbe, msg } from './store-harness.js';

const SEED = testSeed();
const RECORDS = 300;
const SAMPLED_POSITIONS = 2_000;
const dirs = tempDirs('shardmq-log-damage-');
afterAll(() => dirs.cleanup());

interface Layout {
  readonly file: string;
  readonly bytes: Buffer;
  /** Record spans in file order; `id` is the message id, -1 for the segment header. */
  readonly records: ReadonlyArray<{ start: number; end: number; id: number }>;
}

async function write(dir: string, ids: readonly number[], rng: Prng): Promise<void> {
  const store = new LogStore({ dir, batchIntervalMs: 0 });
  const probe = new DurabilityProbe(store);
  store.recover();
  let last = 0;
  for (const id of ids) last = store.appendMessage(msg('q', id, 'p'.repeat(rng.skewedSize(0, 40, 300))));
  await probe.flush(last);
  await store.close();
}

function layoutOf(file: string): Layout {
  const bytes = fs.readFileSync(file);
  const records: Array<{ start: number; end: number; id: number }> = [];
  scanSegment(bytes, {
    // A message body starts with its id (u64, low half first; ids here are small).
    record: (type, bodyStart, bodyEnd, recordStart) =>
      records.push({ start: recordStart, end: bodyEnd, id: type === 1 ? -1 : bytes.readUInt32LE(bodyStart) }),
    corrupt: () => {
      throw new Error('the pristine segment has damage');
    },
  });
  return { file, bytes, records };
}

/** Every header byte, every byte of the first two and last two records, and a seeded sample of the rest. */
function positions(layout: Layout, rng: Prng): number[] {
  const r = layout.records;
  const chosen = new Set<number>();
  for (const rec of [r[0], r[1], r[2], r[r.length - 2], r[r.length - 1]]) for (let p = rec.start; p < rec.end; p++) chosen.add(p);
  while (chosen.size < SAMPLED_POSITIONS + (r[2].end - r[0].start) + (r[r.length - 1].end - r[r.length - 2].start)) {
    chosen.add(rng.int(0, layout.bytes.length - 1));
  }
  return [...chosen].sort((a, b) => a - b);
}

interface Outcome {
  readonly ids: number[];
  readonly corrupt: number;
  readonly torn: number;
  readonly sizes: Map<string, number>;
  readonly aside: Map<string, Buffer>;
}

/** Copies `files` into a fresh directory with `damaged` replacing one of them, and recovers it. */
function recoverWith(files: ReadonlyMap<string, Buffer>, victim: string, damaged: Buffer): Outcome {
  const dir = dirs.make();
  for (const [name, bytes] of files) fs.writeFileSync(path.join(dir, name), name === victim ? damaged : bytes);
  const store = new LogStore({ dir });
  const recovered = store.recover();
  void store.close();
  const sizes = new Map<string, number>();
  const aside = new Map<string, Buffer>();
  for (const name of fs.readdirSync(dir)) {
    if (name.endsWith('.seg')) sizes.set(name, fs.statSync(path.join(dir, name)).size);
    else if (name.endsWith('.corrupt')) aside.set(name, fs.readFileSync(path.join(dir, name)));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    ids: recovered.messages.map((m) => m.id),
    corrupt: recovered.stats.corruptSkipped,
    torn: recovered.stats.tornBytesTruncated,
    sizes,
    aside,
  };
}

describe.each([
  { where: 'the newest segment', older: false },
  { where: 'an older segment', older: true },
])('log store damage - one changed byte in $where', ({ older }) => {
  it(`loses only the record it touched, counts it, and cuts nothing but a torn newest tail (seed ${SEED})`, async () => {
    const rng = new Prng(SEED ^ (older ? 0x5eed : 0));
    const dir = dirs.make();
    const ids = Array.from({ length: RECORDS }, (_, i) => i);
    await write(dir, ids, rng);
    const later = older ? [RECORDS, RECORDS + 1, RECORDS + 2] : [];
    if (older) await write(dir, later, rng); // recovery never appends: these go to a second segment
    const names = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.seg'))
      .sort();
    expect(names).toHaveLength(older ? 2 : 1);
    const files = new Map(names.map((n) => [n, fs.readFileSync(path.join(dir, n))]));
    const victim = names[0];
    const layout = layoutOf(path.join(dir, victim));
    expect(layout.records).toHaveLength(RECORDS + 1);
    const all = [...ids, ...later];

    let checked = 0;
    let tornCuts = 0;
    for (const pos of positions(layout, rng)) {
      const damaged = Buffer.from(layout.bytes);
      damaged[pos] ^= rng.int(1, 255);
      const hit = layout.records.find((r) => pos >= r.start && pos < r.end)!;
      const label = `seed ${SEED}: byte ${pos} of ${victim} (record of id ${hit.id} at ${hit.start}..${hit.end})`;
      const out = recoverWith(files, victim, damaged);

      // Every record the change did not touch comes back, and nothing else.
      expect(out.ids, label).toEqual(all.filter((id) => id !== hit.id));
      const cut = out.sizes.get(victim) !== damaged.length;
      if (cut) {
        // Only a torn tail of the newest segment is cut: the last record's, copied aside whole first.
        tornCuts++;
        expect(older, label).toBe(false);
        expect(hit, label).toBe(layout.records[layout.records.length - 1]);
        expect(out.sizes.get(victim), label).toBe(hit.start);
        expect(out.torn, label).toBe(hit.end - hit.start);
        expect(out.aside.get(`${victim}.${hit.start}.corrupt`)?.equals(damaged.subarray(hit.start)), label).toBe(true);
        expect(out.corrupt, label).toBe(0);
      } else {
        // Otherwise the touched record is counted as lost and the file is as it was.
        expect(out.corrupt, label).toBe(1);
        expect(out.torn, label).toBe(0);
        expect(out.aside.size, label).toBe(0);
      }
      for (const [name, bytes] of files) if (name !== victim) expect(out.sizes.get(name), label).toBe(bytes.length);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(SAMPLED_POSITIONS);
    // The length flips of the newest segment's last record look torn; an older segment never does.
    if (older) expect(tornCuts).toBe(0);
    else expect(tornCuts).toBeGreaterThan(0);
  }, 120_000);
});
