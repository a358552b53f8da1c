/**
 * Recovery of the log store: reads a shard's directory at start and returns what the store needs to
 * continue from it.
 *
 * Recovery reads every segment in order, returns the compacted topology, the live messages (copied
 * out of the file buffers), `nextId` and stats. Damage (`segment.ts`): a region that is not whole
 * records is skipped up to the next whole record and counted; only the newest segment's tail, when
 * no whole record follows it, is taken for a torn write and cut, after its bytes are copied to
 * `<segment>.<offset>.corrupt`. Nothing is logged here: the stats list each damaged region and the
 * shard decides what to say.
 */
import { join } from 'node:path';
import type { FsSeam } from './fs-seam.js';
import { LiveIndex } from './live-index.js';
import {
  FORMAT_VERSION,
  RecordDecodeError,
  RecordType,
  decodeMessage,
  decodeRemove,
  decodeSegmentHeader,
  decodeTopology,
} from './record-codec.js';
import { Segment, parseSegmentFileName, scanSegment, segmentFileName } from './segment.js';
import { TopologyModel } from './topology-model.js';
import type { LogDamage, PersistedMessage, RecoveryStats, TopologyOp } from './store.js';

/** Damaged regions described one by one in recovery stats, at most (the counts are always complete). */
export const MAX_DAMAGE_REPORTS = 100;

/** A shard's log as recovery found it. */
export interface RecoveredLog {
  /** The segments kept, ascending (the empty ones are unlinked). */
  readonly segments: Segment[];
  /** The highest segment number seen, 0 when there were none: new segments are numbered above it. */
  readonly lastSegmentNo: number;
  /** The newest segment with a readable header, 0 when there is none. */
  readonly snapshotSegmentNo: number;
  /** Which segment holds each live message. */
  readonly live: LiveIndex;
  /** The compacted topology. */
  readonly topology: TopologyModel;
  /** Live messages, in id order (equal ids: LSN order). */
  readonly messages: PersistedMessage[];
  /** The LSN the next append gets. */
  readonly nextLsn: number;
  readonly nextId: number;
  /** All of `RecoveryStats` except the wall time, which is the caller's. */
  readonly stats: Omit<RecoveryStats, 'durationMs'>;
}

