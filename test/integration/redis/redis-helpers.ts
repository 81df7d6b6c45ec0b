/**
 * Helpers for Redis integration tests. The URL comes from the global setup
 * (test/setup/global-redis.ts); when it is absent the suites skip:
 *
 * ```ts
 * const url = redisUrl();
 * describe.skipIf(!url)("RedisThing", () => {
 *   const redis = redisFixture("thing");
 *   afterAll(() => redis.close());
 *   it("works", async () => { const client = await redis.client(); ... redis.prefix ... });
 * });
 * ```
 */
import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { inject } from "vitest";

export { type RedisServer, type StartRedisOptions, startRedisServer } from "./redis-server.js";

/** The test run's Redis URL, or `undefined` when Redis is unavailable (then skip). */
export function redisUrl(): string | undefined {
  return (
    inject("redisUrl") ?? process.env.RELAYKIT_TEST_REDIS_URL ?? process.env.RELAYKIT_REDIS_URL
  );
}

/** A key prefix no other test file or run shares: `rkt-<label>-<random>`. */
export function uniquePrefix(label: string): string {
  return `rkt-${label}-${randomBytes(4).toString("hex")}`;
}

/**
 * A fresh ioredis client, connected. Defaults suit tests: fail fast rather than queue
 * commands forever when the server is gone.
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 50, 500),
    ...options,
  });
  // Tests kill Redis on purpose: keep ioredis's reconnect errors out of the output.
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Deletes every key containing `prefix` (SCAN, so safe on a shared server). */
export async function deleteKeysWithPrefix(client: Redis, prefix: string): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) n += await client.del(...keys);
  } while (cursor !== "0");
  return n;
}

/** Per-file fixture: a unique key prefix, clients on demand, and cleanup. */
export interface RedisFixture {
  readonly url: string;
  /** This file's unique prefix; pass it (or {@link RedisFixture.subPrefix}) to adapters. */
  readonly prefix: string;
  /** A further unique prefix under this file's, e.g. one per test case. */
  subPrefix(label?: string): string;
  /** A new connected client; closed by {@link RedisFixture.close}. */
  client(options?: RedisOptions): Promise<Redis>;
  /** Deletes this file's keys and disconnects every client it made. */
  close(): Promise<void>;
}

/**
 * Builds a {@link RedisFixture}. Safe to call in a skipped suite's body (vitest still
 * collects it): only `client()` needs Redis, and `close()` is then a no-op.
 */
export function redisFixture(label: string, maybeUrl = redisUrl()): RedisFixture {
  const url = maybeUrl ?? "";
  const prefix = uniquePrefix(label);
  const clients: Redis[] = [];
  let n = 0;
  return {
    url,
    prefix,
    subPrefix: (l = "c") => `${prefix}-${l}${++n}`,
    async client(options) {
      if (!url)
        throw new Error("redisFixture: no Redis URL (guard the suite with describe.skipIf)");
      const c = await connectRedis(url, options);
      clients.push(c);
      return c;
    },
    async close() {
      if (!url) return;
      const admin = await connectRedis(url);
      try {
        await deleteKeysWithPrefix(admin, prefix);
      } finally {
        admin.disconnect();
        for (const c of clients) c.disconnect();
      }
    },
  };
}
