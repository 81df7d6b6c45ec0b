import type { EventEmitter } from "eventemitter3";
import pRetry from "p-retry";
import { z } from "zod";
import {
  type ClientMessageId,
  type Clock,
  type DeviceKey,
  type Envelope,
  type GroupId,
  type MessageId,
  type Priority,
  parseOptions,
  type RandomSource,
  RelayError,
  systemClock,
  systemRandom,
  type Timer,
  TypedEmitter,
  type UserId,
} from "../core/index.js";
import { ackWatchStep, type ProbeFn, type UnresponsiveFn } from "./ack-watch.js";
import { LoadSignal } from "./load-signal.js";
import {
  type AppendResult,
  isSyncQueueStore,
  MemoryQueueStore,
  type QueuedMessage,
  type QueueStore,
  type SentRecord,
  type SyncQueueStore,
} from "./queue-store.js";
import {
  P_RETRY_DEFAULTS,
  type RetryPolicy,
  resolveRetryPolicy,
  retryDelay,
  retryPolicySchema,
} from "./retry-policy.js";
import { matchRoster } from "./roster-match.js";
import {
  overQuota,
  QUOTA_CHECK_ABOVE,
  SENDER_QUOTA_DEFAULTS,
  type SenderQuota,
  tally,
  type Usage,
} from "./sender-quota.js";

/**
 * Why an entry failed: its time-to-live ran out, every attempt (over all connections) went
 * unacked, or (a group post) the device's queue was full so it never got an entry.
 */
export type FailReason =
  | "ttl_expired"
  | "attempts_exhausted"
  | "recipient_queue_full"
  | "device_unlinked";

/** Pushes one message towards a device's current session. It may be lost; only an ack clears the entry. */
export type TransmitFn = (device: DeviceKey, envelope: Envelope, attempt: number) => void;

/** Told once per (message, device) that failed, so the router can send a `failed` receipt to the sender. */
export type FailedFn = (envelope: Envelope, device: DeviceKey, reason: FailReason) => void;

/** The answer to {@link DeliveryQueue.enqueue}. */
export type EnqueueResult =
  /**
   * Stored. `skipped`: recipient devices whose queues were full, left out (the send is not
   * refused for the others; the caller reports them failed to the sender).
   */
  | { readonly ok: true; readonly skipped?: readonly DeviceKey[] }
  | {
      readonly ok: false;
      readonly code: "recipient_queue_full";
      readonly full: readonly DeviceKey[];
    }
  /**
   * The sender already has its quota waiting for these devices (see `perSender`): nothing
   * was stored; the sender may retry once they have taken some.
   */
  | { readonly ok: false; readonly code: "quota_exceeded"; readonly over: readonly DeviceKey[] }
  /**
   * The same (sender, client id) was accepted concurrently (on another node): nothing was
   * stored, and `record` is the original send to answer with.
   */
  | { readonly ok: false; readonly code: "duplicate"; readonly record: SentRecord };

/** Per-call options of {@link DeliveryQueue.enqueue}. */
export interface EnqueueOptions {
  /**
   * Whether a recipient device is connected now; unset, or `undefined` for a device, keeps
   * what the queue was told. Called during the enqueue only.
   */
  readonly online?: (device: DeviceKey) => boolean | undefined;
  /** Records the sent receipt for dedupe (sender, client id). @default true */
  readonly remember?: boolean;
  /**
   * The envelope's id was minted just now (the router's are), so no device holds an entry
   * of it: the store need not look for one. Wrong only if ids repeat. @default false
   */
  readonly fresh?: boolean;
}

/** Redelivery and time-to-live of one priority lane. */
export interface LaneOptions {
  /** Redelivery policy (p-retry names); merged over the queue-wide `retry`. */
  readonly retry?: Partial<RetryPolicy>;
}

/** Options of {@link DeliveryQueue}. */
export interface DeliveryQueueOptions {
  /** Pushes a message towards a device's session (the router's callback). */
  readonly transmit: TransmitFn;
  /** Told when an entry fails; the router sends `failed` receipts from here. */
  readonly onFailed?: FailedFn;
  /** Told when a connected device's transmissions passed their ack timeout unacked (see {@link ProbeFn}). */
  readonly onProbe?: ProbeFn;
  /**
   * Told when a connected device stopped acking (ack timeout plus `ackGraceMs`): close its
   * connection; its next one gets the redelivery (see {@link UnresponsiveFn}).
   */
  readonly onUnresponsive?: UnresponsiveFn;
  /**
   * How long after a transmission's ack timeout (the lane's retry delay) a connected device
   * may still ack it before it counts as unresponsive. @default 10_000
   */
  readonly ackGraceMs?: number;
  /** Where entries and dedupe records live. @default new MemoryQueueStore() */
  readonly store?: QueueStore;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Jitter for `randomize`. @default systemRandom */
  readonly random?: RandomSource;
  /**
   * Redelivery policy for every lane: `retries` + 1 transmissions at most, over all the
   * device's connections (a message is sent once per connection, again only on the next
   * one); the delays are each transmission's ack timeout. @default { retries: 10, factor: 2, minTimeout: 1000, maxTimeout: 60_000, randomize: false } */
  readonly retry?: Partial<RetryPolicy>;
  /** Per-lane overrides. */
  readonly lanes?: Partial<Record<Priority, LaneOptions>>;
  /** How long an entry may wait unacked before `ttl_expired`. @default 30 days */
  readonly ttlMs?: number;
  /** Most entries one device may have queued; more is refused with `recipient_queue_full`. @default 10_000 */
  readonly maxPerDevice?: number;
  /**
   * Most one sender may have waiting for one device (see {@link SenderQuota}); more is
   * refused to that sender with `quota_exceeded`, so a flood never fills the device's queue
   * for its other correspondents. Counted over what this queue holds in memory (on a shared
   * store: this node's share). `false` turns it off. @default { count: 2000, bytes: 16 MiB }
   */
  readonly perSender?: Partial<SenderQuota> | false;
  /**
   * Most unacked transmissions in flight per connected device. `1` gives strict FIFO at the
   * device even over a lossy link. A reconnect sends this many at once, the rest as acks
   * come. @default 16
   */
  readonly window?: number;
  /**
   * Transmission order across lanes for one device: `"fifo"` keeps arrival order (FIFO per
   * device, whatever the lane) except in degraded mode (which lasts until every deferred
   * entry is released, see `releaseBacklog`); `"priority"` always sends high, then normal,
   * then low. Within a lane it is always FIFO. @default "fifo"
   */
  readonly order?: "fifo" | "priority";
  /**
   * Several nodes' queues share this store (Redis). Then an entry may be acked through
   * another node: before a retry the queue drops entries the store no longer holds, and an
   * entry is only reported failed if this queue's removal from the store actually took it
   * (so a message delivered elsewhere, or failed by another node, is never reported twice).
   * @default false
   */
  readonly sharedStore?: boolean;
  /** How long (sender, client message id) is remembered for dedupe. @default 24 hours */
  readonly dedupeWindowMs?: number;
  /** The load signal (degraded mode). @default a LoadSignal on event-loop delay and this queue's backlog */
  readonly load?: LoadSignal;
  /**
   * How deferred low-lane entries go out once the load signal says normal again: one at a
   * time, only while {@link DeliveryQueue.backlog} is below this, instead of all at once.
   * @remarks Degraded mode (low lane held, high and normal first) begins when the load signal
   * says degraded and ends only when no device with room in its window still waits for
   * entries it deferred: until then the queue keeps degraded order (new low-lane entries wait
   * behind the deferred ones) and releases them oldest-device-first as acks make room below
   * this ceiling. Releasing them therefore never refills the link by itself faster than acks
   * drain it, and a high-lane message never queues behind a flood of released low ones.
   * A device whose window is full does not hold degraded order (its own acks pace its
   * deferred entries), so one device that stops acking cannot hold the queue in it.
   * Outside degraded mode the order is plain FIFO per device again (`order: "fifo"`).
   * @default the load signal's {@link LoadSignal.normalDepth} (depthThreshold × recoverRatio):
   * the backlog it calls normal, so a release never tips it back into degraded mode
   */
  readonly releaseBacklog?: number;
  /**
   * Real-time retries (p-retry) of a store call that threw a transient error, or `false`.
   * @default { retries: 3, factor: 2, minTimeout: 20, maxTimeout: 500 }
   */
  readonly storeRetry?: Partial<RetryPolicy> | false;
}

/** Counters for metrics; monotonic except `depth` and `devices`. */
export interface QueueStats {
  enqueued: number;
  transmitted: number;
  retried: number;
  deferred: number;
  delivered: number;
  expired: number;
  exhausted: number;
  failed: number;
  refused: number;
  /** Entries held now. */
  depth: number;
  /** Devices with state held now. */
  devices: number;
  /** Entries of connected devices in flight or ready (see {@link DeliveryQueue.backlog}). */
  backlog: number;
}

/** Events of {@link DeliveryQueue}, for observability. */
export interface DeliveryQueueEvents {
  enqueued: (device: DeviceKey, envelope: Envelope) => void;
  /** Every transmission, first or redelivery. */
  transmitted: (device: DeviceKey, envelope: Envelope, attempt: number) => void;
  /** A redelivery: a transmission after the first, on a later connection of the device. */
  retried: (device: DeviceKey, envelope: Envelope, attempt: number) => void;
  /** A low-lane entry of a connected device held back by degraded mode. */
  deferred: (device: DeviceKey, envelope: Envelope) => void;
  /** Acked by the device: the entry is gone. */
  delivered: (device: DeviceKey, id: MessageId) => void;
  expired: (device: DeviceKey, envelope: Envelope) => void;
  failed: (device: DeviceKey, envelope: Envelope, reason: FailReason) => void;
  refused: (envelope: Envelope, full: readonly DeviceKey[]) => void;
  /** A connected device's acks are overdue: it was probed (see {@link ProbeFn}). */
  probe: (device: DeviceKey) => void;
  /** A connected device stopped acking (see {@link UnresponsiveFn}). */
  unresponsive: (device: DeviceKey) => void;
  /** A store call failed after its retries (the queue carries on in memory). */
  storeError: (error: unknown, op: string) => void;
  /**
   * A callback threw: `transmit` (counted as a lost transmission), `onFailed` (the entry is
   * still failed and gone) or an enqueue's `online` (the device keeps the queue's state). The
   * queue carries on either way.
   */
  callbackError: (
    error: unknown,
    device: DeviceKey,
    callback: "transmit" | "onFailed" | "online" | "probe" | "unresponsive",
  ) => void;
}

type Event = EventEmitter.EventNames<DeliveryQueueEvents>;
type Listener<T extends Event> = EventEmitter.EventListener<DeliveryQueueEvents, T>;

