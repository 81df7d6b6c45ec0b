import {
  type ClientMessageId,
  type DeviceKey,
  type MessageId,
  parseOptions,
  RelayError,
} from "../../core/index.js";
import {
  type AppendResult,
  type QueuedMessage,
  type QueueStore,
  type SentRecord,
  sentBy,
  sentRecordOf,
} from "../../queue/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisQueueStore}. */
export type RedisQueueStoreOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// The dedupe write, shared by PUT_SENT and APPEND: one key per record, `<expiresAt>|<record
// JSON>`, with a Redis TTL of its remaining life (so Redis drops expired ones; the stored
// expiresAt, in the callers' clock, decides what is live). First live record wins. Returns
// the value in force.
const PUT_SENT_FN = `
local function putSent(key, value, expiresAt, now, cur)
  if cur and tonumber(string.match(cur, '^([^|]*)|')) > tonumber(now) then return cur end
  local ttl = math.max(1, tonumber(expiresAt) - tonumber(now))
  redis.call('SET', key, value, 'PX', ttl)
  return value
end
`;

// KEYS: sent; ARGV: value, expiresAt, now
const PUT_SENT = new LuaScript(`${PUT_SENT_FN}
return putSent(KEYS[1], ARGV[1], ARGV[2], ARGV[3], redis.call('GET', KEYS[1]))
`);

// KEYS: env, refs, seq, devices, sent, queue_1..queue_n
// ARGV: id, json, max, dedupe ('1'/'0'), value, expiresAt, now, device_1..device_n
// All or nothing: checks every device's cap before writing anything. With dedupe, a live
// record of another message for the same key wins: returns {2, record}. The envelope is
// stored once; \`refs\` holds how many devices hold it only when more than one does.
const APPEND = new LuaScript(`${PUT_SENT_FN}
local id, max, now = ARGV[1], tonumber(ARGV[3]), ARGV[7]
local cur = false
if ARGV[4] == '1' then
  cur = redis.call('GET', KEYS[5])
  if cur and tonumber(string.match(cur, '^([^|]*)|')) > tonumber(now) then
    local rec = string.match(cur, '^[^|]*|(.*)$')
    if cjson.decode(rec).messageId ~= id then return {2, rec} end
  end
end
local n = #KEYS - 5
local cards = {}
local full = {}
for i = 1, n do
  local q = KEYS[5 + i]
  cards[i] = redis.call('ZCARD', q)
  if cards[i] + 1 > max and not redis.call('ZSCORE', q, id) then
    full[#full + 1] = ARGV[7 + i]
  end
end
if #full > 0 then return {0, full} end
local base = redis.call('INCRBY', KEYS[3], n) - n
local added = 0
for i = 1, n do
  if redis.call('ZADD', KEYS[5 + i], 'NX', base + i, id) == 1 then
    added = added + 1
    if cards[i] == 0 then redis.call('SADD', KEYS[4], ARGV[7 + i]) end
  end
end
if added > 0 then
  if redis.call('HSET', KEYS[1], id, ARGV[2]) == 1 then
    if added > 1 then redis.call('HSET', KEYS[2], id, added) end
  else
    local r = tonumber(redis.call('HGET', KEYS[2], id) or '1')
    redis.call('HSET', KEYS[2], id, r + added)
  end
end
if ARGV[4] == '1' then putSent(KEYS[5], ARGV[5], ARGV[6], now, cur) end
return {1, added}
`);

// KEYS: queue, env, refs, devices; ARGV: device, id_1..id_n. The last holder drops the
// envelope (no \`refs\` field: one holder).
const REMOVE = new LuaScript(`
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    n = n + 1
    local raw = redis.call('HGET', KEYS[3], id)
    local r = tonumber(raw or '1')
    if r <= 1 then
      if raw then redis.call('HDEL', KEYS[3], id) end
      redis.call('HDEL', KEYS[2], id)
    elseif r == 2 then
      redis.call('HDEL', KEYS[3], id)
    else
      redis.call('HSET', KEYS[3], id, r - 1)
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
return n
`);

// KEYS: queue, env. The device's envelopes in append order.
const LIST = new LuaScript(`
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for j = 1, #ids, 1000 do
  local vals = redis.call('HMGET', KEYS[2], unpack(ids, j, math.min(j + 999, #ids)))
  for _, v in ipairs(vals) do
    if v then out[#out + 1] = v end
  end
end
return out
`);

/**
 * The durable {@link QueueStore} on Redis: what makes "a node restart loses no accepted
 * message" hold. Sorted sets per device (FIFO by a global append counter), each envelope
 * stored once; see docs/redis-queue.md for why not Streams, and how BullMQ compares.
 *
 * Keys (hash tag `{<prefix>:q}`: one Cluster slot, so a group fan-out append to many
 * devices and its dedupe record are one atomic script):
 * - `dev:<deviceKey>` sorted set: message ids, scored by the `seq` counter (append order)
 * - `env` hash: messageId → QueuedMessage JSON, `refs` hash: how many devices still hold
 *   it, only while more than one does (no field: one holder, the common 1:1 case)
 * - `devices` set: devices with at least one entry (restart recovery walks it)
 * - `sent:<JSON [sender, clientId]>` string: `expiresAt|record`, with a Redis TTL of the
 *   record's remaining life (Redis drops expired records; `expiresAt` decides what is live)
 *
 * @remarks Durability across a Redis restart needs Redis persistence (AOF with
 * `appendfsync everysec` or `always`); across a relaykit node restart it needs nothing
 * more. Dedupe times are the callers' `now`, never Redis TIME, so a ManualClock works.
 */
