import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fmix32, murmur3 } from "../../src/sharding/index.js";

/** Reference MurmurHash3 x86_32 over bytes, straight from the published algorithm. */
function murmur3Bytes(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const n = bytes.length;
  const blocks = n - (n % 4);
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[blocks + 2]! << 16;
    if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
    k ^= bytes[blocks]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  return fmix32(h);
}

describe("murmur3", () => {
  it("the byte reference matches published MurmurHash3 x86_32 vectors", () => {
    const ascii = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
    expect(murmur3Bytes(ascii(""), 0)).toBe(0);
    expect(murmur3Bytes(ascii(""), 1)).toBe(0x514e28b7);
    expect(murmur3Bytes(ascii(""), 0xffffffff)).toBe(0x81f16f39);
    expect(murmur3Bytes(new Uint8Array(4), 0)).toBe(0x2362f9de);
    expect(murmur3Bytes(ascii("aaaa"), 0x9747b28c)).toBe(0x5a97808a);
    expect(murmur3Bytes(ascii("Hello, world!"), 0x9747b28c)).toBe(0x24884cba);
    expect(murmur3Bytes(ascii("The quick brown fox jumps over the lazy dog"), 0x9747b28c)).toBe(
      0x2fa826cd,
    );
  });

  it("is murmur3_32 of the string's UTF-16LE bytes", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), fc.nat(), (s, seed) => {
        const bytes = new Uint8Array(Buffer.from(s, "utf16le"));
        expect(murmur3(s, seed)).toBe(murmur3Bytes(bytes, seed));
      }),
      { numRuns: 300 },
    );
  });

  it("returns an unsigned 32-bit integer and spreads similar keys", () => {
    const top = new Set<number>();
    for (let i = 0; i < 4096; i++) {
      const h = murmur3(`user:${i}`);
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
      top.add(h >>> 28);
    }
    expect(top.size).toBe(16); // sequential keys reach every sixteenth of the ring
  });
});
