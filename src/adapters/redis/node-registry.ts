import {
  type Clock,
  type NodeId,
  parseOptions,
  RelayError,
  systemClock,
} from "../../core/index.js";
import {
  type ClaimOptions,
  DEFAULT_CLAIM_LIMIT,
  DEFAULT_CLAIM_TTL_MS,
  type NodeInfo,
  type NodeRegistry,
  type RegisterOptions,
} from "../../discovery/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/**
 * Options for {@link RedisNodeRegistry}. Its `clock` is also the source of heartbeat and
 * deadline times: every node's clock must agree to well within a TTL.
 */
export type RedisNodeRegistryOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// KEYS: live, info, hb, ttl; ARGV: id, infoJson, now, ttl
const REGISTER = new LuaScript(`
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[1], string.format('%.0f', tonumber(ARGV[3]) + tonumber(ARGV[4])), ARGV[1])
return 1
`);

// KEYS: live, hb, ttl; ARGV: id, now
const HEARTBEAT = new LuaScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local ttl = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
redis.call('ZADD', KEYS[1], string.format('%.0f', tonumber(ARGV[2]) + ttl), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`);

// KEYS: live, claimed, info, hb, ttl; ARGV: id
const DEREGISTER = new LuaScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
end
return 1
`);

// KEYS: live, info, hb; ARGV: now. Returns id, info, hb triples of live nodes.
const LIVE = new LuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
end
return out
`);

// KEYS: live, claimed, info, hb; ARGV: now, leaseEnd, limit.
// Moves expired live nodes (deadline < now) and lapsed claims to "claimed" with a new lease,
// in one script: a death is handed to exactly one caller.
const CLAIM = new LuaScript(`
local limit = tonumber(ARGV[3])
local out = {}
local function take(id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or '0'
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, limit)
for _, id in ipairs(dead) do
  redis.call('ZREM', KEYS[1], id)
  take(id)
end
local room = limit - #dead
if room > 0 then
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, room)
  for _, id in ipairs(lapsed) do take(id) end
end
return out
`);

// KEYS: live, claimed, info, hb, ttl; ARGV: id
const CONFIRM = new LuaScript(`
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
end
return 1
`);

interface StoredInfo {
  nodeId: NodeId;
  meta: Record<string, string>;
  ttlMs: number;
  registeredAt: number;
}

/**
 * The {@link NodeRegistry} on Redis. Every node runs the same code; none is special.
 *
 * Keys (hash tag `{<prefix>:nodes}`, one Cluster slot, every change one Lua script):
 * - `live` sorted set: nodeId → deadline (last heartbeat + TTL)
 * - `claimed` sorted set: nodeId → end of the claim lease of a death being handled
 * - `info` hash (static registration JSON), `hb` hash (last heartbeat), `ttl` hash
 *
 * @remarks Expiry is claimed with one script that moves the node from `live` to `claimed`,
 * so two nodes noticing the same death never both get it; an unconfirmed claim lapses after
 * its lease and is handed out again. Times come from the injected Clock, not Redis TIME.
 */
export class RedisNodeRegistry implements NodeRegistry {
  readonly #redis: RedisClient;
  readonly #clock: Clock;
  readonly #calls: RedisCalls;
  readonly #k: { live: string; claimed: string; info: string; hb: string; ttl: string };

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisNodeRegistryOptions) {
    const o = parseOptions(schema, options, "RedisNodeRegistry");
    this.#redis = o.redis;
    this.#clock = o.clock ?? systemClock;
    this.#calls = new RedisCalls("RedisNodeRegistry", o);
    const t = `{${o.prefix}:nodes}`;
    this.#k = {
      live: `${t}:live`,
      claimed: `${t}:claimed`,
      info: `${t}:info`,
      hb: `${t}:hb`,
      ttl: `${t}:ttl`,
    };
  }

  async register(nodeId: NodeId, options: RegisterOptions): Promise<void> {
    const now = this.#clock.now();
    const info: StoredInfo = {
      nodeId,
      meta: { ...(options.meta ?? {}) },
      ttlMs: options.ttlMs,
      registeredAt: now,
    };
    const k = this.#k;
    await this.#call("register", () =>
      REGISTER.run(
        this.#redis,
        [k.live, k.info, k.hb, k.ttl],
        [nodeId, JSON.stringify(info), now, options.ttlMs],
      ),
    );
  }

  async heartbeat(nodeId: NodeId): Promise<boolean> {
    const k = this.#k;
    const now = this.#clock.now();
    const r = await this.#call("heartbeat", () =>
      HEARTBEAT.run(this.#redis, [k.live, k.hb, k.ttl], [nodeId, now]),
    );
    return r === 1;
  }

  async deregister(nodeId: NodeId): Promise<boolean> {
    const k = this.#k;
    const r = await this.#call("deregister", () =>
      DEREGISTER.run(this.#redis, [k.live, k.claimed, k.info, k.hb, k.ttl], [nodeId]),
    );
    return r === 1;
  }

  async live(): Promise<readonly NodeInfo[]> {
    const k = this.#k;
    const now = this.#clock.now();
    const r = (await this.#call("live", () =>
      LIVE.run(this.#redis, [k.live, k.info, k.hb], [now]),
    )) as string[];
    return decodeTriples(r).sort((a, b) =>
      a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0,
    );
  }

  async claimExpired(options: ClaimOptions = {}): Promise<readonly NodeInfo[]> {
    const k = this.#k;
    const now = this.#clock.now();
    const lease = now + (options.claimTtlMs ?? DEFAULT_CLAIM_TTL_MS);
    const limit = options.limit ?? DEFAULT_CLAIM_LIMIT;
    const r = (await this.#call("claimExpired", () =>
      CLAIM.run(this.#redis, [k.live, k.claimed, k.info, k.hb], [now, lease, limit]),
    )) as string[];
    return decodeTriples(r);
  }

  async confirmExpired(nodeId: NodeId): Promise<void> {
    const k = this.#k;
    await this.#call("confirmExpired", () =>
      CONFIRM.run(this.#redis, [k.live, k.claimed, k.info, k.hb, k.ttl], [nodeId]),
    );
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}

function decodeTriples(r: readonly string[]): NodeInfo[] {
  const out: NodeInfo[] = [];
  for (let i = 0; i + 2 < r.length; i += 3) {
    const id = r[i] as NodeId;
    let info: StoredInfo;
    try {
      info = JSON.parse(r[i + 1] || "null") as StoredInfo;
    } catch (e) {
      throw new RelayError("internal", `RedisNodeRegistry: corrupt record for node ${id}`, {
        cause: e,
      });
    }
    out.push({
      nodeId: id,
      meta: info?.meta ?? {},
      ttlMs: info?.ttlMs ?? 0,
      registeredAt: info?.registeredAt ?? 0,
      lastHeartbeat: Number(r[i + 2]),
    });
  }
  return out;
}
