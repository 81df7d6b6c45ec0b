import {
  type NodeId,
  parseOptions,
  RelayError,
  type Session,
  type SessionId,
  type UserId,
} from "../../core/index.js";
import type { SessionDirectory } from "../../router/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisSessionDirectory}. */
export type RedisSessionDirectoryOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// KEYS: all, seq, newUser, newNode, [oldUser, oldNode]; ARGV: sid, json, expectedOld ("" = none)
// Compare-and-set on the stored JSON, so the old user/node keys we were told are the right ones.
const REGISTER = new LuaScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then cur = '' end
if cur ~= ARGV[3] then return {0, cur} end
if cur ~= '' then
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('SREM', KEYS[6], ARGV[1])
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], seq .. '|' .. ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
return {1, ''}
`);

// KEYS: all, user, node; ARGV: sid, expected
const UNREGISTER = new LuaScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return {0, ''} end
if cur ~= ARGV[2] then return {0, cur} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return {1, cur}
`);

// KEYS: all, node, user1..userN; ARGV: sid1, json1, ... (user i belongs to sid i)
// Drops each session only if it is still exactly what the caller read.
const DROP = new LuaScript(`
local dropped = {}
for i = 1, #ARGV, 2 do
  local sid = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], sid)
  if not cur then
    redis.call('SREM', KEYS[2], sid)
  elseif cur == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], sid)
    redis.call('SREM', KEYS[2], sid)
    redis.call('HDEL', KEYS[2 + (i + 1) / 2], sid)
    dropped[#dropped + 1] = cur
  end
end
return dropped
`);

const MAX_CAS_ROUNDS = 16;
const CHUNK = 500;

/**
 * The {@link SessionDirectory} on Redis, shared by every node.
 *
 * Keys (all under the hash tag `{<prefix>:sess}`, so one Cluster slot holds them and every
 * update is one atomic Lua script):
 * - `{p:sess}:all` hash: sessionId → session JSON
 * - `{p:sess}:uh:<userId>` hash: sessionId → `<registration seq>|<session JSON>`, so a
 *   lookup is one HGETALL (several users: one pipelined HGETALL each, one round trip)
 * - `{p:sess}:node:<nodeId>` set: sessionIds owned by the node (for `dropNode`)
 * - `{p:sess}:seq` counter giving the registration order
 *
 * @remarks One tag means one slot: atomic multi-key updates on Cluster, at the price of
 * the directory living on one shard (fine up to millions of sessions; shard by prefix to go
 * further). Every operation is idempotent, so transient failures are retried; when Redis
 * stays unreachable the call rejects with `RelayError("store_unavailable")`.
 */
