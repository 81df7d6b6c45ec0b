import { z } from "zod";
import type { RandomSource } from "../core/index.js";

/**
 * A backoff policy with p-retry's option names and meaning, so one vocabulary configures
 * both the real-time store retries (p-retry itself) and the virtual-time redelivery.
 */
export interface RetryPolicy {
  /** How many times to retry after the first attempt (total attempts = `retries + 1`). */
  readonly retries: number;
  /** The exponential factor. */
  readonly factor: number;
  /** Milliseconds before the first retry. */
  readonly minTimeout: number;
  /** The most milliseconds between two attempts (`Infinity` for no cap). */
  readonly maxTimeout: number;
  /** Multiplies each delay by a random factor in [1, 2). */
  readonly randomize: boolean;
}

/** The zod schema of a partial {@link RetryPolicy}, for option parsing. */
export const retryPolicySchema = z.strictObject({
  retries: z.int().min(0).optional(),
  factor: z.number().min(0).optional(),
  minTimeout: z.number().min(0).optional(),
  maxTimeout: z.number().min(0).optional(),
  randomize: z.boolean().optional(),
});

/**
 * p-retry's own defaults (retries 10, factor 2, minTimeout 1 s, no cap, no jitter).
 * @see https://github.com/sindresorhus/p-retry#options
 */
export const P_RETRY_DEFAULTS: RetryPolicy = Object.freeze({
  retries: 10,
  factor: 2,
  minTimeout: 1000,
  maxTimeout: Number.POSITIVE_INFINITY,
  randomize: false,
});

/** Fills a partial policy from `base`; a non-positive factor becomes 1, as in p-retry. */
export function resolveRetryPolicy(
  partial: Partial<RetryPolicy> | undefined,
  base: RetryPolicy = P_RETRY_DEFAULTS,
): RetryPolicy {
  const p = { ...base, ...stripUndefined(partial ?? {}) };
  if (!(p.factor > 0)) p.factor = 1;
  return Object.freeze(p);
}

/**
 * The delay in ms before retry number `attempt` (1-based: the wait after the `attempt`-th
 * try failed), computed exactly as p-retry 7 does:
 * `min(maxTimeout, round(minTimeout * factor^(attempt-1) * (randomize ? 1 + random : 1)))`.
 * Pure, so redelivery can follow the policy under a virtual clock.
 * @param random only read when `policy.randomize` is true
 */
export function retryDelay(policy: RetryPolicy, attempt: number, random?: RandomSource): number {
  const n = Math.max(1, attempt);
  const jitter = policy.randomize ? 1 + (random ? random.next() : 0) : 1;
  const timeout = Math.round(jitter * policy.minTimeout * policy.factor ** (n - 1));
  return Math.min(timeout, policy.maxTimeout);
}

/**
 * The full schedule of a policy without jitter: the delay before each of its `retries`
 * retries, in order.
 * @example retrySchedule({ ...P_RETRY_DEFAULTS, retries: 3 }) // [1000, 2000, 4000]
 */
export function retrySchedule(policy: RetryPolicy, random?: RandomSource): number[] {
  const out: number[] = [];
  for (let i = 1; i <= policy.retries; i++) out.push(retryDelay(policy, i, random));
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