const DAY = 86_400_000;
const LANE_INDEX: Record<Priority, 0 | 1 | 2> = { high: 0, normal: 1, low: 2 };
const LOW = 2;
/** A device holding more entries than this gets an id index (see `DeviceState.index`). */
const INDEX_ABOVE = 32;
/** A fan-out to more devices than this is queued through a {@link Roster}. */
const ROSTER_ABOVE = 8;
/** Rosters remembered at once (a group whose membership changed starts a new one). */
const ROSTERS_MAX = 256;
const NO_OPTIONS: EnqueueOptions = Object.freeze({});
const ACCEPTED: EnqueueResult = Object.freeze({ ok: true });

const QUEUE_RETRY_DEFAULTS: RetryPolicy = resolveRetryPolicy(
  { maxTimeout: 60_000 },
  P_RETRY_DEFAULTS,
);
const STORE_RETRY_DEFAULTS: RetryPolicy = resolveRetryPolicy(
  { retries: 3, factor: 2, minTimeout: 20, maxTimeout: 500 },
  P_RETRY_DEFAULTS,
);

const fn = <T>() => z.custom<T>((v) => typeof v === "function");
const optionsSchema = z.object({
  transmit: fn<TransmitFn>(),
  onFailed: fn<FailedFn>().optional(),
  onProbe: fn<ProbeFn>().optional(),
  onUnresponsive: fn<UnresponsiveFn>().optional(),
  ackGraceMs: z.number().min(0).default(10_000),
  store: z.custom<QueueStore>((v) => typeof v === "object" && v !== null).optional(),
  clock: z.custom<Clock>((v) => typeof v === "object" && v !== null).optional(),
  random: z.custom<RandomSource>((v) => typeof v === "object" && v !== null).optional(),
  retry: retryPolicySchema.optional(),
  lanes: z
    .strictObject({
      high: z.strictObject({ retry: retryPolicySchema.optional() }).optional(),
      normal: z.strictObject({ retry: retryPolicySchema.optional() }).optional(),
      low: z.strictObject({ retry: retryPolicySchema.optional() }).optional(),
    })
    .optional(),
  ttlMs: z
    .number()
    .positive()
    .default(30 * DAY),
  maxPerDevice: z.int().min(1).default(10_000),
  perSender: z
    .union([
      z.literal(false),
      z.strictObject({ count: z.int().min(1).optional(), bytes: z.int().min(1).optional() }),
    ])
    .optional(),
  window: z.int().min(1).default(16),
  order: z.enum(["fifo", "priority"]).default("fifo"),
  sharedStore: z.boolean().default(false),
  dedupeWindowMs: z.number().min(0).default(DAY),
  load: z.custom<LoadSignal>((v) => v instanceof LoadSignal).optional(),
  releaseBacklog: z.number().positive().optional(),
  storeRetry: z.union([retryPolicySchema, z.literal(false)]).optional(),
});

interface Entry {
  readonly device: DeviceState;
  readonly envelope: Envelope;
  readonly lane: 0 | 1 | 2;
  /** Per-device arrival order: FIFO is by this. */
  readonly ord: number;
  readonly expiresAt: number;
  attempts: number;
  dueAt: number;
  /** Transmitted on the current connection and not yet acked. */
  sent: boolean;
  /** Held back as deferred (low lane, degraded, connected) and still waiting. */
  deferred: boolean;
  /** Was ever deferred: counted (and announced) once, however often it is held back. */
  counted: boolean;
  /** Still in the expiry list. */
  inExpiry: boolean;
  done: boolean;
  /** The roster log message it was materialized from (that one stands in the expiry list for it). */
  readonly shared: Shared | undefined;
}

/**
 * One message of a {@link Roster}'s log: the queue entry of every device attached to the
 * roster whose cursor has not passed it, held once.
 */
interface Shared {
  readonly envelope: Envelope;
  readonly lane: 0 | 1 | 2;
  readonly expiresAt: number;
  readonly roster: Roster;
  /** Its absolute index in the roster's log. */
  readonly at: number;
  /** Devices holding it through the log. */
  holders: number;
  /** Entries materialized from it and not retired yet (see {@link DeliveryQueue.#materialize}). */
  entries: number;
  materialized: Entry[] | undefined;
  /** Still in the expiry list: until it expires, or no device holds it any more. */
  inExpiry: boolean;
}

/**
 * A recipient list of large fan-outs (a group's devices), interned: the messages queued to
 * all of it are kept once, in a log, and each attached device holds the log from its cursor
 * on (fan-out on read). Entries of one device held this way need no object per message.
 */
interface Roster {
  readonly keys: readonly DeviceKey[];
  /** The devices' states, parallel to `keys` (a forgotten one is looked up again). */
  readonly states: DeviceState[];
  /** The lane of its messages (a message of another lane is queued per device). */
  lane: 0 | 1 | 2 | undefined;
  log: Shared[];
  /** Messages before `head` are held by no device. */
  head: number;
  /** The absolute index of `log[0]`. */
  offset: number;
  /** When it was last used (a counter), for eviction. */
  used: number;
}

/** A fan-out's roster, and the index of its device that is not a recipient (or -1). */
interface Place {
  readonly roster: Roster;
  readonly skip: number;
}

interface DeviceState {
  readonly key: DeviceKey;
  online: boolean;
  /** Entries per lane in arrival order; the first `sent[l]` of each are in flight. */
  readonly lanes: [Entry[], Entry[], Entry[]];
  readonly sent: [number, number, number];
  inflight: number;
  /** Entries held, over the lanes. */
  count: number;
  /**
   * Entries by message id, kept only while the device holds more than {@link INDEX_ABOVE}:
   * most devices hold one or two, found faster by a scan of the lane heads, and a Map that
   * keeps filling and emptying costs a rehash each time.
   */
  index: Map<MessageId, Entry> | undefined;
  nextOrd: number;
  timer: Timer | undefined;
  timerAt: number;
  pumping: boolean;
  /** The last enqueue that listed the device (finds a device listed twice). */
  mark: number;
  /** Forgotten by the queue (idle and offline): a newer state stands for the device. */
  detached: boolean;
  /**
   * Attached to a roster: the device also holds its log from `vFrom` on, after every entry
   * of its own (it has none while attached); `[vFrom, vSent)` are in flight.
   */
  roster: Roster | undefined;
  vFrom: number;
  vSent: number;
  /** When each in-flight log message is due for a retry, by absolute index modulo the window. */
  vDue: Float64Array | undefined;
  /** When the current connection was probed for overdue acks (-1: not probed). */
  probedAt: number;
  /** What each sender has waiting here, kept once the quota was checked on a backlog. */
  usage: Map<UserId, Usage> | undefined;
}

/**
 * The outbox: one entry per (message, recipient device) until that device acks it.
 * Transmits to connected devices in FIFO order within a bounded in-flight window, redelivers
 * unacked transmissions on a p-retry-style backoff under the injected Clock, fails entries
 * whose TTL or attempts run out (exactly one `onFailed` each), defers the low lane under
 * load, refuses sends over a per-device cap, and remembers (sender, client id) for dedupe.
 * @remarks The schedule lives in memory; the {@link QueueStore} holds what must survive a
 * restart, and {@link DeliveryQueue.recover} rebuilds the schedule from it.
 * @example
 * const q = new DeliveryQueue({ transmit: (dev, env) => bus.send(dev, env), onFailed });
 * await q.enqueue(envelope, [bobPhone, bobLaptop], { online: (d) => directory.has(d) });
 * await q.ack(bobPhone, [envelope.id]);
 */
