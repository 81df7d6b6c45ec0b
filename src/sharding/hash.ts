/**
 * MurmurHash3 (x86, 32-bit) of a string's UTF-16LE bytes, computed straight from
 * `charCodeAt` with no encoding step and no allocation.
 * @remarks Two UTF-16 code units make one 4-byte block, exactly as if the string had been
 * encoded with `Buffer.from(s, "utf16le")`, so other languages can reproduce it. The fmix32
 * finaliser matters: plain FNV-1a without one leaves similar keys (`user:1`, `user:2`)
 * clustered on the ring, which is what makes rings balance badly.
 * @example murmur3(""); // 0
 */
export function murmur3(key: string, seed = 0): number {
  let h = seed >>> 0;
  const len = key.length;
  const blocks = len & ~1;
  let i = 0;
  while (i < blocks) {
    let k = (key.charCodeAt(i) & 0xffff) | (key.charCodeAt(i + 1) << 16);
    i += 2;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < len) {
    // Odd length: the tail is the last code unit's two bytes.
    let k = key.charCodeAt(i) & 0xffff;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= len * 2;
  return fmix32(h);
}

/** MurmurHash3's 32-bit finaliser: every input bit affects every output bit (avalanche). */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
