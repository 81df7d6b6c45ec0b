import { type GroupId, parseOptions, RelayError, type UserId } from "../../core/index.js";
import type {
  AddMembersResult,
  GroupPatch,
  GroupReceiptPolicy,
  GroupRecord,
  GroupStore,
} from "../../groups/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisGroupStore}. */
export type RedisGroupStoreOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// KEYS: meta, members, admins; ARGV: onlyIfNew, recJson, name, receipts, nMembers, members..., admins...
// The join counter `seq` in meta scores members and admins, so both keep their order.
const STORE = new LuaScript(`
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local n = tonumber(ARGV[5])
local seq = 0
local member = {}
for i = 6, 5 + n do
  local u = ARGV[i]
  if not member[u] then
    seq = seq + 1
    member[u] = true
    redis.call('ZADD', KEYS[2], seq, u)
  end
end
for i = 6 + n, #ARGV do
  local u = ARGV[i]
  if member[u] then
    seq = seq + 1
    redis.call('ZADD', KEYS[3], 'NX', seq, u)
  end
end
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'name', ARGV[3], 'receipts', ARGV[4], 'seq', seq)
return 1
`);

// KEYS: meta, members, admins. Returns {} when missing, else {meta pairs, members, admins}.
const GET = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
return {
  redis.call('HMGET', KEYS[1], 'rec', 'name', 'receipts'),
  redis.call('ZRANGE', KEYS[2], 0, -1),
  redis.call('ZRANGE', KEYS[3], 0, -1)
}
`);

// KEYS: meta, members; ARGV: limit, users... Returns {'not_found'}, {'full', size} or {'ok', added}.
const ADD = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
local size = redis.call('ZCARD', KEYS[2])
local added = {}
local seen = {}
for i = 2, #ARGV do
  local u = ARGV[i]
  if not seen[u] then
    seen[u] = true
    if not redis.call('ZSCORE', KEYS[2], u) then added[#added + 1] = u end
  end
end
if size + #added > tonumber(ARGV[1]) then return {'full', size} end
for _, u in ipairs(added) do
  redis.call('ZADD', KEYS[2], redis.call('HINCRBY', KEYS[1], 'seq', 1), u)
end
return {'ok', added}
`);

// KEYS: meta, members, admins; ARGV: users... Returns {0} when missing, else {1, removed}.
const REMOVE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local removed = {}
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZREM', KEYS[3], ARGV[i])
    removed[#removed + 1] = ARGV[i]
  end
end
return {1, removed}
`);

// KEYS: meta, members, admins; ARGV: user, '1' (promote) or '0' (demote)
const SET_ADMIN = new LuaScript(`
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
if ARGV[2] == '1' then
  if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    redis.call('ZADD', KEYS[3], redis.call('HINCRBY', KEYS[1], 'seq', 1), ARGV[1])
  end
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return 1
`);

// KEYS: meta; ARGV: field, value, ... (name / receipts)
const UPDATE = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1
`);

/**
 * The {@link GroupStore} on Redis, shared by every node.
 *
 * Keys per group, under the hash tag `{<groupId>}` (one slot per group, groups spread over
 * a Cluster): `<prefix>:grp:{<groupId>}:meta` hash (record JSON, name, receipts, join
 * counter), `:members` and `:admins` sorted sets scored by join order. Plus one set
 * `{<prefix>:grp}:ids` listing the groups, for `ids()`.
 *
 * @remarks Every change to one group is one Lua script, so the size limit and "admins are
 * members" hold under concurrent writers on any node. The id index lives in another slot:
 * it is written before a group is created and cleaned after it is deleted, and `ids()`
 * checks each id still exists, so a crash between the two steps never shows a ghost group.
 */