export class DeliveryQueue extends TypedEmitter<DeliveryQueueEvents> {
  /** The load signal deciding degraded mode (`queue.load.setDegraded(true)` in tests). */
  readonly load: LoadSignal;
  readonly #store: QueueStore;
  /** The store again when it answers synchronously: the fast path's. */
  readonly #syncStore: SyncQueueStore | undefined;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #transmit: TransmitFn;
  readonly #onFailed: FailedFn | undefined;
  readonly #onProbe: ProbeFn | undefined;
  readonly #onUnresponsive: UnresponsiveFn | undefined;
  readonly #ackGraceMs: number;
  readonly #policies: readonly [RetryPolicy, RetryPolicy, RetryPolicy];
  /** Each lane's wait after a first transmission, when it has no jitter (computed once). */
  readonly #firstDelay: readonly [number | undefined, number | undefined, number | undefined];
  readonly #ttlMs: number;
  readonly #maxPerDevice: number;
  readonly #quota: SenderQuota | undefined;
  readonly #window: number;
  readonly #priorityOrder: boolean;
  readonly #shared: boolean;
  readonly #dedupeWindowMs: number;
  readonly #storeRetry: RetryPolicy | false;
  readonly #ownsLoad: boolean;
  readonly #releaseBacklog: number;
  /**
   * Connected devices with deferred low-lane entries and room in their window, waiting for
   * the release budget (or for load to fall), in the order they started waiting. A device
   * whose window is full is not here: its own acks pump it.
   */
  readonly #blocked = new Set<DeviceState>();
  #releasing = false;
  #releaseAgain = false;
  readonly #devices = new Map<DeviceKey, DeviceState>();
  /** Stamps each synchronous enqueue's devices (see `DeviceState.mark`). */
  #mark = 0;
  readonly #stats: Omit<QueueStats, "depth" | "devices" | "backlog"> = {
    enqueued: 0,
    transmitted: 0,
    retried: 0,
    deferred: 0,
    delivered: 0,
    expired: 0,
    exhausted: 0,
    failed: 0,
    refused: 0,
  };
  #depth = 0;
  /** Entries of connected devices (in flight or ready), deferred ones included. */
  #onlineEntries = 0;
  #deferredWaiting = 0;
  #recheck: Timer | undefined;
  /** Entries ordered by `expiresAt` (arrival order when the TTL is constant); dead ones skipped lazily. */
  #expiry: (Entry | Shared)[] = [];
  /** Rosters by their first device key (see {@link Roster}). */
  #rosters = new Map<DeviceKey, Roster[]>();
  #rosterCount = 0;
  /** The log message whose holders are being counted (see #appendedShared). */
  #counting: Shared | undefined;
  /** Each group's roster (see {@link #placeOf}), least lately changed first. */
  readonly #groupRosters = new Map<GroupId, Roster>();
  /** Where frozen recipient lists went last time. */
  readonly #places = new WeakMap<readonly DeviceKey[], Place>();
  #rosterClock = 0;
  #lastGiven: readonly DeviceKey[] | undefined;
  #lastRoster: Roster | undefined;
  #expHead = 0;
  #expDead = 0;
  #expTimer: Timer | undefined;
  #expTimerAt = Number.POSITIVE_INFINITY;
  #closed = false;
  /** Set while expired entries are being failed, so the list is not compacted underneath. */
  #expiring = false;
  readonly #onLoadChange = (degraded: boolean): void => {
    if (!degraded) this.#release();
  };
  /**
   * Whether the events of every entry (`enqueued`, `transmitted`, `delivered`) have a
   * listener. The hot path checks it before emitting: an emit nobody hears still costs a
   * lookup per entry. Kept up to date by the listener methods below.
   */
  #observed = false;

  constructor(options: DeliveryQueueOptions) {
    super();
    const o = parseOptions(optionsSchema, options, "DeliveryQueue");
    this.#store = options.store ?? new MemoryQueueStore();
    this.#syncStore = isSyncQueueStore(this.#store) ? this.#store : undefined;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#transmit = options.transmit;
    this.#onFailed = options.onFailed;
    this.#onProbe = options.onProbe;
    this.#onUnresponsive = options.onUnresponsive;
    this.#ackGraceMs = o.ackGraceMs;
    const base = resolveRetryPolicy(options.retry, QUEUE_RETRY_DEFAULTS);
    this.#policies = [
      resolveRetryPolicy(options.lanes?.high?.retry, base),
      resolveRetryPolicy(options.lanes?.normal?.retry, base),
      resolveRetryPolicy(options.lanes?.low?.retry, base),
    ];
    const firstDelay = (p: RetryPolicy) => (p.randomize ? undefined : retryDelay(p, 1));
    this.#firstDelay = [
      firstDelay(this.#policies[0]),
      firstDelay(this.#policies[1]),
      firstDelay(this.#policies[2]),
    ];
    this.#ttlMs = o.ttlMs;
    this.#maxPerDevice = o.maxPerDevice;
    this.#quota =
      options.perSender === false
        ? undefined
        : { ...SENDER_QUOTA_DEFAULTS, ...dropUndefined(options.perSender ?? {}) };
    this.#window = o.window;
    this.#priorityOrder = o.order === "priority";
    this.#shared = o.sharedStore;
    this.#dedupeWindowMs = o.dedupeWindowMs;
    this.#storeRetry =
      options.storeRetry === false
        ? false
        : resolveRetryPolicy(options.storeRetry, STORE_RETRY_DEFAULTS);
    this.#ownsLoad = options.load === undefined;
    // Event-loop delay is real time: under a virtual clock it would make runs unrepeatable.
    this.load =
      options.load ??
      new LoadSignal({
        clock: this.#clock,
        depth: () => this.backlog,
        ...(this.#clock === systemClock ? {} : { histogram: false as const }),
      });
    this.#releaseBacklog = o.releaseBacklog ?? this.load.normalDepth;
    this.load.on("change", this.#onLoadChange);
  }

  // ---- listeners (they keep #observed up to date) ---------------------------------------

  override on<T extends Event>(event: T, fn: Listener<T>, context?: unknown): this {
    super.on(event, fn, context);
    return this.#watch();
  }

  override addListener<T extends Event>(event: T, fn: Listener<T>, context?: unknown): this {
    super.addListener(event, fn, context);
    return this.#watch();
  }

  override once<T extends Event>(event: T, fn: Listener<T>, context?: unknown): this {
    super.once(event, fn, context);
    return this.#watch();
  }

  override off<T extends Event>(
    event: T,
    fn?: Listener<T>,
    context?: unknown,
    once?: boolean,
  ): this {
    super.off(event, fn, context, once);
    return this.#watch();
  }

  override removeListener<T extends Event>(
    event: T,
    fn?: Listener<T>,
    context?: unknown,
    once?: boolean,
  ): this {
    super.removeListener(event, fn, context, once);
    return this.#watch();
  }

  override removeAllListeners(event?: Event): this {
    super.removeAllListeners(event);
    return this.#watch();
  }

  #watch(): this {
    this.#observed =
      this.listenerCount("enqueued") > 0 ||
      this.listenerCount("transmitted") > 0 ||
      this.listenerCount("delivered") > 0;
    return this;
  }

  /** The redelivery policy of a lane, after defaults and overrides. */
  policy(lane: Priority): RetryPolicy {
    return this.#policies[LANE_INDEX[lane]];
  }

  /**
   * Queues `envelope` for each recipient device. A device that would exceed `maxPerDevice`
   * is left out (`skipped`); only when every device would, nothing is stored and the answer
   * is `recipient_queue_full` (so the router refuses before the `sent` tick). A sender over
   * its `perSender` quota for a device is refused with `quota_exceeded`. Connected devices get it transmitted at once, in FIFO
   * order behind what they already have.
   * @throws RelayError `store_unavailable` (or the store's own error) when the store fails after its retries
   */
  async enqueue(
    envelope: Envelope,
    recipients: readonly DeviceKey[],
    options: EnqueueOptions = NO_OPTIONS,
  ): Promise<EnqueueResult> {
    const message = this.#admit(envelope);
    const devices = distinct(recipients);
    const over = this.#overQuota(envelope, devices, undefined);
    if (over) return this.#refuseQuota(envelope, over);
    const dedupeUntil = this.#dedupeUntil(message, options);
    const store = this.#store;
    const max = capFor(envelope, this.#maxPerDevice);
    const append = async (to: readonly DeviceKey[], fresh: boolean | undefined) => {
      try {
        // Awaited directly (not through #io) so the common path costs one await.
        // (A retry below may follow a partial write: it does not claim `fresh`.)
        return await store.append(message, to, max, dedupeUntil, fresh);
      } catch (err) {
        return this.#retryIo("append", () => store.append(message, to, max, dedupeUntil), err);
      }
    };
    let result = await append(devices, options.fresh);
    const skipped = skippable(envelope, devices, result);
    if (skipped) {
      // The full devices go without (see EnqueueResult), the others get it.
      const rest = devices.filter((d) => !skipped.has(d));
      result = await append(rest, options.fresh);
      return withSkipped(this.#appended(message, rest, result, options.online), skipped);
    }
    return this.#appended(message, devices, result, options.online);
  }

  /**
   * {@link enqueue}, answered before returning: the router's fast path over an in-process
   * store (see {@link sync}). A store error is not retried (retries wait in real time).
   * @throws RelayError `internal` when the store does not answer synchronously; the store's error as {@link enqueue} does
   */
  enqueueSync(
    envelope: Envelope,
    recipients: readonly DeviceKey[],
    options: EnqueueOptions = NO_OPTIONS,
  ): EnqueueResult {
    const store = this.#syncStore ?? this.#noSyncStore("enqueueSync");
    const message = this.#admit(envelope);
    // A few devices: one listed twice is found by a scan, their states as they are queued.
    // A fan-out: each device's state is found once, now (one listed twice dropped on the way).
    let devices: readonly DeviceKey[] = recipients;
    let states: DeviceState[] | undefined;
    const place =
      recipients.length > ROSTER_ABOVE ? this.#placeOf(message.envelope, recipients) : undefined;
    const roster = place?.roster;
    const skip = place?.skip ?? -1;
    if (roster) {
      // An interned list of distinct devices: their states are at hand.
      const all = roster.states;
      for (let i = 0; i < all.length; i++) {
        if (i !== skip && all[i]!.detached) all[i] = this.#state(roster.keys[i]!);
      }
      if (skip >= 0) {
        // The sender's device has a state only as a roster member: none when idle, as if it
        // had not been looked at.
        const sender = all[skip]!;
        if (!sender.detached && sender.count === 0 && !sender.online) this.#forget(sender);
      }
      // (The recipients are the roster's devices, or all but the one at `skip`.)
      states = skip < 0 ? all : [...all.slice(0, skip), ...all.slice(skip + 1)];
      devices = skip < 0 ? roster.keys : recipients;
    } else if (recipients.length <= 8) devices = distinct(recipients);
    else {
      states = new Array<DeviceState>(recipients.length);
      let mark = ++this.#mark;
      let twice = false;
      for (let i = 0; i < recipients.length; i++) {
        const state = this.#state(recipients[i]!);
        if (state.mark === mark) twice = true;
        state.mark = mark;
        states[i] = state;
      }
      if (twice) {
        mark = ++this.#mark;
        const kept: DeviceState[] = [];
        for (const state of states) {
          if (state.mark === mark) continue;
          state.mark = mark;
          kept.push(state);
        }
        states = kept;
        devices = kept.map((state) => state.key);
      }
    }
    const over = this.#overQuota(envelope, devices, states);
    if (over) {
      if (states) this.#forgetIdle(states);
      return this.#refuseQuota(envelope, over);
    }
    const max = capFor(message.envelope, this.#maxPerDevice);
    let result = this.#appendSync(store, message, devices, max, options, states);
    const skipped = skippable(message.envelope, devices, result);
    if (skipped) {
      // The full devices go without (see EnqueueResult), the others get it.
      const all = devices;
      devices = all.filter((d) => !skipped.has(d));
      states = states?.filter((_, i) => !skipped.has(all[i]!));
      result = this.#appendSync(store, message, devices, max, options, states);
      if (!result.ok && states) this.#forgetIdle(states);
      return withSkipped(
        this.#appended(message, devices, result, options.online, states, true),
        skipped,
      );
    }
    if (!result.ok && states) this.#forgetIdle(states);
    if (
      roster &&
      result.ok &&
      result.added === devices.length &&
      !this.#observed &&
      !this.#isDegraded() &&
      // One lane per log: another lane only once the log holds nothing.
      (roster.lane === (LANE_INDEX[message.envelope.priority] ?? 1) ||
        roster.head === roster.log.length)
    ) {
      return this.#appendedShared(message, roster, skip, options.online);
    }
    return this.#appended(message, devices, result, options.online, states, true);
  }

  /**
   * Where a fan-out goes through a roster: a group message to the group's roster (its
   * devices, or all of them but the sender's: `skip`), learnt from the lists the messages
   * come with (see {@link matchRoster}); another fan-out to the roster of exactly its list.
   * `undefined` when a device is listed twice.
   */
  #placeOf(envelope: Envelope, recipients: readonly DeviceKey[]): Place | undefined {
    const group = "group" in envelope.to ? envelope.to.group : undefined;
    if (group === undefined) {
      const roster = this.#roster(recipients);
      return roster && { roster, skip: -1 };
    }
    // A frozen list seen before (a router's cached recipients of one sender) cannot have
    // changed: its place holds while the roster is still the group's.
    const frozen = Object.isFrozen(recipients);
    const current = this.#groupRosters.get(group);
    if (frozen && current) {
      const seen = this.#places.get(recipients);
      if (seen?.roster === current) {
        current.used = ++this.#rosterClock;
        return seen;
      }
    }
    let place: Place | undefined;
    if (current) {
      const match = matchRoster(current.keys, recipients);
      if (match?.kind === "same") place = { roster: current, skip: -1 };
      else if (match?.kind === "skip") place = { roster: current, skip: match.skip };
      else if (match?.kind === "union" && new Set(match.keys).size === match.keys.length) {
        place = { roster: this.#newRoster(match.keys), skip: match.skip };
      }
    }
    if (!place) {
      if (new Set(recipients).size !== recipients.length) return undefined;
      place = { roster: this.#newRoster(recipients.slice()), skip: -1 };
    }
    if (place.roster !== current) {
      if (this.#groupRosters.size >= ROSTERS_MAX) {
        // The half posted to least lately goes; their devices keep reading the logs they
        // are attached to.
        const byUse = [...this.#groupRosters].sort((a, b) => a[1].used - b[1].used);
        for (let k = 0; k < byUse.length >> 1; k++) this.#groupRosters.delete(byUse[k]![0]);
      }
      this.#groupRosters.set(group, place.roster);
    }
    place.roster.used = ++this.#rosterClock;
    if (frozen) this.#places.set(recipients, place);
    return place;
  }

  #newRoster(keys: readonly DeviceKey[]): Roster {
    return {
      keys,
      states: keys.map((k) => this.#state(k)),
      lane: undefined,
      log: [],
      head: 0,
      offset: 0,
      used: 0,
    };
  }

  /**
   * The interned roster of a fan-out's recipients (the same devices in the same order), or
   * `undefined` when a device is listed twice.
   */
  #roster(recipients: readonly DeviceKey[]): Roster | undefined {
    // A frozen list seen last time (a router's cached group recipients) cannot have changed.
    if (recipients === this.#lastGiven && this.#lastRoster) {
      this.#lastRoster.used = ++this.#rosterClock;
      return this.#lastRoster;
    }
    const r = this.#internRoster(recipients);
    if (r) r.used = ++this.#rosterClock;
    if (r && Object.isFrozen(recipients)) {
      this.#lastGiven = recipients;
      this.#lastRoster = r;
    }
    return r;
  }

  #internRoster(recipients: readonly DeviceKey[]): Roster | undefined {
    const first = recipients[0]!;
    const n = recipients.length;
    const candidates = this.#rosters.get(first);
    if (candidates) {
      for (const r of candidates) {
        const keys = r.keys;
        if (keys.length !== n) continue;
        let i = 1;
        while (i < n && keys[i] === recipients[i]) i++;
        if (i === n) return r;
      }
    }
    if (new Set(recipients).size !== n) return undefined;
    if (this.#rosterCount >= ROSTERS_MAX) this.#evictRosters();
    const r = this.#newRoster(Object.isFrozen(recipients) ? recipients : recipients.slice());
    const list = this.#rosters.get(first);
    if (list) list.push(r);
    else this.#rosters.set(first, [r]);
    this.#rosterCount++;
    return r;
  }

  /**
   * Forgets the half of the rosters used least lately. A forgotten roster's devices keep
   * reading its log; the next message to its list starts a new one.
   */
  #evictRosters(): void {
    const all: Roster[] = [];
    for (const list of this.#rosters.values()) all.push(...list);
    all.sort((a, b) => a.used - b.used);
    const gone = new Set(all.slice(0, all.length >> 1));
    for (const [first, list] of this.#rosters) {
      const kept = list.filter((r) => !gone.has(r));
      if (kept.length === 0) this.#rosters.delete(first);
      else this.#rosters.set(first, kept);
    }
    this.#rosterCount -= gone.size;
    if (this.#lastRoster && gone.has(this.#lastRoster)) {
      this.#lastGiven = undefined;
      this.#lastRoster = undefined;
    }
  }

  /**
   * {@link #appended} for a fresh message to a roster's devices, all added by the store: one
   * log message; each device attached to the roster (or with nothing queued, attached now)
   * holds it through the log, any other device gets an entry of its own.
   */
  #appendedShared(
    message: QueuedMessage,
    roster: Roster,
    skip: number,
    online: EnqueueOptions["online"],
  ): EnqueueResult {
    const env = message.envelope;
    const lane = LANE_INDEX[env.priority] ?? 1;
    roster.lane = lane;
    const at = roster.offset + roster.log.length;
    const shared: Shared = {
      envelope: env,
      lane,
      expiresAt: message.expiresAt,
      roster,
      at,
      holders: 0,
      entries: 0,
      materialized: undefined,
      inExpiry: true,
    };
    roster.log.push(shared);
    this.#pushExpiry(shared);
    const { keys, states } = roster;
    // Every device holds it before any callback runs (see #appended). Until they are
    // counted, the log keeps it (a materialization below trims the log).
    this.#counting = shared;
    let held = 0;
    for (let i = 0; i < keys.length; i++) {
      let state = states[i]!;
      if (i === skip) {
        // The sender's device: not a recipient. Attached, it must not hold this log message:
        // with nothing queued its cursor moves past it, else its messages become its own.
        if (!state.detached && state.roster === roster) {
          if (state.vFrom === at) {
            state.vFrom = at + 1;
            state.vSent = at + 1;
          } else this.#materialize(state, at);
        }
        continue;
      }
      if (state.detached) {
        state = this.#state(keys[i]!);
        states[i] = state;
      }
      if (state.roster !== roster && state.count === 0) {
        state.roster = roster;
        state.vFrom = at;
        state.vSent = at;
      }
      if (state.roster === roster) {
        held++;
        state.count++;
        if (state.usage) tally(state.usage, env, 1);
        if (state.online) this.#onlineEntries++;
      } else {
        this.#insert(state, message, true, false);
      }
    }
    shared.holders = held;
    this.#counting = undefined;
    this.#depth += held;
    this.#stats.enqueued += held;
    if (held === 0) this.#sharedDead(shared);
    const now = this.#clock.now();
    for (let i = 0; i < keys.length; i++) {
      if (i === skip) continue;
      const key = keys[i]!;
      const state = states[i]!;
      // (A callback may have had a state forgotten since: it holds nothing more then.)
      if (state.detached) continue;
      const wasOnline = state.online;
      const isOnline = online ? (this.#askOnline(online, key) ?? wasOnline) : wasOnline;
      if (isOnline && !wasOnline) this.#connect(state);
      else if (!isOnline && wasOnline) this.#disconnect(state);
      else if (
        // What #pump would do when this message is all the device has waiting: send it.
        isOnline &&
        state.roster === roster &&
        state.vSent === at &&
        state.inflight < this.#window &&
        !state.pumping &&
        this.#blocked.size === 0 &&
        !this.load.degraded &&
        !this.#closed
      ) {
        this.#sendShared(state, roster, now);
      } else this.#pump(state, this.#window);
    }
    this.#trim(roster);
    if (this.#blocked.size > 0) this.#release();
    return ACCEPTED;
  }

  /**
   * Gives an attached device entries of its own for the log messages it holds (in order, the
   * in-flight ones still in flight with their due times) and detaches it: every path but the
   * plain fan-out, transmission and in-order ack works on entries.
   */
  #materialize(state: DeviceState, upTo?: number): void {
    const r = state.roster;
    if (!r) return;
    state.roster = undefined;
    // (`upTo`: a log message being queued that the device is not a recipient of.)
    const end = upTo ?? r.offset + r.log.length;
    const w = this.#window;
    for (let at = state.vFrom; at < end; at++) {
      const shared = r.log[at - r.offset]!;
      const sent = at < state.vSent;
      const e: Entry = {
        device: state,
        envelope: shared.envelope,
        lane: shared.lane,
        ord: state.nextOrd++,
        expiresAt: shared.expiresAt,
        attempts: sent ? 1 : 0,
        dueAt: sent ? state.vDue![at % w]! : 0,
        sent,
        deferred: false,
        counted: false,
        inExpiry: false,
        done: false,
        shared,
      };
      state.lanes[e.lane].push(e);
      if (sent) state.sent[e.lane]++;
      shared.holders--;
      shared.entries++;
      if (shared.materialized) shared.materialized.push(e);
      else shared.materialized = [e];
    }
    state.vFrom = end;
    state.vSent = end;
    if (state.count > INDEX_ABOVE) {
      state.index = new Map(entriesOf(state).map((x) => [x.envelope.id, x]));
    }
    this.#trim(r);
  }

  /** Drops the log messages at the head of a roster's log that no device holds any more. */
  #trim(r: Roster): void {
    const log = r.log;
    let head = r.head;
    while (head < log.length && log[head]!.holders === 0 && log[head] !== this.#counting) head++;
    if (head === log.length) {
      r.offset += log.length;
      r.log = [];
      r.head = 0;
    } else if (head > 1024 && head * 2 > log.length) {
      r.log = log.slice(head);
      r.offset += head;
      r.head = 0;
    } else r.head = head;
  }

  /** A log message no device holds, in either form: out of the expiry list. */
  #sharedDead(shared: Shared): void {
    shared.materialized = undefined;
    if (shared.inExpiry) {
      shared.inExpiry = false;
      this.#expDead++;
    }
  }

  /**
   * The devices for which the sender of `envelope` is at its quota, or `undefined`. Only
   * devices holding a backlog are looked at (see {@link QUOTA_CHECK_ABOVE}).
   */
  #overQuota(
    envelope: Envelope,
    devices: readonly DeviceKey[],
    states: readonly DeviceState[] | undefined,
  ): DeviceKey[] | undefined {
    const quota = this.#quota;
    // (A system message is never refused: membership changes must arrive.)
    if (!quota || envelope.system !== undefined) return undefined;
    let over: DeviceKey[] | undefined;
    for (let i = 0; i < devices.length; i++) {
      const state = states?.[i] ?? this.#devices.get(devices[i]!);
      if (!state || state.detached || state.count < QUOTA_CHECK_ABOVE) continue;
      if (overQuota(this.#usageOf(state).get(envelope.from), envelope, quota)) {
        over ??= [];
        over.push(devices[i]!);
      }
    }
    return over;
  }

  /** What each sender has waiting for a device: counted once, then kept up to date. */
  #usageOf(state: DeviceState): Map<UserId, Usage> {
    if (state.usage) return state.usage;
    const usage = new Map<UserId, Usage>();
    for (const e of entriesOf(state)) tally(usage, e.envelope, 1);
    const r = state.roster;
    if (r) {
      for (let at = state.vFrom; at < r.offset + r.log.length; at++) {
        tally(usage, r.log[at - r.offset]!.envelope, 1);
      }
    }
    state.usage = usage;
    return usage;
  }

  #refuseQuota(envelope: Envelope, over: readonly DeviceKey[]): EnqueueResult {
    this.#stats.refused++;
    this.emit("refused", envelope, over);
    return { ok: false, code: "quota_exceeded", over };
  }

  /** After a refused append: the states built for it that hold nothing go again. */
  #forgetIdle(states: readonly DeviceState[]): void {
    for (const state of states) if (state.count === 0 && !state.online) this.#forget(state);
  }

  /**
   * Removes entries the device acked (`delivered` or `read`); their retries stop. Unknown ids
   * are ignored. Returns how many entries this queue held and removed.
   */
  async ack(device: DeviceKey, ids: readonly MessageId[]): Promise<number> {
    const removed = this.#acked(device, ids);
    if (ids.length === 0) return removed;
    try {
      // Awaited directly (no closure on the common path).
      await this.#store.remove(device, ids);
    } catch (err) {
      await this.#retryIo("remove", () => this.#store.remove(device, ids), err);
    }
    return removed;
  }

  /**
   * {@link ack}, answered before returning (see {@link sync}).
   * @throws RelayError `internal` when the store does not answer synchronously; the store's error as {@link ack} does
   */
  ackSync(device: DeviceKey, ids: readonly MessageId[]): number {
    const store = this.#syncStore ?? this.#noSyncStore("ackSync");
    const removed = this.#acked(device, ids);
    if (ids.length === 0) return removed;
    try {
      store.removeSync(device, ids);
    } catch (err) {
      throw this.#storeFailure(err, "remove");
    }
    return removed;
  }

  /**
   * A device (re)connected: its unacked entries go out at once, in FIFO order, as many as the
   * window holds (low lane held back while degraded), the rest as it acks; backoff resumes
   * from each entry's attempt count.
   */
  deviceConnected(device: DeviceKey): void | Promise<void> {
    if (!this.#shared) {
      this.#connect(this.#state(device));
      return;
    }
    // On a shared store the device's entries may have been queued by other nodes: load them
    // first, then flush everything in order.
    return this.recover({ devices: [device] }).then(
      () => this.#connect(this.#state(device)),
      (e: unknown) => {
        this.#connect(this.#state(device));
        throw e;
      },
    );
  }

  /** A device went away: its retries pause (its TTLs keep running). */
  deviceDisconnected(device: DeviceKey): void {
    const state = this.#devices.get(device);
    if (state) this.#disconnect(state);
  }

  /** Whether the queue believes a device is connected. */
  isOnline(device: DeviceKey): boolean {
    return this.#devices.get(device)?.online ?? false;
  }

  /**
   * The sent receipt of an earlier send with this (sender, client message id) inside the dedupe
   * window, or `undefined`. The router calls it before assigning a sequence number.
   */
  async checkDuplicate(
    sender: DeviceKey,
    clientId: ClientMessageId,
  ): Promise<SentRecord | undefined> {
    return this.#io("getSent", () => this.#store.getSent(sender, clientId, this.#clock.now()));
  }

  /**
   * {@link checkDuplicate}, answered before returning (see {@link sync}).
   * @throws RelayError `internal` when the store does not answer synchronously; the store's error as {@link checkDuplicate} does
   */
  checkDuplicateSync(sender: DeviceKey, clientId: ClientMessageId): SentRecord | undefined {
    const store = this.#syncStore ?? this.#noSyncStore("checkDuplicateSync");
    try {
      return store.getSentSync(sender, clientId, this.#clock.now());
    } catch (err) {
      throw this.#storeFailure(err, "getSent");
    }
  }

  /**
   * This queue, when every call of the outbox can be answered synchronously: its store is a
   * {@link SyncQueueStore} (the memory store, shared by in-process nodes or not; the shared
   * store's extra work happens on retries and connects, which stay async). The router then calls
   * {@link enqueueSync}, {@link ackSync} and {@link checkDuplicateSync} and skips the promises.
   */
  get sync(): DeliveryQueue | undefined {
    return this.#syncStore !== undefined ? this : undefined;
  }

  /**
   * Remembers the sent receipt of (sender, client message id) for the dedupe window; the first
   * record wins and is returned. {@link enqueue} calls it unless told `remember: false`.
   */
  async remember(
    sender: DeviceKey,
    clientId: ClientMessageId,
    record: SentRecord,
  ): Promise<SentRecord> {
    const now = this.#clock.now();
    return this.#io("putSent", () =>
      this.#store.putSent(sender, clientId, record, now + this.#dedupeWindowMs, now),
    );
  }

  /**
   * Expires stored entries that no queue holds in memory (a shared store: entries of devices
   * offline everywhere, or left by a node that died), so their senders still get `failed`
   * with `ttl_expired`. Scans the store; run it now and then from every node: an entry is
   * reported only by the node whose removal took it. Returns how many it expired.
   */
  async expireStored(): Promise<number> {
    const now = this.#clock.now();
    let expired = 0;
    for (const device of await this.#io("devices", () => this.#store.devices())) {
      const list = await this.#io("list", () => this.#store.list(device));
      const held = this.#devices.get(device);
      if (held) this.#materialize(held);
      for (const m of list) {
        if (m.expiresAt > now || (held && this.#find(held, m.envelope.id))) continue;
        const n = await this.#io("remove", () => this.#store.remove(device, [m.envelope.id]));
        if (n === 0) continue;
        expired++;
        this.#stats.failed++;
        this.#stats.expired++;
        this.emit("expired", device, m.envelope);
        this.emit("failed", device, m.envelope, "ttl_expired");
        try {
          this.#onFailed?.(m.envelope, device, "ttl_expired");
        } catch (err) {
          this.emit("callbackError", err, device, "onFailed");
        }
      }
    }
    return expired;
  }

  /**
   * Rebuilds the in-memory schedule from the store after a restart: every stored entry is
   * held again (devices offline until {@link deviceConnected} or an `online` predicate says
   * otherwise; attempts start over). Entries already held are left alone. Returns how many were added.
   * With `devices`, only those devices are loaded (no scan of the store): a node of a cluster
   * takes over the entries of a device that connected to it.
   */
  async recover(
    options: { online?: (device: DeviceKey) => boolean; devices?: readonly DeviceKey[] } = {},
  ): Promise<number> {
    const only = options.devices;
    const keys = only ?? (await this.#io("devices", () => this.#store.devices()));
    let added = 0;
    for (const key of keys) {
      const list = await this.#io("list", () => this.#store.list(key));
      if (list.length === 0 && !this.#devices.has(key)) continue;
      const state = this.#state(key);
      for (const m of list) if (this.#insert(state, m, only !== undefined)) added++;
    }
    if (only === undefined) this.#rebuildExpiry();
    for (const key of keys) {
      const state = this.#devices.get(key);
      if (!state) continue;
      if (options.online?.(key)) this.#connect(state);
      else this.#pump(state, this.#window);
    }
    this.#release();
    return added;
  }

  /**
   * Forgets a device's entries here without touching the store: another node serves the
   * device now. Its timers stop and nothing is failed or counted delivered; the entries stay
   * in the store for whoever {@link recover}s them. Returns how many entries were dropped.
   */
  release(device: DeviceKey): number {
    const state = this.#devices.get(device);
    if (!state) return 0;
    this.#materialize(state);
    const n = state.count;
    for (const e of entriesOf(state)) this.#remove(e);
    this.#clearTimer(state);
    this.#forget(state);
    this.#blocked.delete(state);
    this.#compactExpiry();
    this.#release();
    return n;
  }

  /**
   * Fails every entry a device holds here with `reason` (each sender is told, for this device
   * only) and removes them from the store. Returns how many entries were failed.
   */
  dropDevice(device: DeviceKey, reason: FailReason): number {
    const state = this.#devices.get(device);
    if (!state) return 0;
    this.#materialize(state);
    const list = [...entriesOf(state)];
    for (const e of list) if (!e.done) this.#fail(e, reason);
    return list.length;
  }

  /** True when a volatile frame (typing) should be shed now: it is volatile and load is high. */
  shouldShed(volatile: boolean): boolean {
    return this.load.shouldShed(volatile);
  }

  /** How many entries a device has queued here. */
  pending(device: DeviceKey): number {
    return this.#devices.get(device)?.count ?? 0;
  }

  /** Entries held now, over all devices. */
  get depth(): number {
    return this.#depth;
  }

  /**
   * Entries of connected devices that are in flight or ready to go: the work the consumer
   * side has not absorbed yet. The default load signal watches this, not {@link depth}:
   * offline backlogs and deferred entries are not load, and counting deferred entries
   * would keep degraded mode on forever.
   */
  get backlog(): number {
    return this.#onlineEntries - this.#deferredWaiting;
  }

  /**
   * Whether the queue is in degraded mode: the load signal says degraded, or devices with
   * room still wait for their deferred entries (see `releaseBacklog`). Low-lane entries wait
   * meanwhile.
   */
  get degraded(): boolean {
    return this.#isDegraded();
  }

  /** Counters for metrics (a snapshot). */
  get stats(): QueueStats {
    return {
      ...this.#stats,
      depth: this.#depth,
      devices: this.#devices.size,
      backlog: this.backlog,
    };
  }

  /** Stops every timer and detaches from the load signal. Entries stay in the store. */
  close(): void {
    this.#closed = true;
    for (const s of this.#devices.values()) this.#clearTimer(s);
    this.#clock.clear(this.#expTimer);
    this.#expTimer = undefined;
    this.#clock.clear(this.#recheck);
    this.#recheck = undefined;
    this.#blocked.clear();
    this.load.off("change", this.#onLoadChange);
    if (this.#ownsLoad) this.load.close();
  }

  // ---- enqueue and ack, shared by the async and sync faces ------------------------------

  /** Checks the queue is open, samples the load, and builds the stored form of `envelope`. */
  /** One synchronous store append; a store failure forgets the idle states it made. */
  #appendSync(
    store: SyncQueueStore,
    message: QueuedMessage,
    devices: readonly DeviceKey[],
    max: number,
    options: EnqueueOptions,
    states: DeviceState[] | undefined,
  ): AppendResult {
    try {
      return store.appendSync(
        message,
        devices,
        max,
        this.#dedupeUntil(message, options),
        options.fresh,
      );
    } catch (err) {
      if (states) this.#forgetIdle(states);
      throw this.#storeFailure(err, "append");
    }
  }

  #admit(envelope: Envelope): QueuedMessage {
    if (this.#closed) throw new RelayError("closed", "DeliveryQueue: closed");
    const now = this.#clock.now();
    this.load.poll(now);
    return { envelope, enqueuedAt: now, expiresAt: now + this.#ttlMs };
  }

  #dedupeUntil(message: QueuedMessage, options: EnqueueOptions): number | undefined {
    return options.remember === false ? undefined : message.enqueuedAt + this.#dedupeWindowMs;
  }

  #noSyncStore(method: string): never {
    throw new RelayError(
      "internal",
      `DeliveryQueue: ${method} needs a store that answers synchronously (a SyncQueueStore); use the async method`,
    );
  }

  /** What follows the store's append: the answer, and on success the entries and first transmissions. */
  #appended(
    message: QueuedMessage,
    devices: readonly DeviceKey[],
    result: AppendResult,
    online: EnqueueOptions["online"],
    states?: readonly DeviceState[],
    /** Nothing ran since the store's append (the synchronous face): see `fresh` below. */
    appendedNow = false,
  ): EnqueueResult {
    if (!result.ok) {
      if ("duplicate" in result) return { ok: false, code: "duplicate", record: result.duplicate };
      this.#stats.refused++;
      this.emit("refused", message.envelope, result.full);
      return { ok: false, code: "recipient_queue_full", full: result.full };
    }
    // Every device new to the store holds no entry of it here either: no search needed. Only
    // when nothing ran since the append: across an await a recover() may have loaded it.
    const fresh = appendedNow && result.added === devices.length;
    if (devices.length === 1) {
      // The common 1:1 case: no list of states.
      const key = devices[0]!;
      let state = states?.[0];
      if (state === undefined || state.detached) state = this.#state(key);
      this.#insert(state, message, true, !fresh);
      if (!state.detached) this.#settle(state, key, online);
      if (this.#blocked.size > 0) this.#release();
      return ACCEPTED;
    }
    // Every device holds it before any callback runs (an online answer, a transmit that acks
    // or connects synchronously): then the transitions and first transmissions.
    const held = new Array<DeviceState>(devices.length);
    for (let i = 0; i < devices.length; i++) {
      let state = states?.[i];
      if (state === undefined || state.detached) state = this.#state(devices[i]!);
      this.#insert(state, message, true, !fresh);
      held[i] = state;
    }
    for (let i = 0; i < devices.length; i++) {
      const state = held[i]!;
      // (A callback may have had a state forgotten since: it holds nothing more then.)
      if (!state.detached) this.#settle(state, devices[i]!, online);
    }
    if (this.#blocked.size > 0) this.#release();
    return ACCEPTED;
  }

  /** After an enqueue: the device's online answer, its connect or disconnect, or a pump. */
  #settle(state: DeviceState, key: DeviceKey, online: EnqueueOptions["online"]): void {
    const wasOnline = state.online;
    const isOnline = online ? (this.#askOnline(online, key) ?? wasOnline) : wasOnline;
    if (isOnline && !wasOnline) this.#connect(state);
    else if (!isOnline && wasOnline) this.#disconnect(state);
    else this.#pump(state, this.#window);
  }

  /**
   * The caller's `online` answer for a device. It runs after the append is stored: one that
   * throws is reported and the device keeps the queue's state, so every stored entry is held.
   */
  #askOnline(
    online: NonNullable<EnqueueOptions["online"]>,
    device: DeviceKey,
  ): boolean | undefined {
    try {
      return online(device);
    } catch (err) {
      this.emit("callbackError", err, device, "online");
      return undefined;
    }
  }

  /** Drops the acked entries held here and refills the device's window; the store is the caller's. */
  #acked(device: DeviceKey, ids: readonly MessageId[]): number {
    const state = this.#devices.get(device);
    if (!state) return 0;
    let removed = 0;
    let i = 0;
    const r = state.roster;
    if (r) {
      // Attached to a roster: acks of its log in order move the cursor. (Read afresh each
      // time: a listener of `delivered` may change the log or detach the device.)
      while (i < ids.length && state.roster === r && state.vFrom < r.offset + r.log.length) {
        const shared = r.log[state.vFrom - r.offset]!;
        if (shared.envelope.id !== ids[i]) break;
        if (state.vFrom < state.vSent) state.inflight--;
        else state.vSent++;
        state.vFrom++;
        if (--shared.holders === 0 && shared.entries === 0) this.#sharedDead(shared);
        if (state.usage) tally(state.usage, shared.envelope, -1);
        state.count--;
        this.#depth--;
        if (state.online) this.#onlineEntries--;
        this.#stats.delivered++;
        if (this.#observed) this.emit("delivered", device, shared.envelope.id);
        i++;
      }
      removed = i;
      if (i > 0) this.#trim(r);
      // Any other id it holds through the log: entries of its own, found below.
      if (i < ids.length && state.roster === r && this.#holdsThroughLog(state, ids, i)) {
        this.#materialize(state);
      }
    }
    // A client's batched acks: the first ids are often a lane's head, in order. They leave
    // the lane in one cut; the rest are found one by one.
    for (let l = 0; l < 3 && i === 0; l++) {
      const lane = state.lanes[l]!;
      let k = 0;
      while (k < ids.length && k < lane.length && lane[k]!.envelope.id === ids[k]) k++;
      if (k === 0) continue;
      const gone = k === 1 ? [lane.shift()!] : lane.splice(0, k);
      for (const e of gone) {
        this.#retire(e);
        this.#stats.delivered++;
        if (this.#observed) this.emit("delivered", device, e.envelope.id);
      }
      removed = k;
      i = k;
    }
    for (; i < ids.length; i++) {
      const id = ids[i]!;
      const e = this.#find(state, id);
      if (!e) continue;
      this.#remove(e);
      removed++;
      this.#stats.delivered++;
      if (this.#observed) this.emit("delivered", device, id);
    }
    if (removed > 0) this.#afterRemoval(state);
    return removed;
  }

  /** Whether an attached device holds any of `ids` (from `from` on) through its roster's log. */
  #holdsThroughLog(state: DeviceState, ids: readonly MessageId[], from: number): boolean {
    const r = state.roster!;
    const end = r.offset + r.log.length;
    for (let at = state.vFrom; at < end; at++) {
      const id = r.log[at - r.offset]!.envelope.id;
      for (let k = from; k < ids.length; k++) if (ids[k] === id) return true;
    }
    return false;
  }

  // ---- per-device state -------------------------------------------------------------

  #state(key: DeviceKey): DeviceState {
    let s = this.#devices.get(key);
    if (!s) {
      s = {
        key,
        online: false,
        lanes: [[], [], []],
        sent: [0, 0, 0],
        inflight: 0,
        count: 0,
        index: undefined,
        nextOrd: 0,
        timer: undefined,
        timerAt: Number.POSITIVE_INFINITY,
        pumping: false,
        mark: 0,
        detached: false,
        roster: undefined,
        vFrom: 0,
        vSent: 0,
        vDue: undefined,
        probedAt: -1,
        usage: undefined,
      };
      this.#devices.set(key, s);
    }
    return s;
  }

  /** Drops an idle device's state (it is built again when needed). */
  #forget(state: DeviceState): void {
    if (this.#devices.get(state.key) === state) this.#devices.delete(state.key);
    state.detached = true;
    // (It holds nothing, through a log or not: no roster may count it again.)
    state.roster = undefined;
    state.usage = undefined;
  }

  /** The entry of message `id` held for the device, if any. */
  #find(state: DeviceState, id: MessageId): Entry | undefined {
    if (state.index) return state.index.get(id);
    for (let l = 0; l < 3; l++) {
      const lane = state.lanes[l]!;
      for (let i = 0; i < lane.length; i++) if (lane[i]!.envelope.id === id) return lane[i];
    }
    return undefined;
  }

  #insert(state: DeviceState, m: QueuedMessage, trackExpiry = true, check = true): boolean {
    const env = m.envelope;
    // Held through a log: entries of its own from now on (and the same message is found).
    if (state.roster) this.#materialize(state);
    if (check && state.count > 0 && this.#find(state, env.id)) return false;
    const e: Entry = {
      device: state,
      envelope: env,
      lane: LANE_INDEX[env.priority] ?? 1,
      ord: state.nextOrd++,
      expiresAt: m.expiresAt,
      attempts: 0,
      dueAt: 0,
      sent: false,
      deferred: false,
      counted: false,
      inExpiry: trackExpiry,
      done: false,
      shared: undefined,
    };
    state.lanes[e.lane].push(e);
    // Once built, the index is kept up to date until the device empties.
    if (state.index) state.index.set(env.id, e);
    else if (state.count + 1 > INDEX_ABOVE) {
      state.index = new Map(entriesOf(state).map((x) => [x.envelope.id, x]));
    }
    state.count++;
    if (state.usage) tally(state.usage, env, 1);
    this.#depth++;
    if (state.online) this.#onlineEntries++;
    this.#stats.enqueued++;
    if (trackExpiry) this.#pushExpiry(e);
    if (this.#observed) this.emit("enqueued", state.key, env);
    return true;
  }

  #remove(e: Entry): void {
    const lane = e.device.lanes[e.lane];
    // Acks come mostly in order, so the entry is usually the lane's head.
    if (lane[0] === e) lane.shift();
    else {
      const i = lane.indexOf(e);
      if (i >= 0) lane.splice(i, 1);
    }
    this.#retire(e);
  }

  /** The bookkeeping of an entry leaving its device, once it is out of its lane. */
  #retire(e: Entry): void {
    const s = e.device;
    e.done = true;
    if (s.usage) tally(s.usage, e.envelope, -1);
    if (--s.count === 0) s.index = undefined;
    else s.index?.delete(e.envelope.id);
    if (e.sent) {
      e.sent = false;
      s.sent[e.lane]--;
      s.inflight--;
    }
    if (e.deferred) {
      e.deferred = false;
      this.#deferredWaiting--;
    }
    if (e.inExpiry) {
      e.inExpiry = false;
      this.#expDead++;
    }
    const shared = e.shared;
    if (shared !== undefined && --shared.entries === 0 && shared.holders === 0) {
      this.#sharedDead(shared);
    }
    this.#depth--;
    if (s.online) this.#onlineEntries--;
  }

  /**
   * After entries left a device: refill its window (its own high lane first), hand the freed
   * backlog to devices waiting for a release, or forget an idle offline device.
   */
  #afterRemoval(state: DeviceState): void {
    if (state.count === 0 && !state.online) {
      this.#clearTimer(state);
      this.#forget(state);
      return;
    }
    this.#pump(state, this.#window);
    this.#release();
    this.#compactExpiry();
  }

  #connect(state: DeviceState): void {
    this.#materialize(state);
    this.#resetInflight(state);
    if (!state.online) this.#onlineEntries += state.count;
    state.online = true;
    this.#failExhausted(state);
    // At once, in order, as much as the window allows; acks bring the rest (MQTT resends its
    // in-flight messages on reconnect the same way, bounded by Receive Maximum). A burst of
    // the whole backlog would overtake itself when one packet of it is lost, and could trip
    // the gateway's slow-consumer limit on every reconnect.
    this.#pump(state, this.#window);
    this.#release();
  }

  #disconnect(state: DeviceState): void {
    this.#materialize(state);
    const was = state.online;
    if (was) this.#onlineEntries -= state.count;
    state.online = false;
    this.#resetInflight(state);
    this.#blocked.delete(state);
    if (state.count === 0) this.#forget(state);
    // Its entries left the backlog: room for deferred entries of others.
    if (was) this.#release();
  }

  #resetInflight(state: DeviceState): void {
    this.#clearTimer(state);
    state.probedAt = -1;
    for (let l = 0; l < 3; l++) {
      const lane = state.lanes[l]!;
      for (let i = 0; i < state.sent[l]!; i++) lane[i]!.sent = false;
      state.sent[l] = 0;
    }
    state.inflight = 0;
    // The low lane's unsent suffix is marked deferred from its end; entries that were in
    // flight are unsent again, so unmark it and let the next pump mark the whole suffix.
    this.#undefer(state);
  }

  #undefer(state: DeviceState): void {
    for (const e of state.lanes[LOW]) {
      if (e.deferred) {
        e.deferred = false;
        this.#deferredWaiting--;
      }
    }
  }

  // ---- transmission -------------------------------------------------------------------

  /**
   * The next entry to transmit: arrival order across lanes (`order: "fifo"`) or high, normal,
   * low (`"priority"`); always FIFO within a lane. Degraded: high, then normal; low is left
   * to the release budget ({@link DeliveryQueue.#pump}).
   */
  #next(state: DeviceState, degraded: boolean): Entry | undefined {
    const h = state.lanes[0][state.sent[0]];
    const n = state.lanes[1][state.sent[1]];
    if (degraded) return this.#carry(state, h ?? n);
    if (this.#priorityOrder) return h ?? n ?? state.lanes[2][state.sent[2]];
    const l = state.lanes[2][state.sent[2]];
    let best = h;
    if (n && (!best || n.ord < best.ord)) best = n;
    if (l && (!best || l.ord < best.ord)) best = l;
    return best;
  }

  /**
   * Degraded order may send `e` ahead of the low lane, but not ahead of an older low-lane
   * entry of its own conversation (a client may ask for `low` for one message): then the
   * low lane's head goes first, until that entry is out. Lanes delay a conversation, never
   * reorder it.
   */
  #carry(state: DeviceState, e: Entry | undefined): Entry | undefined {
    if (!e) return e;
    const low = state.lanes[LOW];
    const from = state.sent[LOW];
    if (from >= low.length || low[from]!.ord > e.ord) return e;
    const conversation = e.envelope.conversation;
    for (let i = from; i < low.length && low[i]!.ord < e.ord; i++) {
      if (low[i]!.envelope.conversation === conversation) return low[from];
    }
    return e;
  }

  /**
   * Transmits what fits in `limit` in-flight slots, in order. In degraded mode the low lane
   * goes only as the release budget allows. Re-entrant calls are absorbed.
   */
  #pump(state: DeviceState, limit: number): void {
    if (!state.online || state.pumping || this.#closed) return;
    const degraded = this.#isDegraded();
    // Degraded order, or a window other than the usual: on entries of its own.
    if (state.roster && (degraded || limit !== this.#window)) this.#materialize(state);
    state.pumping = true;
    try {
      while (state.online && state.inflight < limit) {
        const r = state.roster;
        if (r) {
          if (state.vSent >= r.offset + r.log.length) break;
          this.#sendShared(state, r, this.#clock.now());
          continue;
        }
        let e = this.#next(state, degraded);
        if (!e) {
          // Low lane in degraded mode: only with the budget, and not ahead of devices
          // already waiting for it (#release hands it to them in turn).
          if (!degraded || (this.#blocked.size > 0 && !this.#releasing) || !this.#mayRelease())
            break;
          e = state.lanes[LOW][state.sent[LOW]];
          if (!e) break;
        }
        this.#send(e);
      }
    } finally {
      state.pumping = false;
    }
    if (degraded && state.online) this.#noteDeferred(state);
  }

  /**
   * Degraded order holds while the load signal says so, and after it while devices with room
   * wait for the release turn. A device whose window is full does not count: its own acks
   * pace its deferred entries, so one device that stops acking cannot hold the queue in
   * degraded order until its attempts run out.
   */
  #isDegraded(): boolean {
    return this.load.degraded || this.#blocked.size > 0;
  }

  /** Whether one more deferred low-lane entry may go out now. */
  #mayRelease(): boolean {
    return !this.load.degraded && this.backlog < this.#releaseBacklog;
  }

  /**
   * Hands the release budget to the devices waiting for it, oldest first; a device that
   * still holds deferred entries when the budget runs out waits again at the back.
   */
  #release(): void {
    if (this.#blocked.size === 0 || this.#closed) return;
    if (this.#releasing) {
      // A transmit acked synchronously inside a release: the outer loop goes round again.
      this.#releaseAgain = true;
      return;
    }
    this.#releasing = true;
    try {
      do {
        this.#releaseAgain = false;
        // At most one pass over the devices waiting now: one that is put back waits its turn.
        let n = this.#blocked.size;
        for (const s of this.#blocked) {
          if (n-- === 0 || !this.#mayRelease()) break;
          this.#blocked.delete(s);
          this.#pump(s, this.#window);
        }
      } while (this.#releaseAgain && this.#blocked.size > 0 && this.#mayRelease());
    } finally {
      this.#releasing = false;
    }
  }

  #send(e: Entry): void {
    const s = e.device;
    if (!e.sent) {
      e.sent = true;
      s.sent[e.lane]++;
      s.inflight++;
    }
    if (e.deferred) {
      e.deferred = false;
      this.#deferredWaiting--;
    }
    const attempt = ++e.attempts;
    const first = attempt === 1 ? this.#firstDelay[e.lane] : undefined;
    e.dueAt =
      this.#clock.now() + (first ?? retryDelay(this.#policies[e.lane], attempt, this.#random));
    this.#armDevice(s, e.dueAt);
    this.#stats.transmitted++;
    if (attempt > 1) {
      // A redelivery (on a later connection than the first transmission).
      this.#stats.retried++;
      this.emit("retried", s.key, e.envelope, e.attempts);
    }
    if (this.#observed) this.emit("transmitted", s.key, e.envelope, e.attempts);
    try {
      this.#transmit(s.key, e.envelope, e.attempts);
    } catch (err) {
      this.emit("callbackError", err, s.key, "transmit");
    }
  }

  /** Transmits an attached device's next log message (a first attempt: retries are on entries). */
  #sendShared(state: DeviceState, r: Roster, now: number): void {
    const at = state.vSent++;
    const shared = r.log[at - r.offset]!;
    state.inflight++;
    const lane = shared.lane;
    const due = now + (this.#firstDelay[lane] ?? retryDelay(this.#policies[lane], 1, this.#random));
    const w = this.#window;
    let dueAt = state.vDue;
    if (!dueAt) {
      dueAt = new Float64Array(w);
      state.vDue = dueAt;
    }
    dueAt[at % w] = due;
    this.#armDevice(state, due);
    this.#stats.transmitted++;
    if (this.#observed) this.emit("transmitted", state.key, shared.envelope, 1);
    try {
      this.#transmit(state.key, shared.envelope, 1);
    } catch (err) {
      this.emit("callbackError", err, state.key, "transmit");
    }
  }

  /**
   * Marks the low-lane entries waiting behind degraded mode, once each, queues the device for
   * the release budget if its window has room, and keeps polling load.
   */
  #noteDeferred(state: DeviceState): void {
    const lane = state.lanes[LOW];
    const from = state.sent[LOW];
    if (lane.length > from && state.inflight < this.#window) this.#blocked.add(state);
    let marked = 0;
    for (let i = lane.length - 1; i >= from; i--) {
      const e = lane[i]!;
      if (e.deferred) break;
      e.deferred = true;
      marked++;
    }
    if (marked === 0) return;
    this.#deferredWaiting += marked;
    const announce = this.listenerCount("deferred") > 0;
    for (let i = lane.length - marked; i < lane.length; i++) {
      const e = lane[i]!;
      if (e.counted) continue;
      e.counted = true;
      this.#stats.deferred++;
      if (announce) this.emit("deferred", state.key, e.envelope);
    }
    this.#armRecheck();
  }

  /** While entries are deferred, re-sample the load so they go out once it falls. */
  #armRecheck(): void {
    if (this.#recheck || this.#deferredWaiting === 0 || this.load.overridden || this.#closed)
      return;
    this.#recheck = this.#clock.setTimeout(() => {
      this.#recheck = undefined;
      this.load.poll();
      if (this.load.degraded) this.#armRecheck();
    }, this.load.sampleIntervalMs);
  }

  // ---- redelivery timers ----------------------------------------------------------------

  #armDevice(state: DeviceState, at: number): void {
    if (state.timer && state.timerAt <= at) return;
    this.#clock.clear(state.timer);
    state.timerAt = at;
    state.timer = this.#clock.setTimeout(
      () => this.#onDeviceTimer(state),
      Math.max(0, at - this.#clock.now()),
    );
  }

  #clearTimer(state: DeviceState): void {
    this.#clock.clear(state.timer);
    state.timer = undefined;
    state.timerAt = Number.POSITIVE_INFINITY;
  }

  #inflight(state: DeviceState): Entry[] {
    const out: Entry[] = [];
    for (let l = 0; l < 3; l++) {
      const lane = state.lanes[l]!;
      for (let i = 0; i < state.sent[l]!; i++) out.push(lane[i]!);
    }
    if (state.sent[0] + state.sent[1] + state.sent[2] > 0) out.sort((a, b) => a.ord - b.ord);
    return out;
  }

  /** Retransmits every due in-flight entry in FIFO order; fails those out of attempts. */
  #onDeviceTimer(state: DeviceState): void {
    state.timer = undefined;
    state.timerAt = Number.POSITIVE_INFINITY;
    if (!state.online || this.#closed) return;
    if (state.roster) {
      // In flight through a log: retries work on entries, but only when one is due (the
      // timer of a transmission acked since is stale).
      let next = Number.POSITIVE_INFINITY;
      const w = this.#window;
      for (let at = state.vFrom; at < state.vSent; at++) {
        next = Math.min(next, state.vDue![at % w]!);
      }
      if (next > this.#clock.now()) {
        if (next < Number.POSITIVE_INFINITY) this.#armDevice(state, next);
        return;
      }
      this.#materialize(state);
    }
    if (this.#shared) {
      this.#reconcile(state).then(
        () => this.#retryDue(state),
        () => this.#retryDue(state),
      );
      return;
    }
    this.#retryDue(state);
  }

  /** Drops in-flight entries the shared store no longer holds: another node took their ack. */
  async #reconcile(state: DeviceState): Promise<void> {
    const held = new Set((await this.#store.list(state.key)).map((m) => m.envelope.id));
    for (const e of this.#inflight(state)) {
      if (e.done || held.has(e.envelope.id)) continue;
      this.#remove(e);
      this.#stats.delivered++;
      this.emit("delivered", state.key, e.envelope.id);
    }
  }

  /**
   * A connected device's ack deadline passed. Nothing is sent again on this connection (TCP
   * retransmits on a live one): transmissions out of attempts fail; otherwise the device is
   * probed, and told unresponsive when its acks stay overdue past `ackGraceMs`, so that its
   * next connection gets the redelivery.
   */
  #retryDue(state: DeviceState): void {
    if (!state.online || this.#closed || this.#devices.get(state.key) !== state) return;
    const now = this.#clock.now();
    state.pumping = true;
    try {
      for (const e of this.#inflight(state)) {
        if (e.done || !e.sent || e.dueAt > now || !state.online) continue;
        if (e.attempts >= this.#policies[e.lane].retries + 1) this.#fail(e, "attempts_exhausted");
      }
    } finally {
      state.pumping = false;
    }
    if (this.#devices.get(state.key) !== state) return;
    this.#pump(state, this.#window);
    this.#release();
    if (state.online && this.#devices.get(state.key) === state) this.#watchAcks(state, now);
    if (state.count === 0 && !state.online) this.#forget(state);
  }

  /** The ack watch of a connected device (see {@link ackWatchStep}). */
  #watchAcks(state: DeviceState, now: number): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const e of this.#inflight(state)) if (e.sent && e.dueAt < oldest) oldest = e.dueAt;
    const step = ackWatchStep(now, oldest, state.probedAt, this.#ackGraceMs);
    state.probedAt = step.probedAt;
    if (step.until < Number.POSITIVE_INFINITY) this.#armDevice(state, step.until);
    if (step.action === "none") return;
    this.emit(step.action, state.key);
    const callback = step.action === "probe" ? this.#onProbe : this.#onUnresponsive;
    try {
      callback?.(state.key);
    } catch (err) {
      this.emit("callbackError", err, state.key, step.action);
    }
  }

  /** On a (re)connect: entries out of attempts fail instead of being sent again. */
  #failExhausted(state: DeviceState): void {
    let any = false;
    for (let l = 0; l < 3 && !any; l++) {
      for (const e of state.lanes[l]!) {
        if (e.attempts >= this.#policies[e.lane].retries + 1) {
          any = true;
          break;
        }
      }
    }
    if (!any) return;
    state.pumping = true;
    try {
      for (const e of entriesOf(state)) {
        if (!e.done && e.attempts >= this.#policies[e.lane].retries + 1) {
          this.#fail(e, "attempts_exhausted");
        }
      }
    } finally {
      state.pumping = false;
    }
    this.#compactExpiry();
  }

  #fail(e: Entry, reason: FailReason): void {
    const state = e.device;
    this.#remove(e);
    this.#stats.failed++;
    if (reason === "ttl_expired") {
      this.#stats.expired++;
      this.emit("expired", state.key, e.envelope);
    } else {
      this.#stats.exhausted++;
    }
    const report = () => {
      this.emit("failed", state.key, e.envelope, reason);
      try {
        this.#onFailed?.(e.envelope, state.key, reason);
      } catch (err) {
        this.emit("callbackError", err, state.key, "onFailed");
      }
    };
    const removal = this.#io("remove", () => this.#store.remove(state.key, [e.envelope.id]));
    if (this.#shared) {
      // Report only if our removal took the entry: otherwise it was acked (or failed) elsewhere.
      // If the store cannot answer, report: a failed tick for a delivered message beats silence.
      removal.then((n) => {
        if (n > 0) report();
      }, report);
    } else {
      report();
      // A failed removal only means a redelivery after a restart; storeError reports it.
      removal.catch(() => {});
    }
    if (!state.pumping) this.#afterRemoval(state);
  }

  // ---- expiry -----------------------------------------------------------------------------

  #pushExpiry(e: Entry | Shared): void {
    const list = this.#expiry;
    const last = list[list.length - 1];
    if (!last || last.expiresAt <= e.expiresAt) {
      list.push(e);
    } else {
      // Only when the TTL changed between runs: keep the list sorted.
      let lo = this.#expHead;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid]!.expiresAt <= e.expiresAt) lo = mid + 1;
        else hi = mid;
      }
      list.splice(lo, 0, e);
    }
    this.#armExpiry();
  }

  #rebuildExpiry(): void {
    const live: (Entry | Shared)[] = [];
    for (let i = this.#expHead; i < this.#expiry.length; i++) {
      const e = this.#expiry[i]!;
      if (e.inExpiry) live.push(e);
    }
    for (const s of this.#devices.values()) {
      for (const e of entriesOf(s)) {
        // (One materialized from a log message expires with it.)
        if (!e.inExpiry && e.shared === undefined) {
          e.inExpiry = true;
          live.push(e);
        }
      }
    }
    live.sort((a, b) => a.expiresAt - b.expiresAt);
    this.#expiry = live;
    this.#expHead = 0;
    this.#expDead = 0;
    this.#clock.clear(this.#expTimer);
    this.#expTimer = undefined;
    this.#expTimerAt = Number.POSITIVE_INFINITY;
    this.#armExpiry();
  }

  #armExpiry(): void {
    const list = this.#expiry;
    while (this.#expHead < list.length && !list[this.#expHead]!.inExpiry) {
      this.#expHead++;
      this.#expDead--;
    }
    const head = list[this.#expHead];
    if (!head || this.#closed) return;
    if (this.#expTimer && this.#expTimerAt <= head.expiresAt) return;
    this.#clock.clear(this.#expTimer);
    this.#expTimerAt = head.expiresAt;
    this.#expTimer = this.#clock.setTimeout(
      () => this.#onExpiry(),
      Math.max(0, head.expiresAt - this.#clock.now()),
    );
  }

  #onExpiry(): void {
    this.#expTimer = undefined;
    this.#expTimerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    const list = this.#expiry;
    this.#expiring = true;
    try {
      this.#drainExpired(list, now);
    } finally {
      this.#expiring = false;
    }
    this.#compactExpiry();
    this.#armExpiry();
  }

  #drainExpired(list: (Entry | Shared)[], now: number): void {
    while (this.#expHead < list.length) {
      const e = list[this.#expHead]!;
      if (!e.inExpiry) {
        this.#expHead++;
        this.#expDead--;
        continue;
      }
      if (e.expiresAt > now) break;
      this.#expHead++;
      e.inExpiry = false;
      if ("holders" in e) this.#expireShared(e);
      else this.#fail(e, "ttl_expired");
    }
  }

  /** A log message's time ran out: every device still holding it fails it. */
  #expireShared(shared: Shared): void {
    if (shared.holders > 0) {
      const r = shared.roster;
      for (const state of r.states) {
        if (state.roster === r && !state.detached && state.vFrom <= shared.at) {
          this.#materialize(state);
        }
      }
    }
    const list = shared.materialized;
    if (!list) return;
    for (const e of list) if (!e.done) this.#fail(e, "ttl_expired");
  }

  /** Drops consumed and dead slots once they are most of the list (amortised O(1)). */
  #compactExpiry(): void {
    if (this.#expiring) return;
    const list = this.#expiry;
    const waste = this.#expHead + this.#expDead;
    if (waste < 1024 || waste * 2 < list.length) return;
    const live: (Entry | Shared)[] = [];
    for (let i = this.#expHead; i < list.length; i++) if (list[i]!.inExpiry) live.push(list[i]!);
    this.#expiry = live;
    this.#expHead = 0;
    this.#expDead = 0;
  }

  // ---- store I/O ----------------------------------------------------------------------------

  /** Runs a store call; a transient failure is retried in real time with p-retry. */
  async #io<T>(op: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      return this.#retryIo(op, call, err);
    }
  }

  /** Retries a store call that just failed with `err`, with p-retry, if the error is transient. */
  async #retryIo<T>(op: string, call: () => Promise<T>, err: unknown): Promise<T> {
    const policy = this.#storeRetry;
    if (policy === false || policy.retries === 0 || !transient(err))
      throw this.#storeFailure(err, op);
    let first = true;
    try {
      // The first p-retry attempt replays the failure we already saw, so its backoff
      // (minTimeout, factor...) applies from the first retry exactly as configured.
      return await pRetry(
        () => {
          if (first) {
            first = false;
            throw err;
          }
          return call();
        },
        { ...policy, shouldRetry: ({ error }) => transient(error) },
      );
    } catch (final) {
      throw this.#storeFailure(final, op);
    }
  }

  #storeFailure(err: unknown, op: string): unknown {
    this.emit("storeError", err, op);
    if (err instanceof RelayError) return err;
    return new RelayError("store_unavailable", `DeliveryQueue: store ${op} failed`, { cause: err });
  }
}