export class RedisSessionDirectory implements SessionDirectory {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #tag: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisSessionDirectoryOptions) {
    const o = parseOptions(schema, options, "RedisSessionDirectory");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisSessionDirectory", o);
    this.#tag = `{${o.prefix}:sess}`;
  }

  async register(session: Session): Promise<void> {
    const json = encodeSession(session);
    const keys = [
      this.#all,
      `${this.#tag}:seq`,
      this.#user(session.userId),
      this.#node(session.nodeId),
    ];
    await this.#call("register", async () => {
      let expected = "";
      for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
        const old = expected ? decodeSession(expected) : undefined;
        const k = old ? [...keys, this.#user(old.userId), this.#node(old.nodeId)] : keys;
        const [ok, cur] = (await REGISTER.run(this.#redis, k, [
          session.sessionId,
          json,
          expected,
        ])) as [number, string];
        if (ok === 1) return;
        expected = cur;
      }
      throw contention("register");
    });
  }

  async unregister(sessionId: SessionId): Promise<Session | undefined> {
    return this.#call("unregister", async () => {
      let cur = await this.#redis.hget(this.#all, sessionId);
      for (let round = 0; round < MAX_CAS_ROUNDS && cur; round++) {
        const s = decodeSession(cur);
        const [ok, now] = (await UNREGISTER.run(
          this.#redis,
          [this.#all, this.#user(s.userId), this.#node(s.nodeId)],
          [sessionId, cur],
        )) as [number, string];
        if (ok === 1) return s;
        cur = now;
      }
      if (cur) throw contention("unregister");
      return undefined;
    });
  }

  async lookup(userId: UserId): Promise<readonly Session[]> {
    return (await this.lookupMany([userId])).get(userId) ?? [];
  }

  async lookupMany(userIds: readonly UserId[]): Promise<ReadonlyMap<UserId, readonly Session[]>> {
    const out = new Map<UserId, readonly Session[]>();
    const unique = [...new Set(userIds)];
    for (let i = 0; i < unique.length; i += CHUNK) {
      const chunk = unique.slice(i, i + CHUNK);
      // Keys share one slot, so one pipeline serves a Cluster too. A retry builds a new one.
      const replies = await this.#call("lookup", async () => {
        if (chunk.length === 1) return [[null, await this.#redis.hgetall(this.#user(chunk[0]!))]];
        const pipe = this.#redis.pipeline();
        for (const u of chunk) pipe.hgetall(this.#user(u));
        return (await pipe.exec()) ?? [];
      });
      chunk.forEach((u, j) => {
        const [err, h] = replies[j] ?? [null, {}];
        if (err) throw err;
        out.set(u, decodeUserHash(h as Record<string, string>));
      });
    }
    return out;
  }

  async sessionsOf(nodeId: NodeId): Promise<readonly Session[]> {
    return this.#call("sessionsOf", async () => {
      const ids = await this.#redis.smembers(this.#node(nodeId));
      const out: Session[] = [];
      for (let i = 0; i < ids.length; i += CHUNK) {
        const jsons = await this.#redis.hmget(this.#all, ...ids.slice(i, i + CHUNK));
        for (const s of decodeAll(jsons)) if (s.nodeId === nodeId) out.push(s);
      }
      return out.sort(byAge);
    });
  }

  async dropNode(nodeId: NodeId): Promise<readonly Session[]> {
    return this.#call("dropNode", async () => {
      const dropped: Session[] = [];
      for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
        const ids = await this.#redis.smembers(this.#node(nodeId));
        if (ids.length === 0) return dropped.sort(byAge);
        for (let i = 0; i < ids.length; i += CHUNK) {
          const chunk = ids.slice(i, i + CHUNK);
          const jsons = await this.#redis.hmget(this.#all, ...chunk);
          const keys = [this.#all, this.#node(nodeId)];
          const args: string[] = [];
          chunk.forEach((sid, j) => {
            const json = jsons[j];
            const s = json ? decodeSession(json) : undefined;
            // A vanished session still goes through the script, which cleans the node set.
            keys.push(s ? this.#user(s.userId) : this.#user("" as UserId));
            args.push(sid, json ?? "");
          });
          const reply = (await DROP.run(this.#redis, keys, args)) as string[];
          for (const j of reply) dropped.push(decodeSession(j));
        }
      }
      throw contention("dropNode");
    });
  }

  get #all(): string {
    return `${this.#tag}:all`;
  }

  #user(u: UserId): string {
    return `${this.#tag}:uh:${u}`;
  }

  #node(n: NodeId): string {
    return `${this.#tag}:node:${n}`;
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}

function byAge(a: Session, b: Session): number {
  return (
    a.connectedAt - b.connectedAt ||
    (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0)
  );
}

function contention(op: string): RelayError {
  return new RelayError(
    "store_unavailable",
    `RedisSessionDirectory.${op}: too much contention on one session`,
  );
}

/** Stable field order, so stored JSON compares equal byte for byte (the CAS relies on it). */
function encodeSession(s: Session): string {
  return JSON.stringify({
    sessionId: s.sessionId,
    userId: s.userId,
    deviceId: s.deviceId,
    nodeId: s.nodeId,
    connectedAt: s.connectedAt,
  });
}

function decodeSession(json: string): Session {
  try {
    const v = JSON.parse(json) as Session;
    if (typeof v.sessionId === "string" && typeof v.userId === "string") return v;
  } catch {
    // fall through
  }
  throw new RelayError(
    "internal",
    `RedisSessionDirectory: corrupt session record ${json.slice(0, 80)}`,
  );
}

function decodeAll(jsons: readonly (string | null)[]): Session[] {
  const out: Session[] = [];
  for (const j of jsons) if (j) out.push(decodeSession(j));
  return out;
}

/** A user's sessions from its `uh:` hash (`<seq>|<json>` values), in registration order. */
function decodeUserHash(h: Record<string, string>): Session[] {
  const rows: [number, Session][] = [];
  for (const v of Object.values(h)) {
    const bar = v.indexOf("|");
    rows.push([Number(v.slice(0, bar)), decodeSession(v.slice(bar + 1))]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return rows.map((r) => r[1]);
}
