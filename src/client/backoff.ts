import type { RandomSource } from "../core/random.js";

/** How the client waits between reconnection attempts. */
export interface ReconnectPolicy {
  /** Delay before the first retry, in ms. @default 500 */
  readonly initialDelay: number;
  /** Upper bound of any delay, in ms. @default 30000 */
  readonly maxDelay: number;
  /** Growth factor per failed attempt. @default 2 */
  readonly factor: number;
  /**
   * Fraction of the delay taken off at random, so a server restart is not met by every
   * client at the same instant. 0 disables it. @default 0.3
   */
  readonly jitter: number;
}

/** The default {@link ReconnectPolicy}. */
export const DEFAULT_RECONNECT: ReconnectPolicy = Object.freeze({
  initialDelay: 500,
  maxDelay: 30_000,
  factor: 2,
  jitter: 0.3,
});

/**
 * The delay before reconnection attempt `attempt` (0 for the first retry): exponential,
 * capped, with "full-ish" jitter taken off the top. Pure apart from `random`.
 */
export function backoffDelay(
  attempt: number,
  policy: ReconnectPolicy,
  random: RandomSource,
): number {
  const raw = policy.initialDelay * policy.factor ** Math.max(0, attempt);
  const capped = Math.min(policy.maxDelay, raw);
  return Math.round(capped * (1 - policy.jitter * random.next()));
}
