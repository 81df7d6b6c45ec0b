import { z } from "zod";
import type { UserId } from "../core/ids.js";
import { parseOptions } from "../core/options.js";
import type { ClientFrame, ErrorFrame } from "../protocol/schemas.js";
import { type Bucket, fullBucket, type RateLimit, takeTokens, waitFor } from "./token-bucket.js";

/** What a frame is counted as by the rate limits (pings are never limited). */
export type RateKind = "send" | "receipt" | "typing" | "subscribe";

/** One rate limit per kind of frame; `false` turns that one off. */
export type RateLimits = { readonly [K in RateKind]?: RateLimit | false };

/** Built-in rate limits of a gateway (token buckets on the gateway's clock). */
export interface RateLimitOptions {
  /** Limits of each connection. */
  readonly perConnection?: RateLimits;
  /** Limits of each user, over all its connections on this gateway. */
  readonly perUser?: RateLimits;
  /**
   * `rate_limited` answers a connection may get before it is closed with
   * {@link CLOSE_CODES}.flooding: a client that ignores `retryAfterMs` is cut off.
   * `false` never closes. @default { perSecond: 10, burst: 100 }
   */
  readonly refusals?: RateLimit | false;
}

/** The default per-connection rate limits: far above what a person types, below a flood. */
export const DEFAULT_CONNECTION_RATES: Readonly<Record<RateKind, RateLimit>> = Object.freeze({
  // A burst is handled at once: 2,000 stalled other users' messages by seconds (e2e.flood).
  send: { perSecond: 200, burst: 100 },
  receipt: { perSecond: 2000, burst: 20_000 },
  typing: { perSecond: 10, burst: 50 },
  subscribe: { perSecond: 1000, burst: 10_000 },
});

/** The default per-user rate limits (all of a user's connections on one gateway). */
export const DEFAULT_USER_RATES: Readonly<Record<RateKind, RateLimit>> = Object.freeze({
  send: { perSecond: 400, burst: 200 },
  receipt: { perSecond: 4000, burst: 40_000 },
  typing: { perSecond: 20, burst: 100 },
  subscribe: { perSecond: 2000, burst: 20_000 },
});

const DEFAULT_REFUSALS: RateLimit = Object.freeze({ perSecond: 10, burst: 100 });

const rate = z.strictObject({
  perSecond: z.number().gt(0),
  burst: z.number().int().min(1),
});
const rateOrOff = z.union([z.literal(false), rate]);
const rates = z
  .strictObject({
    send: rateOrOff.optional(),
    receipt: rateOrOff.optional(),
    typing: rateOrOff.optional(),
    subscribe: rateOrOff.optional(),
  })
  .optional();
// Not strict: the gateway hands over its whole options object.
const schema = z.object({
  rateLimits: z
    .union([
      z.literal(false),
      z.strictObject({ perConnection: rates, perUser: rates, refusals: rateOrOff.optional() }),
    ])
    .optional(),
  maxConnectionsPerUser: z.number().int().min(1).default(16),
  maxDevicesPerUser: z.number().int().min(1).default(16),
  maxSubscriptionsPerConnection: z.number().int().min(1).default(10_000),
  maxPendingFrames: z.number().int().min(1).default(1024),
});

/** The abuse limits a gateway takes in its options (each validated at construction). */
export interface LimitOptions {
  /** Token-bucket rate limits; `false` turns every one off. @default see {@link DEFAULT_CONNECTION_RATES} */
  readonly rateLimits?: RateLimitOptions | false;
  /** Open connections per user on this gateway; one more is closed with {@link CLOSE_CODES}.tooMany. @default 16 */
  readonly maxConnectionsPerUser?: number;
  /** Distinct device ids a user may link; a new one past it is closed with {@link CLOSE_CODES}.tooMany. @default 16 */
  readonly maxDevicesPerUser?: number;
  /** Users one connection may be subscribed to; a subscribe past it gets `limit_exceeded`. @default 10000 */
  readonly maxSubscriptionsPerConnection?: number;
  /** Frames of one connection waiting to be handled; more get `overloaded`. @default 1024 */
  readonly maxPendingFrames?: number;
}

/** A connection's limit state, kept by the gateway beside the connection. */
export interface ConnectionLimits {
  readonly buckets: Map<RateKind, Bucket>;
  refusals: Bucket | undefined;
  /** Users this connection is subscribed to (for the subscription cap). */
  readonly subscribed: Set<string>;
}

/** What {@link LimitGuard.check} decided about a frame. */
export interface Verdict {
  /** The error frame answering the refused frame. */
  readonly refusal: ErrorFrame;
  /** True when the connection kept flooding and should be closed. */
  readonly close: boolean;
}

interface UserLimits {
  refs: number;
  readonly buckets: Map<RateKind, Bucket>;
}

/**
 * The gateway's abuse limits: token buckets per connection and per user for each kind of
 * frame, the subscription cap, and the caps checked when a connection opens. Pure over the
 * time it is given: no clock, no timers.
 */
export class LimitGuard {
  /** Open connections per user. */
  readonly maxConnectionsPerUser: number;
  /** Distinct device ids per user. */
  readonly maxDevicesPerUser: number;
  /** Frames of one connection waiting to be handled. */
  readonly maxPendingFrames: number;
  readonly #maxSubs: number;
  readonly #conn: Readonly<Record<RateKind, RateLimit | false>>;
  readonly #user: Readonly<Record<RateKind, RateLimit | false>>;
  readonly #refusals: RateLimit | false;
  readonly #off: boolean;
  readonly #users = new Map<UserId, UserLimits>();

