/** One token-bucket limit: `perSecond` tokens come back each second, up to `burst` held. */
export interface RateLimit {
  /** Tokens regained per second (> 0). */
  readonly perSecond: number;
  /** Most tokens held at once: the largest burst allowed after a quiet spell (>= 1). */
  readonly burst: number;
}

/** A token bucket's state: plain data, changed only by {@link takeTokens}. */
export interface Bucket {
  /** Tokens held as of `at`. */
  tokens: number;
  /** When `tokens` was last brought up to date (clock ms). */
  at: number;
}

/** A full bucket at time `now`. */
export function fullBucket(limit: RateLimit, now: number): Bucket {
  return { tokens: limit.burst, at: now };
}

/**
 * How long (ms) until `cost` tokens are available in `bucket` at time `now`; 0 means they
 * are available now. Pure: no clock, no timers; time comes in as `now`. A cost above the
 * burst is counted as the burst (one large frame is allowed after a quiet spell).
 */
export function waitFor(bucket: Bucket, limit: RateLimit, now: number, cost: number): number {
  const need = Math.min(cost, limit.burst);
  const have = tokensAt(bucket, limit, now);
  if (have >= need) return 0;
  return Math.max(1, Math.ceil(((need - have) * 1000) / limit.perSecond));
}

/**
 * Takes `cost` tokens at time `now` (the caller checked {@link waitFor} first); brings the
 * bucket up to date on the way.
 */
export function takeTokens(bucket: Bucket, limit: RateLimit, now: number, cost: number): void {
  bucket.tokens = tokensAt(bucket, limit, now) - Math.min(cost, limit.burst);
  bucket.at = Math.max(bucket.at, now);
}

function tokensAt(bucket: Bucket, limit: RateLimit, now: number): number {
  const elapsed = Math.max(0, now - bucket.at);
  return Math.min(limit.burst, bucket.tokens + (elapsed * limit.perSecond) / 1000);
}
