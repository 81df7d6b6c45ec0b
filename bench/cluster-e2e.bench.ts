/**
 * cluster.e2e: two relaykit node processes on one freshly started `redis-server`
 * (createRedisNode + createWsGateway, as examples/cluster assembles them) against one
 * relaykit node in memory, the same load in the same run: 200 users x window 4 over real
 * WebSockets from this process, every pair split across the two nodes (user 2k on node A, its
 * partner 2k+1 on node B). Rounds alternate the two set-ups; figures are medians.
 *
 * Fields: `ops_per_s` (cross-node relayed messages/s, each with ✓ and ✓✓), `single_node_ops_per_s`,
 * `ratio`, `redis_commands_per_msg` (INFO commandstats delta over the rounds / messages),
 * `cpu_us_per_msg` (both nodes summed), `single_cpu_us_per_msg`, `duplicates`,
 * `sent_after_delivered`. Knobs: E2E_ROUNDS (3), E2E_ROUND_MS (1500).
 */
import { Redis } from "ioredis";
import { startRedisServer } from "../test/integration/redis/redis-server.js";
import { closedLoop, UserSet } from "./e2e/load.js";
import { measureRound, type RoundResult, r3, summarize } from "./e2e/round.js";
import { type ServerProcess, startServer } from "./e2e/servers.js";
import type { BenchContext } from "./harness.js";

const ROUNDS = Number(process.env.E2E_ROUNDS ?? 3);
const ROUND_MS = Number(process.env.E2E_ROUND_MS ?? 1500);
const USERS = 200;
const WINDOW = 4;

/** Total `calls` over every command in `INFO commandstats`. */
async function commandCalls(redis: Redis): Promise<number> {
  const info = await redis.info("commandstats");
  let sum = 0;
  for (const m of info.matchAll(/calls=(\d+)/g)) sum += Number(m[1]);
  return sum;
}

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("cluster.e2e")) return;
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  const servers: ServerProcess[] = [];
  const sets: UserSet[] = [];
  try {
    const env = { REDIS_URL: redisServer.url };
    const a = await startServer("relaykit-redis", { ...env, NODE_ID: "a" });
    servers.push(a);
    const b = await startServer("relaykit-redis", { ...env, NODE_ID: "b" });
    servers.push(b);
    const single = await startServer("relaykit");
    servers.push(single);

    const split = new UserSet("relaykit-redis", (i) => (i % 2 === 0 ? a.port : b.port), "x");
    sets.push(split);
    await split.connect(USERS, 50);
    const one = new UserSet("relaykit", single.port, "s");
    sets.push(one);
    await one.connect(USERS, 50);
    await closedLoop(split, WINDOW, 300); // warm-up
    await closedLoop(one, WINDOW, 300);

    const clusterRounds: RoundResult[] = [];
    const singleRounds: RoundResult[] = [];
    let commands = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ["cluster", "single"] : ["single", "cluster"];
      for (const which of order) {
        if (which === "single") {
          singleRounds.push(await measureRound([single], one, WINDOW, ROUND_MS));
          continue;
        }
        const c0 = await commandCalls(redis);
        clusterRounds.push(await measureRound([a, b], split, WINDOW, ROUND_MS));
        commands += (await commandCalls(redis)) - c0 - 1; // minus the INFO itself
      }
    }
    const cl = summarize(clusterRounds);
    const sg = summarize(singleRounds);
    ctx.report({
      bench: "cluster.e2e",
      ops_per_s: Math.round(cl.opsPerS),
      single_node_ops_per_s: Math.round(sg.opsPerS),
      ratio: r3(cl.opsPerS / sg.opsPerS),
      redis_commands_per_msg: r3(commands / Math.max(1, cl.completed)),
      cpu_us_per_msg: r3(cl.cpuUsPerMsg),
      single_cpu_us_per_msg: r3(sg.cpuUsPerMsg),
      cpu_ratio: r3(cl.cpuUsPerMsg / sg.cpuUsPerMsg),
      p99_ms: r3(cl.p99Ms),
      single_p99_ms: r3(sg.p99Ms),
      duplicates: cl.duplicates,
      sent_after_delivered: cl.sentAfterDelivered,
      lost: cl.lost,
      single_duplicates: sg.duplicates,
      users: USERS,
      window: WINDOW,
      rounds: ROUNDS,
      round_ms: ROUND_MS,
    });
  } finally {
    for (const s of sets) s.close();
    for (const s of servers) await s.stop();
    redis.disconnect();
    await redisServer.dispose();
  }
}
