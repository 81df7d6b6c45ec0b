/**
 * redis.commands_per_msg: Redis commands per relayed 1:1 message between two RedisNode
 * instances on a freshly started redis-server (see bench/redis-relay.ts), with the
 * per-command breakdown (`cmd_<name>` fields, commands per message) and the relay rate.
 * Without redis-server: `{"bench":"redis.commands_per_msg","skipped":true}` on stderr.
 */
import { redisServerBinary, startRedisServer } from "../test/integration/redis/redis-server.js";
import type { BenchContext } from "./harness.js";
import { measureRedisRelay } from "./redis-relay.js";

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("redis.commands_per_msg")) return;
  if (!redisServerBinary()) {
    console.error(
      JSON.stringify({ bench: "redis.commands_per_msg", skipped: true, reason: "no redis-server" }),
    );
    return;
  }
  const server = await startRedisServer();
  try {
    const r = await measureRedisRelay({ url: server.url, pairs: 50, window: 4, perSender: 40 });
    const fields: Record<string, number> = {};
    for (const [name, n] of Object.entries(r.breakdown)) fields[`cmd_${name}`] = n;
    ctx.report({
      bench: "redis.commands_per_msg",
      value: Math.round(r.commandsPerMsg * 100) / 100,
      unit: "ratio",
      messages: r.messages,
      ops_per_s: Math.round(r.opsPerS),
      duplicates: r.duplicates,
      sent_after_delivered: r.sentAfterDelivered,
      ...fields,
    });
  } finally {
    await server.dispose();
  }
}
