/**
 * CRC-32C (Castagnoli), the checksum of every log record.
 *
 * Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF: the CRC of iSCSI (RFC 3720
 * §B.4), ext4 metadata and LevelDB/RocksDB logs. `crc32c('123456789') === 0xe3069283`.
 *
 * Table-driven, slicing-by-8: eight 256-entry tables (8 KiB) let the loop consume eight bytes per
 * step with eight lookups instead of eight dependent shift/lookup rounds. Measured once (Node 20,
 * 4 KiB buffers, 50k rounds, tsx): ~1.0 GB/s against ~0.45 GB/s byte at a time. The log is bound by
 * fsync long before that.
 *
 * Incremental: pass the previous result as `crc` to continue over a second range, e.g. a record's
 * length field, then its type and body, without concatenating them.
 */

/** T[k][b]: the CRC contribution of byte b followed by k zero bytes. */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + b] = c >>> 0;
    }
  }
  return t;
}

/**
 * CRC-32C of `bytes[start, end)`, continuing from `crc` (the result of a previous call; 0 to start).
 * Returns an unsigned 32-bit integer.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  const t = TABLES;
  let c = ~crc >>> 0;
  let i = start;
  // Slicing-by-8 over whole 8-byte groups; the bytes are combined by hand (no DataView: it is not
  // aligned, and the hand combine is what V8 compiles best).
  const last8 = end - 8;
  while (i <= last8) {
    const lo = (c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24))) >>> 0;
    c =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + bytes[i + 4]] ^
      t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]];
    i += 8;
  }
  while (i < end) c = t[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
