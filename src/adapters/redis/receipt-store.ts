import {
  type ConversationId,
  type MessageId,
  parseOptions,
  RelayError,
  type UserId,
} from "../../core/index.js";
import type { ServerReceiptFrame } from "../../protocol/schemas.js";
import type {
  ReceiptRecord,
  ReceiptState,
  ReceiptStore,
  ReceiptStoreSize,
  TrackedMessage,
  Watermark,
  WatermarkAdvance,
} from "../../receipts/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisReceiptStore}. */
export type RedisReceiptStoreOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// KEYS: msg, conv, due, count; ARGV: id, json, initial, seq, expiresAt, n, conversation, dueMember
const TRACK = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'init', ARGV[3], 'n', ARGV[6], 'c', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[8])
redis.call('HINCRBY', KEYS[4], 'messages', 1)
redis.call('HINCRBY', KEYS[4], 'entries', tonumber(ARGV[6]))
return 1
`);

// KEYS: msg; ARGV: index, state, at. First delivered/read times are kept (HSETNX).
const SET_STATE = new LuaScript(`
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
local i = tonumber(ARGV[1])
if not n or i < 0 or i >= n then return 0 end
redis.call('HSET', KEYS[1], 'st:' .. ARGV[1], ARGV[2])
if ARGV[2] == 'delivered' or ARGV[2] == 'read' then
  redis.call('HSETNX', KEYS[1], 'd:' .. ARGV[1], ARGV[3])
end
if ARGV[2] == 'read' then redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], ARGV[3]) end
return 1
`);

// KEYS: wm, due, count; ARGV: reader, upTo, at, expiresAt, dueMember
const ADVANCE = new LuaScript(`
local p = redis.call('HGET', KEYS[1], ARGV[1])
local up, at = '', ''
if p then
  up, at = string.match(p, '^([^|]*)|([^|]*)|')
  if tonumber(up) >= tonumber(ARGV[2]) then return {0, up, at} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
if not p then redis.call('HINCRBY', KEYS[3], 'watermarks', 1) end
return {1, up, at}
`);

// Drops one message: shared by RELEASE and EXPIRE. Returns 1 when it was tracked.
const DROP_FN = `
local function drop(msgKey, convKey, due, count, id, member, conv)
  if redis.call('HGET', msgKey, 'c') ~= conv then return 0 end
  local n = tonumber(redis.call('HGET', msgKey, 'n'))
  redis.call('DEL', msgKey)
  redis.call('ZREM', convKey, id)
  redis.call('ZREM', due, member)
  redis.call('HINCRBY', count, 'messages', -1)
  redis.call('HINCRBY', count, 'entries', -n)
  return 1
end
`;

// KEYS: due, count, (msg_i, conv_i)...; ARGV: (id_i, dueMember_i, conversation_i)...
const RELEASE = new LuaScript(`${DROP_FN}
local dropped = 0
for i = 1, #ARGV / 3 do
  dropped = dropped + drop(KEYS[1 + 2 * i], KEYS[2 + 2 * i], KEYS[1], KEYS[2],
    ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i])
