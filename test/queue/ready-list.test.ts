import { describe, expect, it } from 'vitest';
import { ReadyList } from '../../src/queue/ready-list.js';
import { message } from './harness.js';
import { Prng } from '../helpers/prng.js';

function seqs(list: ReadyList): number[] {
  return list.toArray().map((m) => m.seq);
}

function listOf(...seqList: number[]): ReadyList {
  const list = new ReadyList();
  for (const seq of seqList) list.add(message(seq));
  return list;
}

describe('ready list', () => {
  it('ready list - add keeps seq order even when a message arrives late', () => {
    const list = listOf(1, 2, 5, 7, 3, 0, 6);
    expect(seqs(list)).toEqual([0, 1, 2, 3, 5, 6, 7]);
  });

  it('ready list - tracks payload bytes through add, shift, addMany and clear', () => {
    const list = new ReadyList();
    list.add(message(1, 10));
    list.add(message(2, 20));
    expect(list.bytes).toBe(30);
    const first = list.shift();
    expect(first?.seq).toBe(1);
    expect(list.bytes).toBe(20);
    list.addMany([message(0, 5), message(3, 7)]);
    expect(list.bytes).toBe(32);
    expect(list.clear()).toBe(3);
    expect(list.bytes).toBe(0);
    expect(list.shift()).toBeUndefined();
  });

  it('ready list - addMany of messages older than every ready one prepends in seq order', () => {
    const list = listOf(10, 11, 12);
    list.addMany([message(4), message(2), message(7)]);
    expect(seqs(list)).toEqual([2, 4, 7, 10, 11, 12]);
  });

  it('ready list - addMany of messages newer than every ready one appends in seq order', () => {
    const list = listOf(1, 2, 3);
    list.addMany([message(9), message(5)]);
    expect(seqs(list)).toEqual([1, 2, 3, 5, 9]);
  });

  it('ready list - addMany interleaves with the ready messages (merging from either end)', () => {
    // Near the front: merging from the front lifts fewer.
    const front = listOf(2, 4, 20, 21, 22, 23, 24, 25);
    front.addMany([message(3), message(1), message(5)]);
    expect(seqs(front)).toEqual([1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25]);
    // Near the back: merging from the back lifts fewer.
    const back = listOf(1, 2, 3, 4, 5, 6, 20, 22);
    back.addMany([message(23), message(21), message(7)]);
    expect(seqs(back)).toEqual([1, 2, 3, 4, 5, 6, 7, 20, 21, 22, 23]);
  });

  it('ready list - addMany into an empty list and with zero messages', () => {
    const list = new ReadyList();
    list.addMany([]);
    expect(list.length).toBe(0);
    list.addMany([message(3), message(1), message(2)]);
    expect(seqs(list)).toEqual([1, 2, 3]);
  });

  it.each([7, 8, 9, 10])('ready list - seeded random adds, requeue batches and shifts stay sorted (seed %i)', (seed) => {
    const prng = new Prng(seed);
    const list = new ReadyList();
    const model: number[] = [];
    const out: number[] = [];
    let nextSeq = 0;
    for (let step = 0; step < 3000; step++) {
      const roll = prng.int(0, 3);
      if (roll === 0) {
        list.add(message(nextSeq));
        model.push(nextSeq++);
      } else if (roll === 1 && model.length > 0) {
        out.push(list.shift()!.seq);
        model.shift();
      } else if (roll === 2 && out.length > 0) {
        // Put back a random subset of what was taken (each seq at most once).
        const batch: number[] = [];
        for (let i = out.length - 1; i >= 0; i--) {
          if (prng.chance(0.3)) batch.push(out.splice(i, 1)[0]);
        }
        list.addMany(batch.map((seq) => message(seq)));
        model.push(...batch);
        model.sort((a, b) => a - b);
      } else {
        list.add(message(nextSeq));
        model.push(nextSeq++);
      }
      expect(list.length, `seed ${seed} step ${step}`).toBe(model.length);
    }
    expect(seqs(list), `seed ${seed}`).toEqual(model);
    expect(list.bytes).toBe(model.length * 4);
  });
});
