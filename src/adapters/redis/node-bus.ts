import type { Cluster, Redis } from "ioredis";
import { z } from "zod";
import {
  type Clock,
  type NodeId,
  parseOptions,
  RelayError,
  systemClock,
} from "../../core/index.js";
import type { BusHandler, BusPacket, NodeBus } from "../../router/index.js";
import type { RedisClient } from "./lua-script.js";
import {
  callRedis,
  isRedisClient,
  type RedisRetryPolicy,
  redisCommonShape,
  retryPolicy,
} from "./redis-call.js";

/** Options for {@link RedisNodeBus}. */
export interface RedisNodeBusOptions {
  /** The client packets are published on. Not closed by the bus. */
  redis: RedisClient;
  /**
   * A client dedicated to SUBSCRIBE (a subscribed ioredis connection can run nothing else).
   * When omitted the bus makes one with `redis.duplicate()` and closes it on {@link RedisNodeBus.close}.
   */
  subscriber?: RedisClient;
  /** Channel namespace: channels are `<prefix>:bus:<nodeId>`. @default "rk" */
  prefix?: string;
  /** Paces publish retries. @default systemClock */
  clock?: Clock;
  /** Retries of a failed publish (a retried publish may duplicate, which the bus allows). */
  retry?: Partial<RedisRetryPolicy>;
  /** Told about packets that arrive but cannot be decoded (they are dropped). */
  onError?: (error: RelayError) => void;
}

const schema = z.object({
  redis: z.custom<RedisClient>(isRedisClient, "an ioredis client"),
  subscriber: z.custom<RedisClient>(isRedisClient, "an ioredis client").optional(),
  onError: z
    .custom<(e: RelayError) => void>((v) => typeof v === "function", "a function")
    .optional(),
  ...redisCommonShape,
});

/** Version byte leading every encoded packet: `0x01` = UTF-8 JSON follows. */
export const BUS_FORMAT_JSON = 0x01;

/**
 * Encodes a packet for the wire: one version byte ({@link BUS_FORMAT_JSON}) then the packet
 * as UTF-8 JSON, in a Buffer. Binary-safe: Redis carries the bytes untouched, and any
 * string (emoji, lone surrogates excepted) survives.
 */
export function encodeBusPacket(packet: BusPacket): Buffer {
  const body = Buffer.from(JSON.stringify(packet), "utf8");
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = BUS_FORMAT_JSON;
  body.copy(out, 1);
  return out;
}

/**
 * Decodes {@link encodeBusPacket}'s output.
 * @throws RelayError `bad_json` for an unknown version byte or a body that is not a packet.
 */