/** A device's entries, lane by lane. */
function entriesOf(state: DeviceState): Entry[] {
  return [...state.lanes[0], ...state.lanes[1], ...state.lanes[2]];
}

/** The recipients without repeats; the same array when it has none (the common case: no copy). */
function distinct(recipients: readonly DeviceKey[]): readonly DeviceKey[] {
  const n = recipients.length;
  if (n < 2) return recipients;
  if (n > 8) return [...new Set(recipients)];
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      if (recipients[i] === recipients[j]) return [...new Set(recipients)];
    }
  }
  return recipients;
}

/** Errors worth retrying: anything but a RelayError with a definite code. */
function transient(err: unknown): boolean {
  // A store's own `store_unavailable` is its final answer: the Redis adapters already retried
  // within their deadline, and retrying here too multiplied an outage's wait (one layer only).
  return !(err instanceof RelayError) || err.code === "timeout";
}

/** The object without its `undefined` properties (so they do not override defaults). */
function dropUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o))
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** The device cap for an envelope: none for a system message (a membership change is never refused). */
function capFor(envelope: Envelope, max: number): number {
  return envelope.system === undefined ? max : Number.MAX_SAFE_INTEGER;
}

/**
 * The full devices to leave out of an append refused for them, or `undefined`: a full
 * device (a group member's, or one of a user's devices that stopped connecting) costs only
 * itself. Not when every recipient is full: then the send is refused.
 */
function skippable(
  _envelope: Envelope,
  devices: readonly DeviceKey[],
  result: AppendResult,
): Set<DeviceKey> | undefined {
  if (result.ok || !("full" in result)) return undefined;
  const full = new Set(result.full);
  return devices.some((d) => !full.has(d)) ? full : undefined;
}

/** An accepted result that names the devices left out. */
function withSkipped(result: EnqueueResult, skipped: ReadonlySet<DeviceKey>): EnqueueResult {
  return result.ok ? { ok: true, skipped: [...skipped] } : result;
}
