import { type DeviceId, parseOptions, type UserId } from "../../core/index.js";
import type { DeviceRegistry } from "../../router/index.js";
import { LuaScript, type RedisClient } from "./lua-script.js";
import { type RedisAdapterOptions, RedisCalls, redisAdapterSchema } from "./redis-call.js";

/** Options for {@link RedisDeviceRegistry}. */
export type RedisDeviceRegistryOptions = RedisAdapterOptions;

const schema = redisAdapterSchema;

// KEYS: list; ARGV: deviceId. Appends unless already present (LPOS: Redis >= 6.0.6).
const LINK = new LuaScript(`
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
`);

/**
 * The {@link DeviceRegistry} on Redis: one list per user, `<prefix>:dev:{<userId>}`, in link
 * order. The user id is the hash tag, so users spread over a Cluster's slots.
 * @remarks Every operation touches one key and is idempotent, so transient failures are
 * retried; a user has a handful of devices, so the O(devices) LPOS/LREM are cheap.
 */
export class RedisDeviceRegistry implements DeviceRegistry {
  readonly #redis: RedisClient;
  readonly #calls: RedisCalls;
  readonly #prefix: string;

  /** @throws RelayError `invalid_option` */
  constructor(options: RedisDeviceRegistryOptions) {
    const o = parseOptions(schema, options, "RedisDeviceRegistry");
    this.#redis = o.redis;
    this.#calls = new RedisCalls("RedisDeviceRegistry", o);
    this.#prefix = o.prefix;
  }

  async link(userId: UserId, deviceId: DeviceId): Promise<void> {
    await this.#call("link", () => LINK.run(this.#redis, [this.#key(userId)], [deviceId]));
  }

  async unlink(userId: UserId, deviceId: DeviceId): Promise<void> {
    await this.#call("unlink", () => this.#redis.lrem(this.#key(userId), 0, deviceId));
  }

  async devices(userId: UserId): Promise<readonly DeviceId[]> {
    return (await this.#call("devices", () =>
      this.#redis.lrange(this.#key(userId), 0, -1),
    )) as DeviceId[];
  }

  #key(userId: UserId): string {
    return `${this.#prefix}:dev:{${userId}}`;
  }

  #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(op, fn);
  }
}
