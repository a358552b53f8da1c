/**
 * The on-disk record layout, pinned byte by byte for one record (a format change must be deliberate
 * and bump FORMAT_VERSION), and round trips for every record type.
 */
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/store/crc32c.js';
import {
  FORMAT_VERSION,
  RECORD_HEADER_BYTES,
  RecordDecodeError,
  RecordType,
  RecordWriter,
  decodeMessage,
  decodeRemove,
  decodeSegmentHeader,
  decodeTopology,
} from '../../src/store/record-codec.js';
import { scanSegment } from '../../src/store/segment.js';
import { msg, plain } from './store-harness.js';

function only(w: RecordWriter): { bytes: Buffer; type: number; start: number; end: number } {
  const bytes = Buffer.from(w.bytes.subarray(0, w.length));
  const found: Array<{ type: number; start: number; end: number }> = [];
  const scan = scanSegment(bytes, { record: (type, start, end) => found.push({ type, start, end }), corrupt: () => {} });
  expect(scan).toEqual({ validRecords: 1, corrupt: 0, tailAt: -1, tailBytes: 0, lastRecordCorrupt: false });
  return { bytes, ...found[0] };
}

describe('record codec', () => {
  it('record codec - a remove record, byte by byte', () => {
    const w = new RecordWriter(16); // grows as needed
    expect(w.remove('qé', 2 ** 32 + 5)).toBe(RECORD_HEADER_BYTES + 8 + 2 + 3);
    const b = Buffer.from(w.bytes.subarray(0, w.length));
    const body = [5, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0x71, 0xc3, 0xa9]; // u64 id (lo, hi), u16 length, UTF-8
    expect(b.readUInt32LE(0)).toBe(body.length);
    expect(b[8]).toBe(RecordType.remove);
    expect([...b.subarray(9)]).toEqual(body);
    // The CRC covers the length, then the type and body; not itself.
    expect(b.readUInt32LE(4)).toBe(crc32c(b, 8, b.length, crc32c(b, 0, 4)));
    expect(decodeRemove(b, 9, b.length)).toEqual({ queue: 'qé', id: 2 ** 32 + 5 });
  });

  it('record codec - message round trips, with and without properties', () => {
    for (const m of [
      msg('q', 0, ''),
      msg('queue', Number.MAX_SAFE_INTEGER, 'payload', Uint8Array.from([9, 8])),
      msg('', 7, 'x', new Uint8Array(0)),
    ]) {
      const w = new RecordWriter();
      w.message(m);
      const r = only(w);
      expect(r.type).toBe(RecordType.message);
      expect(plain(decodeMessage(r.bytes, r.start, r.end))).toEqual(plain(m));
    }
  });

  it('record codec - segment header and topology round trip', () => {
    const w = new RecordWriter();
    const snapshot = [{ op: 'declareQueue', name: 'q' }];
    w.segmentHeader(12, 3456, 789, snapshot);
    let r = only(w);
    expect(r.type).toBe(RecordType.segmentHeader);
    expect(decodeSegmentHeader(r.bytes, r.start, r.end)).toEqual({
      formatVersion: FORMAT_VERSION,
      segmentNo: 12,
      firstLsn: 3456,
      nextId: 789,
      snapshot,
    });
    w.reset();
    w.topology(JSON.stringify({ op: 'deleteQueue', name: 'q' }));
    r = only(w);
    expect(r.type).toBe(RecordType.topology);
    expect(decodeTopology(r.bytes, r.start, r.end)).toEqual({ op: 'deleteQueue', name: 'q' });
  });

  it('record codec - bodies that do not match their type are refused with RecordDecodeError', () => {
    const w = new RecordWriter();
    w.remove('q', 1);
    const r = only(w);
    expect(() => decodeSegmentHeader(r.bytes, r.start, r.end)).toThrow(RecordDecodeError);
    expect(() => decodeTopology(r.bytes, r.start, r.end)).toThrow(RecordDecodeError);
    expect(() => decodeRemove(r.bytes, r.start, r.end - 1)).toThrow(RecordDecodeError);
  });
});
