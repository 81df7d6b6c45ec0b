import { z } from "zod";
import {
  type ConversationId,
  type DeviceKey,
  type Envelope,
  type MessageId,
  parseOptions,
  RelayError,
} from "../../core/index.js";
import type { MessageStore, Retention } from "../../router/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisMessageStore}. */
export interface RedisMessageStoreOptions extends RedisAdapterOptions {
  /** How long messages are kept. @default { mode: "relay" } */
  retention?: Retention;
}

const schema = redisAdapterSchema.extend({
  retention: z
    .discriminatedUnion("mode", [
      z.object({ mode: z.literal("relay") }),
      z.object({ mode: z.literal("history"), historyMs: z.number().min(0) }),
    ])
    .default({ mode: "relay" }),
});

// KEYS: env, pending; ARGV: id, json, recipient1..N. Relay mode.
const PUT_RELAY = new LuaScript(`
redis.call('DEL', KEYS[2])
if #ARGV < 3 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 3, #ARGV, 1000 do
  redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
`);

// KEYS: env, conv, ts; ARGV: id, json, seq, ts. History mode.
const PUT_HISTORY = new LuaScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
`);

// KEYS: env, pending; ARGV: id, device. The last recipient's delivery drops the message.
const DELIVERED = new LuaScript(`
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`);

// KEYS: env, conv; ARGV: before ("+inf" or "(n"), limit. Newest first.
const HISTORY = new LuaScript(`
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
local out = {}
for j = 1, #ids, 1000 do
  local vals = redis.call('HMGET', KEYS[1], unpack(ids, j, math.min(j + 999, #ids)))
  for _, v in ipairs(vals) do
    if v then out[#out + 1] = v end
  end
end
return out
`);

// KEYS: env, ts, conv1..convN; ARGV: cutoff, id1..idN (id i is in conv i).
// Drops each message still indexed older than the cutoff; returns how many.
const PURGE = new LuaScript(`
local cutoff = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local s = redis.call('ZSCORE', KEYS[2], id)
  if s and tonumber(s) < cutoff then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[i + 1], id)
    redis.call('HDEL', KEYS[1], id)
    n = n + 1
  end
end
return n
`);

const CHUNK = 500;

/**
 * The {@link MessageStore} on Redis, shared by every node.
 *
 * Keys (hash tag `{<prefix>:msg}`: one Cluster slot, every update one Lua script):
 * - `env` hash: messageId → envelope JSON
 * - `pending:<messageId>` set (relay mode): recipient devices that do not have it yet
 * - `conv:<conversationId>` sorted set (history mode): messageIds scored by seq
 * - `ts` sorted set (history mode): messageIds scored by accept time, for `purge`
 *
 * @remarks Relay mode keeps no conversation index (there is no history to page) and drops a
 * message in the same script that removes its last pending device. History mode keeps no
 * pending sets (nothing is dropped on delivery). Message ids are unique: putting an id
 * again replaces the envelope, but in history mode does not move it out of its old
 * conversation. One tag means one slot, like the session directory; shard by prefix to
 * spread a very large store.
 */
export class RedisMessageStore implements MessageStore {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #tag: string;
  readonly #retention: Retention;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisMessageStoreOptions) {
    const o = parseOptions(schema, options, "RedisMessageStore");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisMessageStore", o);
    this.#tag = `{${o.prefix}:msg}`;
    this.#retention = o.retention;
  }

  /** The retention mode this store applies. */
  get retention(): Retention {
    return this.#retention;
  }

  async put(envelope: Envelope, recipients: readonly DeviceKey[]): Promise<void> {
    const json = JSON.stringify(envelope);
    if (this.#retention.mode === "relay") {
      await this.#call("put", () =>
        PUT_RELAY.run(
          this.#redis,
          [this.#env, this.#pending(envelope.id)],
          [envelope.id, json, ...new Set(recipients)],
        ),
      );
      return;
    }
    await this.#call("put", () =>
      PUT_HISTORY.run(
        this.#redis,
        [this.#env, this.#conv(envelope.conversation), this.#ts],
        [envelope.id, json, envelope.seq, envelope.ts],
      ),
    );
  }

  async get(id: MessageId): Promise<Envelope | undefined> {
    const json = await this.#call("get", () => this.#redis.hget(this.#env, id));
    return json === null ? undefined : decodeEnvelope(json);
  }

  async getMany(ids: readonly MessageId[]): Promise<readonly Envelope[]> {
    const out: Envelope[] = [];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      const jsons = await this.#call("getMany", () => this.#redis.hmget(this.#env, ...chunk));
      for (const j of jsons) if (j !== null) out.push(decodeEnvelope(j));
    }
    return out;
  }

  async delivered(id: MessageId, device: DeviceKey): Promise<void> {
    if (this.#retention.mode !== "relay") return;
    await this.#call("delivered", () =>
      DELIVERED.run(this.#redis, [this.#env, this.#pending(id)], [id, device]),
    );
  }

  async history(
    conversation: ConversationId,
    opts: { beforeSeq?: number; limit: number },
  ): Promise<readonly Envelope[]> {
    if (this.#retention.mode !== "history" || opts.limit <= 0) return [];
    const before = opts.beforeSeq === undefined ? "+inf" : `(${opts.beforeSeq}`;
    const jsons = (await this.#call("history", () =>
      HISTORY.run(
        this.#redis,
        [this.#env, this.#conv(conversation)],
        [before, Math.floor(opts.limit)],
      ),
    )) as string[];
    return jsons.map(decodeEnvelope).reverse();
  }

  async purge(now: number): Promise<number> {
    if (this.#retention.mode !== "history") return 0;
    const cutoff = now - this.#retention.historyMs;
    let dropped = 0;
    for (;;) {
      const ids = await this.#call("purge", () =>
        this.#redis.zrangebyscore(this.#ts, "-inf", `(${cutoff}`, "LIMIT", 0, CHUNK),
      );
      if (ids.length === 0) return dropped;
      const jsons = await this.#call("purge", () => this.#redis.hmget(this.#env, ...ids));
      const convKeys = ids.map((_, i) => {
        const j = jsons[i];
        // A vanished envelope still leaves the ts index; its conv entry is skipped by reads.
        return this.#conv((j ? decodeEnvelope(j).conversation : "") as ConversationId);
      });
      const n = (await this.#call("purge", () =>
        PURGE.run(this.#redis, [this.#env, this.#ts, ...convKeys], [cutoff, ...ids]),
      )) as number;
      dropped += n;
    }
  }

  get #env(): string {
    return `${this.#tag}:env`;
  }

  get #ts(): string {
    return `${this.#tag}:ts`;
  }

  #pending(id: MessageId): string {
    return `${this.#tag}:pending:${id}`;
  }

  #conv(c: ConversationId): string {
    return `${this.#tag}:conv:${c}`;
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}

function decodeEnvelope(json: string): Envelope {
  try {
    const v = JSON.parse(json) as Envelope;
    if (typeof v.id === "string" && typeof v.seq === "number") return v;
  } catch {
    // fall through
  }
  throw new RelayError("internal", `RedisMessageStore: corrupt envelope ${json.slice(0, 80)}`);
}
