import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";

/** A client a Redis adapter accepts: a single server or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * A Lua script run by SHA (EVALSHA), loaded on first use or after a server restart
 * (NOSCRIPT falls back to EVAL, which caches it again).
 * @remarks Our scripts touch only keys passed in KEYS, all under one hash tag, so they run
 * unchanged on Redis Cluster.
 */
export class LuaScript {
  /** The SHA1 of the source, as Redis names it. */
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  /** Runs the script with `keys` and `args`; returns its raw reply. */
  async run(
    client: RedisClient,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (e instanceof Error && e.message.startsWith("NOSCRIPT")) {
        return await client.eval(this.source, keys.length, ...keys, ...args);
      }
      throw e;
    }
  }
}