  /** @throws RelayError `invalid_option` */
  constructor(options: LimitOptions) {
    const o = parseOptions(schema, options, "Gateway");
    this.maxConnectionsPerUser = o.maxConnectionsPerUser;
    this.maxDevicesPerUser = o.maxDevicesPerUser;
    this.maxPendingFrames = o.maxPendingFrames;
    this.#maxSubs = o.maxSubscriptionsPerConnection;
    const r = o.rateLimits;
    this.#off = r === false;
    const given = r === false || r === undefined ? {} : r;
    this.#conn = { ...DEFAULT_CONNECTION_RATES, ...stripUndefined(given.perConnection) };
    this.#user = { ...DEFAULT_USER_RATES, ...stripUndefined(given.perUser) };
    this.#refusals = given.refusals ?? DEFAULT_REFUSALS;
  }

  /** A new connection's state; counts it against its user. */
  attach(userId: UserId): ConnectionLimits {
    let u = this.#users.get(userId);
    if (!u) {
      u = { refs: 0, buckets: new Map() };
      this.#users.set(userId, u);
    }
    u.refs++;
    return { buckets: new Map(), refusals: undefined, subscribed: new Set() };
  }

  /** A connection went away; its user's buckets go with its last connection. */
  detach(userId: UserId): void {
    const u = this.#users.get(userId);
    if (u && --u.refs <= 0) this.#users.delete(userId);
  }

  /**
   * Checks one parsed frame against the limits at time `now`. Allowed: takes its tokens (and
   * records its subscriptions) and answers `undefined`. Refused: nothing changes but the
   * connection's count of refusals, and the answer says how to refuse it.
   */
  check(
    state: ConnectionLimits,
    userId: UserId,
    frame: ClientFrame,
    now: number,
  ): Verdict | undefined {
    const kind = kindOf(frame);
    if (kind === undefined) return undefined;
    const ref = frame.type === "send" ? frame.id : undefined;
    let fresh: string[] | undefined;
    if (frame.type === "presence.subscribe") {
      fresh = frame.users.filter((u) => !state.subscribed.has(u));
      if (state.subscribed.size + new Set(fresh).size > this.#maxSubs) {
        return this.#refuse(state, now, {
          type: "error",
          code: "limit_exceeded",
          message: `a connection may subscribe to at most ${this.#maxSubs} users`,
          path: "users",
        });
      }
    }
    if (!this.#off) {
      const cost =
        frame.type === "presence.subscribe" || frame.type === "presence.unsubscribe"
          ? frame.users.length
          : 1;
      const u = this.#users.get(userId);
      const connLimit = this.#conn[kind];
      const userLimit = this.#user[kind];
      const cb = connLimit ? bucketOf(state.buckets, kind, connLimit, now) : undefined;
      const ub = userLimit && u ? bucketOf(u.buckets, kind, userLimit, now) : undefined;
      const wait = Math.max(
        cb && connLimit ? waitFor(cb, connLimit, now, cost) : 0,
        ub && userLimit ? waitFor(ub, userLimit, now, cost) : 0,
      );
      if (wait > 0) {
        const refusal: ErrorFrame = {
          type: "error",
          code: "rate_limited",
          message: `too many ${kind} frames; retry after ${wait} ms`,
          retryAfterMs: wait,
        };
        return this.#refuse(state, now, ref === undefined ? refusal : { ...refusal, ref });
      }
      if (cb && connLimit) takeTokens(cb, connLimit, now, cost);
      if (ub && userLimit) takeTokens(ub, userLimit, now, cost);
    }
    if (fresh) for (const user of fresh) state.subscribed.add(user);
    else if (frame.type === "presence.unsubscribe") {
      for (const user of frame.users) state.subscribed.delete(user);
    }
    return undefined;
  }

  #refuse(state: ConnectionLimits, now: number, refusal: ErrorFrame): Verdict {
    const limit = this.#refusals;
    if (this.#off || limit === false) return { refusal, close: false };
    state.refusals ??= fullBucket(limit, now);
    if (waitFor(state.refusals, limit, now, 1) > 0) return { refusal, close: true };
    takeTokens(state.refusals, limit, now, 1);
    return { refusal, close: false };
  }
}

function kindOf(frame: ClientFrame): RateKind | undefined {
  switch (frame.type) {
    case "send":
      return "send";
    case "receipt":
      return "receipt";
    case "typing":
      return "typing";
    case "presence.subscribe":
    case "presence.unsubscribe":
      return "subscribe";
    default:
      return undefined;
  }
}

function bucketOf(map: Map<RateKind, Bucket>, kind: RateKind, limit: RateLimit, now: number) {
  let b = map.get(kind);
  if (!b) {
    b = fullBucket(limit, now);
    map.set(kind, b);
  }
  return b;
}

function stripUndefined(
  r: { readonly [K in RateKind]?: RateLimit | false | undefined } | undefined,
): RateLimits {
  const out: { [K in RateKind]?: RateLimit | false } = {};
  if (r) {
    for (const [k, v] of Object.entries(r)) if (v !== undefined) out[k as RateKind] = v;
  }
  return out;
}