export class RedisGroupStore implements GroupStore {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #prefix: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisGroupStoreOptions) {
    const o = parseOptions(schema, options, "RedisGroupStore");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisGroupStore", o);
    this.#prefix = o.prefix;
  }

  async create(group: GroupRecord): Promise<boolean> {
    return (await this.#store("create", group, true)) === 1;
  }

  async put(group: GroupRecord): Promise<void> {
    await this.#store("put", group, false);
  }

  async get(groupId: GroupId): Promise<GroupRecord | undefined> {
    const r = (await this.#call("get", () => GET.run(this.#redis, this.#keys(groupId), []))) as
      | []
      | [(string | null)[], string[], string[]];
    if (r.length === 0) return undefined;
    const [[rec, name, receipts], members, admins] = r;
    let base: Omit<GroupRecord, "members" | "admins">;
    try {
      base = JSON.parse(rec ?? "") as Omit<GroupRecord, "members" | "admins">;
    } catch (e) {
      throw new RelayError("internal", `RedisGroupStore: corrupt record for group ${groupId}`, {
        cause: e,
      });
    }
    return {
      ...base,
      name: name ?? base.name,
      receipts: (receipts ?? base.receipts) as GroupReceiptPolicy,
      members: members as UserId[],
      admins: admins as UserId[],
    };
  }

  async addMembers(
    groupId: GroupId,
    userIds: readonly UserId[],
    limit: number,
  ): Promise<AddMembersResult> {
    const k = this.#keys(groupId);
    const r = (await this.#call("addMembers", () =>
      ADD.run(this.#redis, [k[0], k[1]], [Math.min(limit, Number.MAX_SAFE_INTEGER), ...userIds]),
    )) as [string, unknown?];
    if (r[0] === "not_found") return { status: "not_found" };
    if (r[0] === "full") return { status: "full", size: Number(r[1]) };
    return { status: "ok", added: (r[1] ?? []) as UserId[] };
  }

  async removeMembers(
    groupId: GroupId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[] | undefined> {
    const r = (await this.#call("removeMembers", () =>
      REMOVE.run(this.#redis, this.#keys(groupId), [...userIds]),
    )) as [number, UserId[]?];
    return r[0] === 1 ? (r[1] ?? []) : undefined;
  }

  async setAdmin(groupId: GroupId, userId: UserId, admin: boolean): Promise<boolean> {
    const r = await this.#call("setAdmin", () =>
      SET_ADMIN.run(this.#redis, this.#keys(groupId), [userId, admin ? "1" : "0"]),
    );
    return r === 1;
  }

  async update(groupId: GroupId, patch: GroupPatch): Promise<boolean> {
    const args: string[] = [];
    if (patch.name !== undefined) args.push("name", patch.name);
    if (patch.receipts !== undefined) args.push("receipts", patch.receipts);
    const [meta] = this.#keys(groupId);
    const r = await this.#call("update", () => UPDATE.run(this.#redis, [meta], args));
    return r === 1;
  }

  async members(groupId: GroupId): Promise<readonly UserId[] | undefined> {
    return (await this.get(groupId))?.members;
  }

  async isMember(groupId: GroupId, userId: UserId): Promise<boolean> {
    const [, members] = this.#keys(groupId);
    const score = await this.#call("isMember", () => this.#redis.zscore(members, userId));
    return score !== null;
  }

  async delete(groupId: GroupId): Promise<boolean> {
    // One DEL of keys in one slot is atomic; meta always exists while the group does.
    const n = await this.#call("delete", () => this.#redis.del(...this.#keys(groupId)));
    await this.#call("delete", () => this.#redis.srem(this.#index, groupId));
    return n > 0;
  }

  async ids(): Promise<readonly GroupId[]> {
    // SSCAN in pages (never one huge SMEMBERS), each page checked against the groups' meta keys.
    const out = new Set<GroupId>();
    let cursor = "0";
    do {
      const from = cursor;
      const [next, page] = await this.#call("ids", () =>
        this.#redis.sscan(this.#index, from, "COUNT", 500),
      );
      const exists = await Promise.all(
        page.map((g) => this.#call("ids", () => this.#redis.exists(this.#keys(g as GroupId)[0]))),
      );
      page.forEach((g, i) => {
        if (exists[i] === 1) out.add(g as GroupId);
      });
      cursor = next;
    } while (cursor !== "0");
    return [...out];
  }

  async #store(op: string, group: GroupRecord, onlyIfNew: boolean): Promise<number> {
    const { members, admins, ...rest } = group;
    await this.#call(op, () => this.#redis.sadd(this.#index, group.id));
    return (await this.#call(op, () =>
      STORE.run(this.#redis, this.#keys(group.id), [
        onlyIfNew ? "1" : "0",
        JSON.stringify(rest),
        group.name,
        group.receipts,
        members.length,
        ...members,
        ...admins,
      ]),
    )) as number;
  }

  get #index(): string {
    return `{${this.#prefix}:grp}:ids`;
  }

  #keys(groupId: GroupId): [meta: string, members: string, admins: string] {
    const base = `${this.#prefix}:grp:{${groupId}}`;
    return [`${base}:meta`, `${base}:members`, `${base}:admins`];
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}
