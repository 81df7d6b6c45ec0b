/** A source of uniform random numbers in [0, 1). Injected so simulations can be seeded. */
export interface RandomSource {
  /** A float in [0, 1). */
  next(): number;
}

/** A source of unique ids. Injected so a simulation's ids repeat with its seed. */
export interface IdSource {
  /** A new id, unique within this source, optionally starting with `prefix`. */
  next(prefix?: string): string;
}

/**
 * A seeded pseudo-random source (sfc32): fast, 128-bit state, good enough for simulation
 * and jitter, not for secrets.
 */
export function seededRandom(seed: number | string): RandomSource {
  let h = 1779033703 ^ String(seed).length;
  const s = String(seed);
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const mix = (): number => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    h ^= h >>> 16;
    return h >>> 0;
  };
  let a = mix();
  let b = mix();
  let c = mix();
  let d = mix();
  return {
    next(): number {
      a >>>= 0;
      b >>>= 0;
      c >>>= 0;
      d >>>= 0;
      const t = (a + b + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      return (t >>> 0) / 4294967296;
    },
  };
}

/**
 * Ids of the form `<prefix><counter>` (base 36), optionally namespaced so several nodes never
 * collide. Deterministic: the same namespace gives the same sequence.
 * @example sequentialIds("n1.").next("m") // "mn1.1"
 */
export function sequentialIds(namespace = ""): IdSource {
  let n = 0;
  return {
    next(prefix = ""): string {
      n++;
      return `${prefix}${namespace}${n.toString(36)}`;
    },
  };
}

/**
 * Ids made of random characters drawn from `random`: unique across processes when the
 * source is the system's, repeatable when it is seeded.
 */
export function randomIds(random: RandomSource, length = 16): IdSource {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  return {
    next(prefix = ""): string {
      let s = prefix;
      for (let i = 0; i < length; i++) s += alphabet[Math.floor(random.next() * 36)];
      return s;
    },
  };
}
