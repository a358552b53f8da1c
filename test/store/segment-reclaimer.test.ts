/**
 * Segment deletion on its own: the live index and the reclaimer driven by hand over real (empty)
 * files, so each deletion rule (segment-reclaimer.ts module comment) is seen to hold back a
 * segment, and a failed pass to leave everything for the next one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LiveIndex } from '../../src/store/live-index.js';
import { Segment, segmentFileName } from '../../src/store/segment.js';
import { SegmentReclaimer } from '../../src/store/segment-reclaimer.js';
import { FaultyFs } from '../helpers/faulty-fs.js';
import { tempDirs } from '../helpers/temp-dir.js';

const dirs = tempDirs('shardmq-reclaimer-');
afterEach(() => dirs.cleanup());

function setup(count: number): { dir: string; seam: FaultyFs; reclaimer: SegmentReclaimer; live: LiveIndex; segs: Segment[] } {
  const dir = dirs.make();
  const segs: Segment[] = [];
  for (let no = 1; no <= count; no++) {
    const seg = new Segment(no, path.join(dir, segmentFileName(no)));
    fs.writeFileSync(seg.path, '');
    segs.push(seg);
  }
  const seam = new FaultyFs();
  const reclaimer = new SegmentReclaimer(seam, dir);
  return { dir, seam, reclaimer, live: new LiveIndex(), segs };
}

async function pass(reclaimer: SegmentReclaimer): Promise<number[]> {
  reclaimer.reclaim();
  await reclaimer.settled();
  return reclaimer.segments.map((s) => s.no);
}

describe('SegmentReclaimer', () => {
  it('deletes a dead segment only below a durable header', async () => {
    const { reclaimer, segs } = setup(3);
    reclaimer.recovered(segs.slice(), 1);
    expect(await pass(reclaimer)).toEqual([1, 2, 3]);
    reclaimer.headerDurable(3);
    expect(await pass(reclaimer)).toEqual([3]);
    expect(fs.existsSync(segs[0].path) || fs.existsSync(segs[1].path)).toBe(false);
  });

  it('keeps the active segment and segments with open files', async () => {
    const { reclaimer, segs } = setup(2);
    reclaimer.recovered([segs[0]], 0);
    reclaimer.rolled(segs[1]);
    reclaimer.headerDurable(2);
    segs[0].fd = 99;
    expect(await pass(reclaimer)).toEqual([1, 2]);
    segs[0].fd = null;
    expect(await pass(reclaimer)).toEqual([2]);
  });

  it('keeps a segment while it holds a live message', async () => {
    const { reclaimer, live, segs } = setup(2);
    live.add('q', 1, segs[0]);
    live.add('q', 2, segs[0]);
    reclaimer.recovered(segs.slice(), 2);
    live.remove('q', 1, segs[1]);
    expect(await pass(reclaimer)).toEqual([1, 2]);
    live.dropQueue('q', segs[1]);
    expect(await pass(reclaimer)).toEqual([2]);
  });

  it('deletes a segment whose removes took messages away only after the segment they came from', async () => {
    // 1 holds m1 and m2; 2 removes m1 and holds nothing, but deleting it before 1 would bring m1
    // back after a crash.
    const { seam, reclaimer, live, segs } = setup(3);
    live.add('q', 1, segs[0]);
    live.add('q', 2, segs[0]);
    live.remove('q', 1, segs[1]);
    reclaimer.recovered(segs.slice(), 3);
    expect(await pass(reclaimer)).toEqual([1, 2, 3]);
    live.remove('q', 2, segs[2]);
    expect(await pass(reclaimer)).toEqual([3]);
    // One round per dependency level, each with its directory sync: 1, then 2.
    expect(seam.calls.unlink).toBe(2);
    expect(seam.calls.syncDir).toBe(2);
  });

  it('a newer copy of the same (queue, id) frees the older one, but may go only after its segment', async () => {
    // 1 holds m1 and m2; 2 holds m1 again; 3 removes m1. 2 and 3 are dead, but deleting 2 before 1
    // would bring 1's m1 back after a crash, and 3 before 2 would bring 2's.
    const { seam, reclaimer, live, segs } = setup(4);
    live.add('q', 1, segs[0]);
    live.add('q', 2, segs[0]);
    live.add('q', 1, segs[1]);
    live.remove('q', 1, segs[2]);
    reclaimer.recovered(segs.slice(), 4);
    expect(segs[0].live).toBe(1);
    expect(await pass(reclaimer)).toEqual([1, 2, 3, 4]);
    live.remove('q', 2, segs[3]);
    expect(await pass(reclaimer)).toEqual([4]);
    expect(seam.calls.syncDir).toBe(3);
  });

  it('a failed directory sync deletes nothing from the list; the next pass finishes (a file already gone is fine)', async () => {
    const { seam, reclaimer, segs } = setup(2);
    reclaimer.recovered(segs.slice(), 2);
    seam.fail('syncDir', { code: 'EIO', times: 1 });
    expect(await pass(reclaimer)).toEqual([1, 2]);
    expect(fs.existsSync(segs[0].path)).toBe(false);
    expect(segs[0].deleted).toBe(false);
    expect(await pass(reclaimer)).toEqual([2]);
    expect(segs[0].deleted).toBe(true);
  });

  it('a failed unlink leaves the segment for the next pass', async () => {
    const { seam, reclaimer, segs } = setup(2);
    reclaimer.recovered(segs.slice(), 2);
    seam.fail('unlink', { code: 'EACCES', times: 1 });
    expect(await pass(reclaimer)).toEqual([1, 2]);
    expect(fs.existsSync(segs[0].path)).toBe(true);
    expect(await pass(reclaimer)).toEqual([2]);
  });
});