export class RedisQueueStore implements QueueStore {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #tag: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisQueueStoreOptions) {
    const o = parseOptions(schema, options, "RedisQueueStore");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisQueueStore", o);
    this.#tag = `{${o.prefix}:q}`;
  }

  async append(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
  ): Promise<AppendResult> {
    const env = message.envelope;
    const dedupe = dedupeUntil !== undefined;
    const keys = [
      `${this.#tag}:env`,
      `${this.#tag}:refs`,
      `${this.#tag}:seq`,
      this.#devices,
      dedupe
        ? this.#sent(sentBy(env), env.clientId)
        : this.#sent("" as DeviceKey, "" as ClientMessageId),
      ...recipients.map((d) => this.#queue(d)),
    ];
    const args: (string | number)[] = [
      env.id,
      JSON.stringify(message),
      Math.min(maxPerDevice, Number.MAX_SAFE_INTEGER),
      dedupe ? "1" : "0",
      dedupe ? `${dedupeUntil}|${JSON.stringify(sentRecordOf(env))}` : "",
      dedupe ? dedupeUntil : 0,
      message.enqueuedAt,
      ...recipients,
    ];
    // Idempotent (ZADD only when absent, first dedupe record wins), so safe to retry.
    const [ok, v] = (await this.#call("append", () => APPEND.run(this.#redis, keys, args))) as [
      number,
      number | string[],
    ];
    if (ok === 1) return { ok: true, added: v as number };
    if (ok === 2) return { ok: false, duplicate: JSON.parse(v as unknown as string) as SentRecord };
    return { ok: false, full: v as DeviceKey[] };
  }

  async list(device: DeviceKey): Promise<readonly QueuedMessage[]> {
    const jsons = (await this.#call("list", () =>
      LIST.run(this.#redis, [this.#queue(device), `${this.#tag}:env`], []),
    )) as string[];
    return jsons.map(decodeQueued);
  }

  async count(device: DeviceKey): Promise<number> {
    return this.#call("count", () => this.#redis.zcard(this.#queue(device)));
  }

  async devices(): Promise<readonly DeviceKey[]> {
    // SSCAN, not SMEMBERS: millions of devices must not block Redis in one command.
    const out = new Set<string>();
    let cursor = "0";
    do {
      const from = cursor;
      const [next, batch] = await this.#call("devices", () =>
        this.#redis.sscan(this.#devices, from, "COUNT", 1000),
      );
      for (const d of batch) out.add(d);
      cursor = next;
    } while (cursor !== "0");
    return [...out] as DeviceKey[];
  }

  async remove(device: DeviceKey, ids: readonly MessageId[]): Promise<number> {
    if (ids.length === 0) return 0;
    return (await this.#call("remove", () =>
      REMOVE.run(
        this.#redis,
        [this.#queue(device), `${this.#tag}:env`, `${this.#tag}:refs`, this.#devices],
        [device, ...ids],
      ),
    )) as number;
  }

  async putSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): Promise<SentRecord> {
    const value = (await this.#call("putSent", () =>
      PUT_SENT.run(
        this.#redis,
        [this.#sent(sender, clientId)],
        [`${expiresAt}|${JSON.stringify(record)}`, expiresAt, now],
      ),
    )) as string;
    return decodeSent(value).record;
  }

  async getSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    now: number,
  ): Promise<SentRecord | undefined> {
    const value = await this.#call("getSent", () => this.#redis.get(this.#sent(sender, clientId)));
    if (value === null) return undefined;
    const s = decodeSent(value);
    return s.expiresAt > now ? s.record : undefined;
  }

  get #devices(): string {
    return `${this.#tag}:devices`;
  }

  /** One key per dedupe record (any key shape the caller uses: it is opaque here). */
  #sent(sender: DeviceKey, clientId: ClientMessageId): string {
    return `${this.#tag}:sent:${sentField(sender, clientId)}`;
  }

  #queue(device: DeviceKey): string {
    return `${this.#tag}:dev:${device}`;
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}

function sentField(sender: DeviceKey, clientId: ClientMessageId): string {
  return JSON.stringify([sender, clientId]);
}

function decodeSent(value: string): { expiresAt: number; record: SentRecord } {
  const bar = value.indexOf("|");
  try {
    return {
      expiresAt: Number(value.slice(0, bar)),
      record: JSON.parse(value.slice(bar + 1)) as SentRecord,
    };
  } catch (e) {
    throw new RelayError("internal", "RedisQueueStore: corrupt dedupe record", { cause: e });
  }
}

function decodeQueued(json: string): QueuedMessage {
  try {
    const v = JSON.parse(json) as QueuedMessage;
    if (typeof v.envelope?.id === "string") return v;
  } catch {
    // fall through
  }
  throw new RelayError("internal", `RedisQueueStore: corrupt entry ${json.slice(0, 80)}`);
}
