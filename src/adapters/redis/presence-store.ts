import {
  type DeviceId,
  type NodeId,
  parseOptions,
  RelayError,
  type UserId,
} from "../../core/index.js";
import type { PresenceRecord, PresenceStore } from "../../presence/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisPresenceStore}. */
export type RedisPresenceStoreOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// KEYS: lease hash; ARGV: node, at, until. A late heartbeat never shortens the lease.
const HEARTBEAT = new LuaScript(`
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  local at = string.match(prev, '^([^|]*)|')
  if tonumber(at) > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
return 1
`);

// KEYS: user hash; ARGV: device, node, lastHeartbeat.
// 1: disconnected now; 0: owned but not connected; -1: no longer owned by node.
const EXPIRE_DEVICE = new LuaScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return -1 end
local c, la, node = string.match(v, '^(%d)|([^|]*)|(.*)$')
if node ~= ARGV[2] then return -1 end
if c ~= '1' then return 0 end
local last = la
if tonumber(ARGV[3]) > tonumber(la) then last = ARGV[3] end
redis.call('HSET', KEYS[1], ARGV[1], '0|' .. last .. '|' .. node)
return 1
`);

// KEYS: user hash; ARGV: device, node, value. Writes only over a record that node owns.
const WRITE_IF_OWNER = new LuaScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local node = string.match(v, '^%d|[^|]*|(.*)$')
if node ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`);

const CHUNK = 200;

/**
 * The {@link PresenceStore} on Redis, shared by every node.
 *
 * Keys:
 * - `<prefix>:pres:{<userId>}` hash: deviceId → `connected|lastActive|nodeId` (one slot per
 *   user, so presence, the busiest store, spreads over a Cluster)
 * - `<prefix>:pres:node:{<nodeId>}` set: the devices a node has written (for `expireNode`)
 * - `{<prefix>:pres}:lease` hash: nodeId → `at|until` of its lease
 *
 * @remarks A record and its node index live in different slots, so they are not updated
 * together: the index is written first and may hold devices that have since moved to
 * another node or been removed. `expireNode` checks each record's owner in one script per
 * device and drops the stale index entries. Times are the callers' `now`, never Redis TIME.
 */
export class RedisPresenceStore implements PresenceStore {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #prefix: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisPresenceStoreOptions) {
    const o = parseOptions(schema, options, "RedisPresenceStore");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisPresenceStore", o);
    this.#prefix = o.prefix;
  }

  async write(record: PresenceRecord): Promise<void> {
    const member = JSON.stringify([record.userId, record.deviceId]);
    // Index first: a record is never owned by a node whose index lacks it.
    await this.#call("write", () => this.#redis.sadd(this.#node(record.nodeId), member));
    const value = `${record.connected ? 1 : 0}|${record.lastActive}|${record.nodeId}`;
    await this.#call("write", () =>
      this.#redis.hset(this.#user(record.userId), record.deviceId, value),
    );
  }

  async writeIfOwner(record: PresenceRecord): Promise<boolean> {
    // Index first, as `write` does (an index entry for a record the node does not own is
    // tolerated: `expireNode` checks the owner).
    const member = JSON.stringify([record.userId, record.deviceId]);
    await this.#call("writeIfOwner", () => this.#redis.sadd(this.#node(record.nodeId), member));
    const value = `${record.connected ? 1 : 0}|${record.lastActive}|${record.nodeId}`;
    const wrote = await this.#call("writeIfOwner", () =>
      WRITE_IF_OWNER.run(
        this.#redis,
        [this.#user(record.userId)],
        [record.deviceId, record.nodeId, value],
      ),
    );
    return wrote === 1;
  }

  async remove(userId: UserId, deviceId: DeviceId): Promise<void> {
    await this.#call("remove", () => this.#redis.hdel(this.#user(userId), deviceId));
  }

  async read(userId: UserId, now: number): Promise<readonly PresenceRecord[]> {
    const all = await this.#call("read", () => this.#redis.hgetall(this.#user(userId)));
    const records = Object.entries(all).map(([device, v]) => decode(userId, device, v));
    if (records.length === 0) return [];
    const nodes = [...new Set(records.filter((r) => r.connected).map((r) => r.nodeId))];
    const leases = new Map<NodeId, { at: number; until: number }>();
    if (nodes.length > 0) {
      const raw = await this.#call("read", () => this.#redis.hmget(this.#lease, ...nodes));
      nodes.forEach((n, i) => {
        const v = raw[i];
        if (!v) return;
        const bar = v.indexOf("|");
        leases.set(n, { at: Number(v.slice(0, bar)), until: Number(v.slice(bar + 1)) });
      });
    }
    return records.map((r) => {
      if (!r.connected) return r;
      const lease = leases.get(r.nodeId);
      if (lease && now < lease.until) return r;
      return {
        ...r,
        connected: false,
        lastActive: lease ? Math.max(r.lastActive, lease.at) : r.lastActive,
      };
    });
  }

  async heartbeat(nodeId: NodeId, at: number, ttlMs: number): Promise<void> {
    await this.#call("heartbeat", () =>
      HEARTBEAT.run(this.#redis, [this.#lease], [nodeId, at, at + ttlMs]),
    );
  }

  async expireNode(nodeId: NodeId, lastHeartbeat: number): Promise<readonly UserId[]> {
    await this.#call("expireNode", () => this.#redis.hdel(this.#lease, nodeId));
    const users = new Set<UserId>();
    const members = await this.#call("expireNode", () => this.#redis.smembers(this.#node(nodeId)));
    for (let i = 0; i < members.length; i += CHUNK) {
      const chunk = members.slice(i, i + CHUNK);
      const results = await Promise.all(
        chunk.map((m) => {
          const [user, device] = JSON.parse(m) as [UserId, DeviceId];
          return this.#call("expireNode", async () => {
            const r = await EXPIRE_DEVICE.run(
              this.#redis,
              [this.#user(user)],
              [device, nodeId, lastHeartbeat],
            );
            return [user, r] as const;
          });
        }),
      );
      for (const [user, r] of results) if (r === 1) users.add(user);
      // Every processed device is now disconnected or no longer this node's.
      await this.#call("expireNode", () => this.#redis.srem(this.#node(nodeId), ...chunk));
    }
    return [...users];
  }

  get #lease(): string {
    return `{${this.#prefix}:pres}:lease`;
  }

  #user(userId: UserId): string {
    return `${this.#prefix}:pres:{${userId}}`;
  }

  #node(nodeId: NodeId): string {
    return `${this.#prefix}:pres:node:{${nodeId}}`;
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}

function decode(userId: UserId, device: string, v: string): PresenceRecord {
  const a = v.indexOf("|");
  const b = v.indexOf("|", a + 1);
  const lastActive = Number(v.slice(a + 1, b));
  if (a !== 1 || b < 0 || !Number.isFinite(lastActive)) {
    throw new RelayError("internal", `RedisPresenceStore: corrupt record for ${userId}/${device}`);
  }
  return {
    userId,
    deviceId: device as DeviceId,
    nodeId: v.slice(b + 1) as NodeId,
    connected: v[0] === "1",
    lastActive,
  };
}
