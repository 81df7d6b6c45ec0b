import { z } from "zod";
import { type Clock, RelayError, systemClock, type Timer } from "../../core/index.js";
import type { RedisClient } from "./lua-script.js";

/** How a Redis adapter retries a failed command. */
export interface RedisRetryPolicy {
  /** Total tries, the first included. @default 3 */
  readonly attempts: number;
  /** Delay before the second try; doubles each time. @default 50 */
  readonly minDelayMs: number;
  /** Cap on one delay. @default 1000 */
  readonly maxDelayMs: number;
  /**
   * The most one operation may take, every try included: past it the call fails with
   * `store_unavailable` (retryable) instead of waiting on a Redis that does not answer.
   * @default 2000
   */
  readonly timeoutMs: number;
}

/** The default {@link RedisRetryPolicy}: 3 tries, 50 ms then 100 ms apart, 2 s in all. */
export const DEFAULT_REDIS_RETRY: RedisRetryPolicy = Object.freeze({
  attempts: 3,
  minDelayMs: 50,
  maxDelayMs: 1000,
  timeoutMs: 2000,
});

/** Redis replies that mean "try again later", not "your command is wrong". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/;

/**
 * True for failures worth retrying: a lost connection, a timeout, a server that is loading
 * or failing over. A `ReplyError` for a bad command or script is not.
 */
export function isTransientRedisError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === "ReplyError") return TRANSIENT_REPLY.test(e.message);
  return true;
}

/**
 * Runs one idempotent Redis operation: retries transient failures with exponential backoff
 * through `clock`, then turns any failure into `RelayError("store_unavailable")` whose
 * `cause` is the ioredis error. The whole operation, tries and backoff included, gets
 * `retry.timeoutMs`: past it, it fails with `store_unavailable` at once (a paused or
 * unreachable Redis never holds a caller longer). This is the one layer that retries.
 * @throws RelayError `store_unavailable`
 */
export async function callRedis<T>(
  what: string,
  fn: () => Promise<T>,
  clock: Clock,
  retry: RedisRetryPolicy = DEFAULT_REDIS_RETRY,
): Promise<T> {
  const timeoutMs = retry.timeoutMs ?? DEFAULT_REDIS_RETRY.timeoutMs;
  const deadline = clock.now() + timeoutMs;
  let timer: Timer | undefined;
  let over = false;
  const expired = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => {
      over = true;
      reject(
        new RelayError("store_unavailable", `${what}: no answer from Redis within ${timeoutMs} ms`),
      );
    }, timeoutMs);
  });
  const attempts = tries(what, fn, clock, retry, deadline, () => over);
  // Whichever loses the race settles unobserved: keep it from being an unhandled rejection.
  attempts.catch(() => {});
  expired.catch(() => {});
  try {
    return await Promise.race([attempts, expired]);
  } finally {
    clock.clear(timer);
  }
}

async function tries<T>(
  what: string,
  fn: () => Promise<T>,
  clock: Clock,
  retry: RedisRetryPolicy,
  deadline: number,
  over: () => boolean,
): Promise<T> {
  let delay = retry.minDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof RelayError) throw e;
      const last = attempt >= retry.attempts || clock.now() + delay >= deadline || over();
      if (last || !isTransientRedisError(e)) {
        const msg = e instanceof Error ? e.message : String(e);
        throw new RelayError(
          "store_unavailable",
          `${what} failed after ${attempt} attempt(s): ${msg}`,
          { cause: e },
        );
      }
      await new Promise<void>((resolve) => clock.setTimeout(resolve, delay));
    }
    delay = Math.min(delay * 2, retry.maxDelayMs);
  }
}

/**
 * What every Redis adapter does with its client: each call retried on transient errors under
 * the adapter's clock and policy, and named `<Adapter>.<op>` in the error it ends in.
 */
export class RedisCalls {
  readonly #name: string;
  readonly #clock: Clock;
  readonly #retry: RedisRetryPolicy;

  constructor(
    name: string,
    options: {
      readonly clock?: Clock | undefined;
      readonly retry?: { [K in keyof RedisRetryPolicy]?: number | undefined } | undefined;
    },
  ) {
    this.#name = name;
    this.#clock = options.clock ?? systemClock;
    this.#retry = retryPolicy(options.retry);
  }

  /** Runs operation `op` through {@link callRedis}. */
  run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return callRedis(`${this.#name}.${op}`, fn, this.#clock, this.#retry);
  }
}

/** The key prefix rule: no `{` or `}`, since the prefix goes inside our hash tags. */
export const PREFIX_PATTERN = /^[^{}\s]+$/;

/** Zod pieces shared by every Redis adapter's options. */
export const redisCommonShape = {
  prefix: z
    .string()
    .regex(PREFIX_PATTERN, "a non-empty string without braces or spaces")
    .default("rk"),
  clock: z.custom<Clock>(isClock, "a Clock").optional(),
  retry: z
    .object({
      attempts: z.int().min(1).optional(),
      minDelayMs: z.number().min(0).optional(),
      maxDelayMs: z.number().min(0).optional(),
      timeoutMs: z.int().min(1).optional(),
    })
    .optional(),
};

/** Fills a partial retry option with {@link DEFAULT_REDIS_RETRY}. */
export function retryPolicy(
  partial: { [K in keyof RedisRetryPolicy]?: number | undefined } | undefined,
): RedisRetryPolicy {
  return {
    attempts: partial?.attempts ?? DEFAULT_REDIS_RETRY.attempts,
    minDelayMs: partial?.minDelayMs ?? DEFAULT_REDIS_RETRY.minDelayMs,
    maxDelayMs: partial?.maxDelayMs ?? DEFAULT_REDIS_RETRY.maxDelayMs,
    timeoutMs: partial?.timeoutMs ?? DEFAULT_REDIS_RETRY.timeoutMs,
  };
}

/** True for an object that looks like an ioredis client (has `evalsha` and `publish`). */
export function isRedisClient(v: unknown): boolean {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as { evalsha?: unknown }).evalsha === "function" &&
    typeof (v as { publish?: unknown }).publish === "function"
  );
}

function isClock(v: unknown): boolean {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as { now?: unknown }).now === "function" &&
    typeof (v as { setTimeout?: unknown }).setTimeout === "function"
  );
}

/** What every Redis adapter takes; adapters with more options extend it. */
export interface RedisAdapterOptions {
  /** A connected ioredis client (single server or Cluster). Not closed by the adapter. */
  redis: RedisClient;
  /** Namespace of every key (each adapter's class docs give its key layout). @default "rk" */
  prefix?: string;
  /** Paces retries. @default systemClock */
  clock?: Clock;
  /** Retries of transient failures, and the time one operation may take. @default 3 tries, 50 ms backoff, 2 s */
  retry?: Partial<RedisRetryPolicy>;
}

/** The zod schema of {@link RedisAdapterOptions}, for adapters' option validation. */
export const redisAdapterSchema = z.object({
  redis: z.custom<RedisClient>(isRedisClient, "an ioredis client"),
  ...redisCommonShape,
});
