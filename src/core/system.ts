/**
 * The only file in relaykit that touches real time and real randomness. Everything else
 * receives a {@link Clock}, {@link RandomSource} or {@link IdSource} through its options;
 * a test greps `src/` to keep it so.
 */
import type { Clock, Timer } from "./clock.js";
import type { IdSource, RandomSource } from "./random.js";

interface SystemTimer extends Timer {
  readonly handle: ReturnType<typeof setTimeout>;
  readonly interval: boolean;
}

let timerIds = 0;

/** Node's timers overflow past 2^31 - 1 ms (about 24.8 days) and fire at once; longer waits are chained. */
const MAX_DELAY = 2 ** 31 - 1;

interface LongTimer extends Timer {
  handle: ReturnType<typeof setTimeout>;
  readonly interval: false;
}

function longTimeout(fn: () => void, ms: number, timer: LongTimer): void {
  const step = Math.min(ms, MAX_DELAY);
  timer.handle = setTimeout(() => {
    if (ms > MAX_DELAY) longTimeout(fn, ms - MAX_DELAY, timer);
    else fn();
  }, step);
  timer.handle.unref?.();
}

/** The real clock: `Date.now()` and the host's timers (unref'd, so they never hold a process open). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = { id: ++timerIds, interval: false } as LongTimer;
    longTimeout(fn, Math.max(0, ms), timer);
    return timer;
  },
  setInterval(fn, ms) {
    const handle = setInterval(fn, Math.min(Math.max(1, ms), MAX_DELAY));
    handle.unref?.();
    return { id: ++timerIds, handle, interval: true } as SystemTimer;
  },
  clear(timer) {
    if (!timer) return;
    const t = timer as SystemTimer;
    if (t.handle === undefined) return;
    if (t.interval) clearInterval(t.handle);
    else clearTimeout(t.handle);
  },
};

/** `Math.random()` as a {@link RandomSource}. */
export const systemRandom: RandomSource = { next: () => Math.random() };

/** Process-unique, cluster-unique ids: 9 random bytes (Web Crypto, so browsers too) plus a counter. */
export function systemIds(): IdSource {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(9));
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  let base = "";
  for (const b of bytes) base += alphabet[b & 63];
  let n = 0;
  return {
    next(prefix = ""): string {
      n++;
      return `${prefix}${base}${n.toString(36)}`;
    },
  };
}

/** Real time in ms with sub-millisecond resolution, for measurements (benchmarks, load signal). */
export const monotonicNow = (): number => performance.now();
