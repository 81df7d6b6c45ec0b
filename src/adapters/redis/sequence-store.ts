import {
  type Clock,
  type ConversationId,
  parseOptions,
  RelayError,
  systemClock,
} from "../../core/index.js";
import type { SequenceStore } from "../../router/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import {
  callRedis,
  type RedisAdapterOptions,
  type RedisRetryPolicy,
  redisAdapterSchema,
  retryPolicy,
} from "./redis-call.js";

/** Gives back the last number (KEYS[1] = ARGV[1]): one step, so no later number is lost. */
const RELEASE = new LuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
  return 1
end
return 0`);

/** Options for {@link RedisSequenceStore}. */
export type RedisSequenceStoreOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

/**
 * The {@link SequenceStore} on Redis: one counter per conversation, advanced with INCR, so
 * every node hands out the same total order. The conversation id is the hash tag.
 * @remarks `next` is not idempotent, so it is tried once: a lost reply may have used up a
 * number, which leaves a gap (receivers order by seq; they never wait for a gap to fill).
 */
export class RedisSequenceStore implements SequenceStore {
  readonly #redis: RedisClient;
  readonly #clock: Clock;
  readonly #retry: RedisRetryPolicy;
  readonly #prefix: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisSequenceStoreOptions) {
    const o = parseOptions(schema, options, "RedisSequenceStore");
    this.#redis = o.redis;
    this.#clock = o.clock ?? systemClock;
    this.#retry = retryPolicy(o.retry);
    this.#prefix = o.prefix;
  }

  async next(conversation: ConversationId): Promise<number> {
    return callRedis(
      "RedisSequenceStore.next",
      () => this.#redis.incr(this.#key(conversation)),
      this.#clock,
      { ...this.#retry, attempts: 1 },
    );
  }

  async current(conversation: ConversationId): Promise<number> {
    const v = await callRedis(
      "RedisSequenceStore.current",
      () => this.#redis.get(this.#key(conversation)),
      this.#clock,
      this.#retry,
    );
    if (v === null) return 0;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) {
      throw new RelayError("internal", `RedisSequenceStore: corrupt counter for ${conversation}`);
    }
    return n;
  }

  async release(conversation: ConversationId, seq: number): Promise<boolean> {
    const done = await callRedis(
      "RedisSequenceStore.release",
      () => RELEASE.run(this.#redis, [this.#key(conversation)], [String(seq)]),
      this.#clock,
      { ...this.#retry, attempts: 1 },
    );
    return Number(done) === 1;
  }

  #key(conversation: ConversationId): string {
    return `${this.#prefix}:seq:{${conversation}}`;
  }
}