/** Reads the segments in `dir` (created if missing); cuts the newest one's torn tail after copying it aside. */
export function recoverLog(fs: FsSeam, dir: string): RecoveredLog {
  fs.mkdirSync(dir);
  const numbers: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    const no = parseSegmentFileName(name);
    if (no !== null) numbers.push(no);
  }
  numbers.sort((a, b) => a - b);

  const segments: Segment[] = [];
  let snapshotSegmentNo = 0;
  const liveIndex = new LiveIndex();
  let model = new TopologyModel();
  /** queue → id → the live message and its LSN (ties of id are ordered by LSN). */
  const payloads = new Map<string, Map<number, { m: PersistedMessage; lsn: number }>>();
  let nextLsn = 1;
  let nextId = 0;
  let records = 0;
  let corruptSkipped = 0;
  let tornBytesTruncated = 0;
  const damage: LogDamage[] = [];

  // Only the newest segment with any bytes can hold a torn write (recovery never appends to an
  // old segment, and a segment rolls only after its bytes are durable).
  let newest = -1;
  for (let k = numbers.length - 1; k >= 0 && newest < 0; k--) {
    if (fs.fileSizeSync(join(dir, segmentFileName(numbers[k]))) > 0) newest = numbers[k];
  }
  const noteDamage = (d: LogDamage): void => {
    if (damage.length < MAX_DAMAGE_REPORTS) damage.push(d);
  };

  for (const no of numbers) {
    const name = segmentFileName(no);
    const seg = new Segment(no, join(dir, name));
    const bytes = fs.readFileSync(seg.path);
    let lsn = nextLsn;
    let hasHeader = false;
    const scan = scanSegment(bytes, {
      record: (type, start, end, recordStart) => {
        if (recordStart === 0 && type === RecordType.segmentHeader) {
          let snapshot: TopologyModel;
          try {
            const h = decodeSegmentHeader(bytes, start, end);
            if (h.formatVersion > FORMAT_VERSION) {
              throw new Error(`${seg.path}: segment format ${h.formatVersion} is newer than this build reads (${FORMAT_VERSION})`);
            }
            snapshot = loggedTopology(h.snapshot);
            lsn = h.firstLsn;
            nextId = Math.max(nextId, h.nextId);
          } catch (err) {
            if (!(err instanceof RecordDecodeError)) throw err;
            corruptSkipped++; // a header that does not decode: as if corrupt (it holds no LSN)
            return;
          }
          hasHeader = true;
          // The snapshot is the state after every record before it, including those in deleted segments.
          model = snapshot;
          return;
        }
        try {
          switch (type) {
            case RecordType.message: {
              const m = decodeMessage(bytes, start, end);
              nextId = Math.max(nextId, m.id + 1);
              liveIndex.add(m.queue, m.id, seg);
              let q = payloads.get(m.queue);
              if (q === undefined) payloads.set(m.queue, (q = new Map()));
              q.set(m.id, { m, lsn });
              break;
            }
            case RecordType.remove: {
              const r = decodeRemove(bytes, start, end);
              nextId = Math.max(nextId, r.id + 1);
              liveIndex.remove(r.queue, r.id, seg);
              const q = payloads.get(r.queue);
              if (q?.delete(r.id) && q.size === 0) payloads.delete(r.queue);
              break;
            }
            case RecordType.topology: {
              const op = decodeTopology(bytes, start, end);
              applyLogged(model, op);
              if (op.op === 'deleteQueue') {
                liveIndex.dropQueue(op.name as string, seg);
                payloads.delete(op.name as string);
              }
              break;
            }
            default:
              throw new RecordDecodeError(`unknown record type ${type}`);
          }
        } catch (err) {
          // A record that passed its CRC but does not decode: count it with the corrupt ones.
          if (!(err instanceof RecordDecodeError)) throw err;
          corruptSkipped++;
        }
        lsn++;
      },
      corrupt: (start, end) => {
        // A damaged region held at least one record; one at offset 0 starts with the header (no LSN).
        if (start !== 0) lsn++;
        noteDamage({ segment: name, offset: start, bytes: end - start, kind: 'corrupt', copiedTo: null });
      },
    });
    records += scan.validRecords;
    corruptSkipped += scan.corrupt;
    let size = bytes.length;
    if (scan.tailAt >= 0) {
      if (no !== newest || scan.lastRecordCorrupt) {
        // Not a torn write: a whole record by its length failing its CRC, or damage in a segment
        // written completely before a later one began. Counted, and the bytes stay where they are.
        corruptSkipped++;
        if (scan.tailAt !== 0) lsn++;
        noteDamage({ segment: name, offset: scan.tailAt, bytes: scan.tailBytes, kind: 'corrupt', copiedTo: null });
      } else {
        // A torn tail: what a crash during a write leaves. Its bytes are copied aside before the
        // cut, so that nothing a person could still repair is destroyed.
        const aside = `${name}.${scan.tailAt}.corrupt`;
        fs.writeFileDurableSync(join(dir, aside), bytes.subarray(scan.tailAt));
        tornBytesTruncated += scan.tailBytes;
        size = scan.tailAt;
        noteDamage({ segment: name, offset: scan.tailAt, bytes: scan.tailBytes, kind: 'torn', copiedTo: aside });
        if (size > 0) fs.truncateSync(seg.path, size);
      }
    }
    if (size === 0) {
      // Created, but not even a header made it: nothing was ever durable in it.
      fs.unlinkSync(seg.path);
      continue;
    }
    seg.durableBytes = seg.appendedBytes = size;
    nextLsn = Math.max(nextLsn, lsn);
    segments.push(seg);
    if (hasHeader) snapshotSegmentNo = no;
  }

  const live: Array<{ m: PersistedMessage; lsn: number }> = [];
  for (const q of payloads.values()) for (const entry of q.values()) live.push(entry);
  live.sort((a, b) => a.m.id - b.m.id || a.lsn - b.lsn);

  return {
    segments,
    lastSegmentNo: numbers.length > 0 ? numbers[numbers.length - 1] : 0,
    snapshotSegmentNo,
    live: liveIndex,
    topology: model,
    messages: live.map((entry) => entry.m),
    nextLsn,
    nextId,
    stats: { segments: segments.length, records, corruptSkipped, tornBytesTruncated, damage },
  };
}

/** Applies a logged op; one the model refuses is a record we cannot have written (RecordDecodeError). */
function applyLogged(model: TopologyModel, op: TopologyOp): void {
  try {
    model.apply(op);
  } catch (err) {
    if (err instanceof TypeError) throw new RecordDecodeError(`topology record: ${err.message}`);
    throw err;
  }
}

function loggedTopology(ops: readonly TopologyOp[]): TopologyModel {
  const model = new TopologyModel();
  for (const op of ops) applyLogged(model, op);
  return model;
}
