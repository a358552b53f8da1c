/**
 * Segment deletion for the log store: it keeps the list of the store's segments and deletes the
 * dead ones.
 *
 * A segment is deleted when: it is not the active one; a later segment's header is durable (that
 * snapshot carries the topology it held); all its messages are durably removed (`live-index.ts`
 * keeps the counts); and every older segment whose messages its removes took away is already
 * deleted (otherwise a crash would bring those back). Deletion happens after flushes, in the
 * background, with a directory sync before anything that depends on it.
 */
import type { FsSeam } from './fs-seam.js';
import type { Segment } from './segment.js';

export class SegmentReclaimer {
  readonly #fs: FsSeam;
  readonly #dir: string;

  /** Segments on disk or about to be, ascending. */
  #segments: Segment[] = [];
  /** The segment appends go to (null until the first append after recovery). */
  #active: Segment | null = null;
  /** The newest segment whose header is durable: segments below it may be deleted. */
  #snapshotSegmentNo = 0;
  #reclaiming: Promise<void> | null = null;

  constructor(fs: FsSeam, dir: string) {
    this.#fs = fs;
    this.#dir = dir;
  }

  /**
   * Segments on disk or about to be, ascending. A deletion pass replaces the array rather than
   * changing it, so a caller may iterate it across awaits (a segment deleted meanwhile has no fd).
   */
  get segments(): readonly Segment[] {
    return this.#segments;
  }

  /** Takes over what recovery found. */
  recovered(segments: Segment[], snapshotSegmentNo: number): void {
    this.#segments = segments;
    this.#snapshotSegmentNo = snapshotSegmentNo;
  }

  /** A new segment, which appends now go to. */
  rolled(seg: Segment): void {
    this.#segments.push(seg);
    this.#active = seg;
  }

  /** The header of segment `no` is durable. */
  headerDurable(no: number): void {
    if (no > this.#snapshotSegmentNo) this.#snapshotSegmentNo = no;
  }

  #deletable(seg: Segment): boolean {
    return seg !== this.#active && seg.no < this.#snapshotSegmentNo && seg.live === 0 && seg.fd === null && seg.dependenciesGone();
  }

  /** Deletes dead segments in the background; one pass at a time. */
  reclaim(): void {
    // A running pass looks again until nothing is deletable (or a failure stops it until the next flush).
    if (this.#reclaiming !== null) return;
    this.#reclaiming = this.#reclaimLoop().finally(() => {
      this.#reclaiming = null;
    });
  }

  /** Resolves once no deletion pass is running. */
  async settled(): Promise<void> {
    while (this.#reclaiming !== null) await this.#reclaiming;
  }

  async #reclaimLoop(): Promise<void> {
    const fs = this.#fs;
    for (;;) {
      const doomed = this.#segments.filter((s) => this.#deletable(s));
      if (doomed.length === 0) return;
      try {
        for (const seg of doomed) {
          await fs.unlink(seg.path).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          });
        }
        // Durable unlinks before anything that depended on them can go.
        await fs.syncDir(this.#dir);
      } catch {
        // Left for the next pass (after the next flush); an unlinked file is simply gone then (ENOENT).
        return;
      }
      for (const seg of doomed) seg.deleted = true;
      this.#segments = this.#segments.filter((s) => !s.deleted);
    }
  }
}
