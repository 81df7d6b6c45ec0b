/**
 * The Redis path's cost (issue 15): commands per relayed 1:1 message between two nodes,
 * counted from INFO commandstats on a redis-server of its own (so no other test's traffic
 * counts), through the public path (bench/redis-relay.ts). An upper bound, so it cannot
 * regress; also `sent` before `delivered` at every sender.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { measureRedisRelay } from "../../../bench/redis-relay.js";
import { type RedisServer, redisServerBinary, startRedisServer } from "../redis/redis-server.js";

/** The bound this branch reaches (see BENCHMARKS.md, "Session 5: Redis path"). */
const MAX_COMMANDS_PER_MSG = 50;

describe.skipIf(!redisServerBinary())("Redis commands per relayed message", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it(`a 1:1 message across two nodes costs at most ${MAX_COMMANDS_PER_MSG} Redis commands, sent before delivered`, async () => {
    const r = await measureRedisRelay({ url: server.url, pairs: 10, window: 4, perSender: 30 });
    expect(r.messages).toBeGreaterThanOrEqual(300);
    expect(r.commandsPerMsg, JSON.stringify(r.breakdown)).toBeLessThanOrEqual(MAX_COMMANDS_PER_MSG);
    expect(r.sentAfterDelivered).toBe(0);
  }, 60_000);
});
