import { RelayError } from "../core/errors.js";
import type { RandomSource } from "../core/random.js";

/**
 * How long a packet or frame takes on a link, in virtual ms: a fixed number, a uniform range,
 * an exponential distribution (`mean`, shifted by `min`), or a function of the simulation's
 * random source.
 */
export type Delay =
  | number
  | { readonly min: number; readonly max: number }
  | { readonly mean: number; readonly min?: number }
  | ((random: RandomSource) => number);

/**
 * The faults of one link. Probabilities are per packet, in [0, 1].
 * @remarks On client links `duplicate` and `reorder` are ignored (a WebSocket is reliable and
 * ordered within a connection) and `drop` breaks the connection: the client reconnects.
 */
export interface LinkFaults {
  /** @default { min: 1, max: 5 } */
  readonly delay?: Delay;
  /** Probability that a packet is lost. @default 0 */
  readonly drop?: number;
  /** Probability that a packet arrives twice. @default 0 */
  readonly duplicate?: number;
  /** Probability that a packet is held back so later ones overtake it. @default 0 */
  readonly reorder?: number;
  /** The most a reordered packet is held back, in ms. @default 50 */
  readonly reorderMs?: number;
}

/** {@link LinkFaults} with every default applied. */
export interface ResolvedFaults {
  readonly delay: Delay;
  readonly drop: number;
  readonly duplicate: number;
  readonly reorder: number;
  readonly reorderMs: number;
}

/** A link that delivers after 1-5 ms and never loses anything. */
export const RELIABLE: ResolvedFaults = Object.freeze({
  delay: Object.freeze({ min: 1, max: 5 }),
  drop: 0,
  duplicate: 0,
  reorder: 0,
  reorderMs: 50,
});

/** Applies defaults and checks ranges. @throws RelayError `invalid_option` */
export function resolveFaults(
  f: LinkFaults | undefined,
  base: ResolvedFaults = RELIABLE,
): ResolvedFaults {
  const out: ResolvedFaults = {
    delay: f?.delay ?? base.delay,
    drop: f?.drop ?? base.drop,
    duplicate: f?.duplicate ?? base.duplicate,
    reorder: f?.reorder ?? base.reorder,
    reorderMs: f?.reorderMs ?? base.reorderMs,
  };
  for (const k of ["drop", "duplicate", "reorder"] as const) {
    const p = out[k];
    if (!(p >= 0 && p <= 1)) {
      throw new RelayError(
        "invalid_option",
        `Simulation: Expected \`${k}\` to be a probability in [0, 1], got \`${String(p)}\``,
        { path: k },
      );
    }
  }
  if (!(out.reorderMs >= 0)) {
    throw new RelayError("invalid_option", "Simulation: Expected `reorderMs` to be >= 0", {
      path: "reorderMs",
    });
  }
  return out;
}

/** Draws one delay (whole ms, >= 0) from a {@link Delay}. */
export function sampleDelay(d: Delay, random: RandomSource): number {
  let ms: number;
  if (typeof d === "number") ms = d;
  else if (typeof d === "function") ms = d(random);
  else if ("max" in d) ms = d.min + random.next() * (d.max - d.min);
  else ms = (d.min ?? 0) - d.mean * Math.log(1 - random.next());
  return ms > 0 ? Math.round(ms) : 0;
}
