import { monitorEventLoopDelay } from "node:perf_hooks";
import { z } from "zod";
import { type Clock, parseOptions, systemClock, type Timer, TypedEmitter } from "../core/index.js";

/**
 * The part of `perf_hooks.IntervalHistogram` the load signal reads (values in ns).
 * Injected so tests drive it by hand instead of measuring the real event loop.
 */
export interface DelayHistogram {
  enable(): boolean | undefined;
  disable(): boolean | undefined;
  reset(): void;
  percentile(p: number): number;
  readonly count?: number;
}

/** Builds the histogram a {@link LoadSignal} samples; `false` turns event-loop delay off. */
export type DelayHistogramFactory = () => DelayHistogram;

/** The real event-loop delay histogram (`perf_hooks.monitorEventLoopDelay`, 20 ms resolution). */
export const eventLoopDelayHistogram: DelayHistogramFactory = () =>
  monitorEventLoopDelay({ resolution: 20 });

/**
 * A histogram fed by hand, for tests: `record(ms)` adds a delay sample.
 * @example const h = new ManualDelayHistogram(); new LoadSignal({ histogram: () => h });
 */
export class ManualDelayHistogram implements DelayHistogram {
  #samples: number[] = [];
  enabled = false;
  enable(): boolean {
    const was = this.enabled;
    this.enabled = true;
    return !was;
  }
  disable(): boolean {
    const was = this.enabled;
    this.enabled = false;
    return was;
  }
  reset(): void {
    this.#samples = [];
  }
  /** Adds one event-loop delay sample, in milliseconds. */
  record(ms: number): void {
    this.#samples.push(ms * 1e6);
  }
  get count(): number {
    return this.#samples.length;
  }
  percentile(p: number): number {
    if (this.#samples.length === 0) return 0;
    const s = [...this.#samples].sort((a, b) => a - b);
    const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
    return s[i]!;
  }
}

/** Options of {@link LoadSignal}. */
export interface LoadSignalOptions {
  /** @default systemClock */
  clock?: Clock;
  /** Histogram factory, or `false` to judge by queue depth only. @default eventLoopDelayHistogram */
  histogram?: DelayHistogramFactory | false;
  /** Current queue depth (entries waiting); the queue wires its own. @default () => 0 */
  depth?: () => number;
  /** Degraded when the event-loop delay percentile reaches this many ms. @default 100 */
  delayThresholdMs?: number;
  /** Which percentile of the event-loop delay to compare. @default 99 */
  percentile?: number;
  /** Degraded when the depth reaches this. @default 1_000_000 */
  depthThreshold?: number;
  /** Leaves degraded mode only below `threshold * recoverRatio` for both signals (hysteresis). @default 0.8 */
  recoverRatio?: number;
  /** How often {@link LoadSignal.poll} and the periodic sampler actually sample. @default 500 */
  sampleIntervalMs?: number;
}

const optionsSchema = z.object({
  clock: z.custom<Clock>().optional(),
  histogram: z
    .union([z.custom<DelayHistogramFactory>((v) => typeof v === "function"), z.literal(false)])
    .optional(),
  depth: z.custom<() => number>((v) => typeof v === "function").optional(),
  delayThresholdMs: z.number().positive().default(100),
  percentile: z.number().gt(0).max(100).default(99),
  depthThreshold: z.int().min(1).default(1_000_000),
  recoverRatio: z.number().gt(0).max(1).default(0.8),
  sampleIntervalMs: z.number().positive().default(500),
});

/** Events of {@link LoadSignal}. */
export interface LoadSignalEvents {
  /** The degraded state changed. */
  change: (degraded: boolean) => void;
}

/**
 * Says whether the process is overloaded: event-loop delay (a percentile of
 * `monitorEventLoopDelay`) or queue depth at or above its threshold. Under load the
 * delivery queue defers low-lane entries and the gateway may shed volatile frames.
 * @remarks It samples lazily ({@link poll}) or periodically ({@link start}) through the
 * Clock; {@link setDegraded} overrides both for tests and operators.
 */
export class LoadSignal extends TypedEmitter<LoadSignalEvents> {
  readonly #clock: Clock;
  readonly #histogram: DelayHistogram | undefined;
  readonly #depth: () => number;
  readonly #opts: z.output<typeof optionsSchema>;
  #measured = false;
  #override: boolean | undefined;
  #lastSample = Number.NEGATIVE_INFINITY;
  #timer: Timer | undefined;
  #lastDelayMs = 0;

  constructor(options: LoadSignalOptions = {}) {
    super();
    this.#opts = parseOptions(optionsSchema, options, "LoadSignal");
    this.#clock = options.clock ?? systemClock;
    this.#depth = options.depth ?? (() => 0);
    const factory = options.histogram === undefined ? eventLoopDelayHistogram : options.histogram;
    this.#histogram = factory === false ? undefined : factory();
    this.#histogram?.enable();
  }

  /** Whether the process is degraded now (the override, else the last sample). */
  get degraded(): boolean {
    return this.#override ?? this.#measured;
  }

  /** True while {@link setDegraded} overrides the measurement. */
  get overridden(): boolean {
    return this.#override !== undefined;
  }

  /** The event-loop delay percentile at the last sample, in ms. */
  get lastDelayMs(): number {
    return this.#lastDelayMs;
  }

  /** Forces degraded (`true`) or normal (`false`); `undefined` returns to measuring. */
  setDegraded(value: boolean | undefined): void {
    const before = this.degraded;
    this.#override = value;
    if (this.degraded !== before) this.emit("change", this.degraded);
  }

  /** Samples now: reads and resets the histogram, reads the depth, updates the state. */
  sample(): boolean {
    const before = this.degraded;
    const o = this.#opts;
    this.#lastSample = this.#clock.now();
    const h = this.#histogram;
    this.#lastDelayMs = h && (h.count ?? 1) > 0 ? h.percentile(o.percentile) / 1e6 : 0;
    h?.reset();
    const depth = this.#depth();
    const ratio = this.#measured ? o.recoverRatio : 1;
    this.#measured =
      this.#lastDelayMs >= o.delayThresholdMs * ratio || depth >= o.depthThreshold * ratio;
    if (this.degraded !== before) this.emit("change", this.degraded);
    return this.degraded;
  }

  /**
   * Samples if the sample interval has passed since the last one; returns the state.
   * @param now the Clock's time, when the caller has just read it @default clock.now()
   */
  poll(now = this.#clock.now()): boolean {
    if (now - this.#lastSample >= this.#opts.sampleIntervalMs) this.sample();
    return this.degraded;
  }

  /**
   * The queue depth below which a degraded signal calls load normal again
   * (`depthThreshold × recoverRatio`).
   */
  get normalDepth(): number {
    return this.#opts.depthThreshold * this.#opts.recoverRatio;
  }

  /** How often sampling happens, in ms. */
  get sampleIntervalMs(): number {
    return this.#opts.sampleIntervalMs;
  }

  /** Samples every `sampleIntervalMs` through the Clock until {@link stop}. */
  start(): void {
    if (this.#timer) return;
    this.#timer = this.#clock.setInterval(() => this.sample(), this.#opts.sampleIntervalMs);
  }

  /** Stops periodic sampling. */
  stop(): void {
    this.#clock.clear(this.#timer);
    this.#timer = undefined;
  }

  /** Stops sampling and releases the histogram. */
  close(): void {
    this.stop();
    this.#histogram?.disable();
  }

  /** True when a volatile frame (typing) should be dropped now: volatile and degraded. */
  shouldShed(volatile: boolean): boolean {
    return volatile && this.degraded;
  }
}
