/**
 * relaykit on Redis (`relaykit/redis`): adapters for the ports, for running many nodes on
 * one Redis. Needs the optional peer dependency `ioredis`; the core never imports it.
 * Tip: give the ioredis client a `commandTimeout` so a hung server turns into a clear
 * `store_unavailable` error (after retries) instead of a call that never settles.
 */
export { RedisDeviceRegistry, type RedisDeviceRegistryOptions } from "./device-registry.js";
export { RedisGroupStore, type RedisGroupStoreOptions } from "./group-store.js";
export type { RedisClient } from "./lua-script.js";
export { RedisMessageStore, type RedisMessageStoreOptions } from "./message-store.js";
export {
  createRedisNode,
  RedisNode,
  type RedisNodeEvents,
  type RedisNodeOptions,
  type RedisNodeQueueOptions,
} from "./node.js";
export {
  BUS_FORMAT_JSON,
  decodeBusPacket,
  encodeBusPacket,
  RedisNodeBus,
  type RedisNodeBusOptions,
} from "./node-bus.js";
export { RedisNodeRegistry, type RedisNodeRegistryOptions } from "./node-registry.js";
export { RedisPresenceStore, type RedisPresenceStoreOptions } from "./presence-store.js";
export { RedisQueueStore, type RedisQueueStoreOptions } from "./queue-store.js";
export { RedisReceiptStore, type RedisReceiptStoreOptions } from "./receipt-store.js";
export { DEFAULT_REDIS_RETRY, isTransientRedisError, type RedisRetryPolicy } from "./redis-call.js";
export { RedisSequenceStore, type RedisSequenceStoreOptions } from "./sequence-store.js";
export { RedisSessionDirectory, type RedisSessionDirectoryOptions } from "./session-directory.js";
