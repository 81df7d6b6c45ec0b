/**
 * The only file in relaykit that touches real time and real randomness. Everything else
 * receives a {@link Clock}, {@link RandomSource} or {@link IdSource} through its options;
 * a test greps `src/` to keep it so.
 */
import { randomBytes } from "node:crypto";
import type { Clock, Timer } from "./clock.js";
import type { IdSource, RandomSource } from "./random.js";

interface SystemTimer extends Timer {
  readonly handle: ReturnType<typeof setTimeout>;
  readonly interval: boolean;
}

let timerIds = 0;

/** The real clock: `Date.now()` and the host's timers (unref'd, so they never hold a process open). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, ms);
    handle.unref?.();
    return { id: ++timerIds, handle, interval: false } as SystemTimer;
  },
  setInterval(fn, ms) {
    const handle = setInterval(fn, ms);
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

/** Process-unique, cluster-unique ids: 12 random bytes as base64url plus a counter. */
export function systemIds(): IdSource {
  const base = randomBytes(9).toString("base64url");
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