end
return dropped
`);

// KEYS: due, count, (key1_i, key2_i)...; ARGV: now, (kind_i, member_i, idOrReader_i, conv_i)...
// kind 'm': key1 = msg, key2 = conv index. kind 'w': key1 = watermark hash.
// Every item still due is removed from `due`, whatever else it finds. Returns expired ids.
const EXPIRE = new LuaScript(`${DROP_FN}
local now = tonumber(ARGV[1])
local out = {}
for i = 1, (#ARGV - 1) / 4 do
  local kind, member, name, conv = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  local s = redis.call('ZSCORE', KEYS[1], member)
  if s and tonumber(s) <= now then
    if kind == 'm' then
      if drop(KEYS[1 + 2 * i], KEYS[2 + 2 * i], KEYS[1], KEYS[2], name, member, conv) == 1 then
        out[#out + 1] = name
      end
    elseif redis.call('HDEL', KEYS[1 + 2 * i], name) == 1 then
      redis.call('HINCRBY', KEYS[2], 'watermarks', -1)
    end
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
`);

const CHUNK = 250;

/**
 * The {@link ReceiptStore} on Redis, shared by every node.
 *
 * Keys (hash tag `{<prefix>:rcpt}`: one Cluster slot, every change one Lua script):
 * - `msg:<id>` hash: the tracked message JSON, `init` state, recipient count `n`, and per
 *   device `st:<i>` (state, absent = init), `d:<i>` / `r:<i>` (first delivered / read time),
 *   so `track` is O(1) and an ack is one field write, even in a 1024-member group
 * - `conv:<conversationId>` sorted set: tracked ids by seq (watermark ranges)
 * - `wm:<conversationId>` hash: reader → `upTo|at|expiresAt`
 * - `due` sorted set: expiry time of every message and pointer
 * - `count` hash: messages, entries, watermarks (for `size`)
 *
 * @remarks One tag keeps the counters and the expiry index exact and atomic; it also puts
 * the whole store on one shard. To spread it, give groups of conversations their own
 * store (prefix). Like the memory store, it does not arbitrate two trackers writing the
 * same device: `setState` is a plain write.
 */
export class RedisReceiptStore implements ReceiptStore {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #tag: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisReceiptStoreOptions) {
    const o = parseOptions(schema, options, "RedisReceiptStore");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisReceiptStore", o);
    this.#tag = `{${o.prefix}:rcpt}`;
  }

  async track(message: TrackedMessage, initial: ReceiptState): Promise<boolean> {
    const r = await this.#call("track", () =>
      TRACK.run(
        this.#redis,
        [this.#msg(message.id), this.#conv(message.conversation), this.#due, this.#count],
        [
          message.id,
          JSON.stringify(message),
          initial,
          message.seq,
          message.expiresAt,
          message.recipients.length,
          message.conversation,
          msgMember(message.id),
        ],
      ),
    );
    return r === 1;
  }

  async load(id: MessageId): Promise<ReceiptRecord | undefined> {
    const h = await this.#call("load", () => this.#redis.hgetall(this.#msg(id)));
    if (h.msg === undefined) return undefined;
    let message: TrackedMessage;
    try {
      message = JSON.parse(h.msg) as TrackedMessage;
    } catch (e) {
      throw new RelayError("internal", `RedisReceiptStore: corrupt message ${id}`, { cause: e });
    }
    const n = message.recipients.length;
    const states = new Array<ReceiptState>(n).fill(h.init as ReceiptState);
    const deliveredAt = new Array<number>(n).fill(Number.NaN);
    const readAt = new Array<number>(n).fill(Number.NaN);
    for (const [field, v] of Object.entries(h)) {
      const colon = field.indexOf(":");
      if (colon < 0) continue;
      const i = Number(field.slice(colon + 1));
      if (!(i >= 0 && i < n)) continue;
      const kind = field.slice(0, colon);
      if (kind === "st") states[i] = v as ReceiptState;
      else if (kind === "d") deliveredAt[i] = Number(v);
      else if (kind === "r") readAt[i] = Number(v);
    }
    return { message, states, deliveredAt, readAt };
  }

  async setState(id: MessageId, index: number, state: ReceiptState, at: number): Promise<void> {
    if (!Number.isInteger(index)) return;
    await this.#call("setState", () =>
      SET_STATE.run(this.#redis, [this.#msg(id)], [index, state, at]),
    );
  }

  async advanceWatermark(
    reader: UserId,
    conversation: ConversationId,
    upTo: number,
    at: number,
    expiresAt: number,
  ): Promise<WatermarkAdvance> {
    const [ok, up, prevAt] = (await this.#call("advanceWatermark", () =>
      ADVANCE.run(
        this.#redis,
        [this.#wm(conversation), this.#due, this.#count],
        [reader, upTo, at, expiresAt, JSON.stringify(["w", conversation, reader])],
      ),
    )) as [number, string, string];
    const previous = up === "" ? undefined : { upTo: Number(up), at: Number(prevAt) };
    return { advanced: ok === 1, previous };
  }

  async watermarks(conversation: ConversationId): Promise<ReadonlyMap<UserId, Watermark>> {
    const h = await this.#call("watermarks", () => this.#redis.hgetall(this.#wm(conversation)));
    const out = new Map<UserId, Watermark>();
    for (const [reader, v] of Object.entries(h)) {
      const [up, at] = v.split("|");
      out.set(reader as UserId, { upTo: Number(up), at: Number(at) });
    }
    return out;
  }

  async inRange(
    conversation: ConversationId,
    after: number,
    upTo: number,
  ): Promise<readonly MessageId[]> {
    if (upTo <= after) return [];
    return (await this.#call("inRange", () =>
      this.#redis.zrangebyscore(this.#conv(conversation), `(${after}`, upTo),
    )) as MessageId[];
  }

  async release(ids: readonly MessageId[]): Promise<number> {
    let n = 0;
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += CHUNK) {
      const chunk = unique.slice(i, i + CHUNK);
      const convs = await this.#conversationsOf(chunk);
      const keys = [this.#due, this.#count];
      const args: string[] = [];
      chunk.forEach((id, j) => {
        const c = convs[j];
        if (c === null || c === undefined) return;
        keys.push(this.#msg(id), this.#conv(c as ConversationId));
        args.push(id, msgMember(id), c);
      });
      if (args.length === 0) continue;
      n += (await this.#call("release", () => RELEASE.run(this.#redis, keys, args))) as number;
    }
    return n;
  }

  async expire(now: number): Promise<readonly MessageId[]> {
    const out: MessageId[] = [];
    for (;;) {
      const members = await this.#call("expire", () =>
        this.#redis.zrangebyscore(this.#due, "-inf", now, "LIMIT", 0, CHUNK),
      );
      if (members.length === 0) return out;
      const items = members.map(
        (m) => JSON.parse(m) as ["m", MessageId] | ["w", ConversationId, UserId],
      );
      const msgIds = items.flatMap((it) => (it[0] === "m" ? [it[1]] : []));
      const convs = await this.#conversationsOf(msgIds);
      const convOf = new Map(msgIds.map((id, i) => [id, convs[i] ?? ""]));
      const keys = [this.#due, this.#count];
      const args: (string | number)[] = [now];
      items.forEach((it, i) => {
        const member = members[i]!;
        if (it[0] === "m") {
          const c = convOf.get(it[1]) ?? "";
          keys.push(this.#msg(it[1]), this.#conv(c as ConversationId));
          args.push("m", member, it[1], c);
        } else {
          keys.push(this.#wm(it[1]), this.#wm(it[1]));
          args.push("w", member, it[2], it[1]);
        }
      });
      const expired = (await this.#call("expire", () =>
        EXPIRE.run(this.#redis, keys, args),
      )) as MessageId[];
      out.push(...expired);
    }
  }

  async size(): Promise<ReceiptStoreSize> {
    const [m, e, w] = await this.#call("size", () =>
      this.#redis.hmget(this.#count, "messages", "entries", "watermarks"),
    );
    return { messages: Number(m ?? 0), entries: Number(e ?? 0), watermarks: Number(w ?? 0) };
  }

  async hold(
    user: UserId,
    frame: ServerReceiptFrame,
    expiresAt: number,
    max: number,
  ): Promise<void> {
    const key = `${this.#tag}:held:${user}`;
    const item = JSON.stringify({ e: expiresAt, f: frame });
    await this.#call("hold", () =>
      this.#redis.multi().rpush(key, item).ltrim(key, -max, -1).exec(),
    );
  }

  async takeHeld(user: UserId, now: number): Promise<readonly ServerReceiptFrame[]> {
    const key = `${this.#tag}:held:${user}`;
    const replies = await this.#call("takeHeld", () =>
      this.#redis.multi().lrange(key, 0, -1).del(key).exec(),
    );
    const items = (replies?.[0]?.[1] as string[] | undefined) ?? [];
    const out: ServerReceiptFrame[] = [];
    for (const raw of items) {
      const h = JSON.parse(raw) as { e: number; f: ServerReceiptFrame };
      if (h.e > now) out.push(h.f);
    }
    return out;
  }

  /** Each message's conversation (null when not tracked), read in one round trip. */
  async #conversationsOf(ids: readonly MessageId[]): Promise<(string | null)[]> {
    if (ids.length === 0) return [];
    // Keys share one slot, so one pipeline serves a Cluster too. A retry builds a new one.
    const replies = await this.#call("lookup", async () => {
      const pipe = this.#redis.pipeline();
      for (const id of ids) pipe.hget(this.#msg(id), "c");
      return (await pipe.exec()) ?? [];
    });
    return replies.map(([err, v]) => {
      if (err) throw err;
      return (v as string | null) ?? null;
    });
  }

  get #due(): string {
    return `${this.#tag}:due`;
  }

  get #count(): string {
    return `${this.#tag}:count`;
  }

  #msg(id: MessageId): string {
    return `${this.#tag}:msg:${id}`;
  }

  #conv(c: ConversationId): string {
    return `${this.#tag}:conv:${c}`;
  }

  #wm(c: ConversationId): string {
    return `${this.#tag}:wm:${c}`;
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}

function msgMember(id: MessageId): string {
  return JSON.stringify(["m", id]);
}