export function decodeBusPacket(bytes: Buffer): BusPacket {
  if (bytes[0] !== BUS_FORMAT_JSON) {
    throw new RelayError("bad_json", `NodeBus packet: unknown format byte ${String(bytes[0])}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(bytes.subarray(1).toString("utf8"));
  } catch (e) {
    throw new RelayError("bad_json", "NodeBus packet: body is not JSON", { cause: e });
  }
  const kind = (v as { kind?: unknown } | null)?.kind;
  if (kind !== "frames" && kind !== "control") {
    throw new RelayError("bad_json", "NodeBus packet: missing or unknown `kind`");
  }
  return v as BusPacket;
}

/**
 * The {@link NodeBus} on Redis pub/sub: one channel per node (`<prefix>:bus:<nodeId>`),
 * packets encoded by {@link encodeBusPacket}.
 * @remarks Pub/sub is fire-and-forget: a packet for a node with no subscriber, or sent
 * while a subscriber is reconnecting, is lost (the DeliveryQueue redelivers). Packets from
 * one bus to one node keep their order (on a Cluster through sharded pub/sub). After a
 * reconnect ioredis resubscribes by itself.
 */
export class RedisNodeBus implements NodeBus {
  readonly #pub: RedisClient;
  readonly #sub: RedisClient;
  readonly #ownsSub: boolean;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #retry: RedisRetryPolicy;
  readonly #onError: ((e: RelayError) => void) | undefined;
  readonly #handlers = new Map<string, Set<BusHandler>>();
  /** SUBSCRIBE in flight per channel, so concurrent subscribers wait for the same one. */
  readonly #ready = new Map<string, Promise<unknown>>();
  #closed = false;
  /**
   * On Redis Cluster, plain PUBLISH goes to any master and is relayed to the others, so two
   * packets of one publisher may arrive reordered; sharded pub/sub (SPUBLISH/SSUBSCRIBE,
   * Redis 7) keeps a channel on one shard, in order.
   */
  readonly #sharded: boolean;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisNodeBusOptions) {
    const o = parseOptions(schema, options, "RedisNodeBus");
    this.#pub = o.redis;
    this.#sharded = isCluster(o.redis);
    this.#ownsSub = o.subscriber === undefined;
    this.#sub = o.subscriber ?? duplicateForSubscribe(o.redis);
    this.#prefix = o.prefix;
    this.#clock = o.clock ?? systemClock;
    this.#retry = retryPolicy(o.retry);
    this.#onError = o.onError;
    this.#sub.on(this.#sharded ? "smessageBuffer" : "messageBuffer", this.#onMessage);
    // A subscriber that loses Redis must not crash the process: ioredis reconnects it.
    if (this.#ownsSub) this.#sub.on("error", () => {});
  }

  /** The channel a node listens on. */
  channelOf(nodeId: NodeId): string {
    return `${this.#prefix}:bus:${nodeId}`;
  }

  async publish(nodeId: NodeId, packet: BusPacket): Promise<void> {
    this.#assertOpen();
    const bytes = encodeBusPacket(packet);
    const channel = this.channelOf(nodeId);
    await callRedis(
      "RedisNodeBus.publish",
      () =>
        this.#sharded ? this.#pub.spublish(channel, bytes) : this.#pub.publish(channel, bytes),
      this.#clock,
      this.#retry,
    );
  }

  async subscribe(nodeId: NodeId, handler: BusHandler): Promise<() => Promise<void>> {
    this.#assertOpen();
    const channel = this.channelOf(nodeId);
    let ready = this.#ready.get(channel);
    if (!ready) {
      ready = callRedis(
        "RedisNodeBus.subscribe",
        () => (this.#sharded ? this.#sub.ssubscribe(channel) : this.#sub.subscribe(channel)),
        this.#clock,
        this.#retry,
      );
      this.#ready.set(channel, ready);
    }
    try {
      await ready;
    } catch (e) {
      if (this.#ready.get(channel) === ready) this.#ready.delete(channel);
      throw e;
    }
    let set = this.#handlers.get(channel);
    if (!set) {
      set = new Set();
      this.#handlers.set(channel, set);
    }
    set.add(handler);
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      const current = this.#handlers.get(channel);
      if (!current) return;
      current.delete(handler);
      if (current.size > 0 || this.#closed) return;
      this.#handlers.delete(channel);
      this.#ready.delete(channel);
      await callRedis(
        "RedisNodeBus.unsubscribe",
        () => (this.#sharded ? this.#sub.sunsubscribe(channel) : this.#sub.unsubscribe(channel)),
        this.#clock,
        this.#retry,
      );
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sub.off(this.#sharded ? "smessageBuffer" : "messageBuffer", this.#onMessage);
    const channels = [...this.#handlers.keys()];
    this.#handlers.clear();
    this.#ready.clear();
    if (this.#ownsSub) {
      this.#sub.disconnect();
    } else if (channels.length > 0) {
      const sub = this.#sub;
      await (this.#sharded ? sub.sunsubscribe(...channels) : sub.unsubscribe(...channels)).catch(
        () => {},
      );
    }
  }

  readonly #onMessage = (channel: Buffer, message: Buffer): void => {
    const set = this.#handlers.get(channel.toString("utf8"));
    if (!set || set.size === 0) return;
    let packet: BusPacket;
    try {
      packet = decodeBusPacket(message);
    } catch (e) {
      this.#onError?.(e as RelayError);
      return;
    }
    for (const h of [...set]) {
      try {
        h(packet);
      } catch (e) {
        // A throwing handler must not break ioredis's reader (nor the other handlers).
        this.#onError?.(new RelayError("internal", "NodeBus handler threw", { cause: e }));
      }
    }
  };

  #assertOpen(): void {
    if (this.#closed) throw new RelayError("closed", "RedisNodeBus is closed");
  }
}

/**
 * A subscriber connection like `redis`, but one that queues SUBSCRIBE while (re)connecting
 * and resubscribes after a reconnect, whatever the publisher's own settings.
 */
function duplicateForSubscribe(redis: RedisClient): RedisClient {
  if (isCluster(redis)) return redis.duplicate([], { shardedSubscribers: true });
  return (redis as Redis).duplicate({
    enableOfflineQueue: true,
    autoResubscribe: true,
    lazyConnect: false,
  });
}

function isCluster(redis: RedisClient): redis is Cluster {
  return "isCluster" in redis && redis.isCluster === true;
}
