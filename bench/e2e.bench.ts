/**
 * e2e.*: relaykit measured at the socket against Socket.IO 4.8 and a raw `ws` relay, in one
 * run. Each server is its own process (bench/e2e/server.ts); this process is the load (real
 * WebSockets on 127.0.0.1, bench/e2e/load.ts). Server CPU comes from the server process's
 * `process.cpuUsage()`, bytes from its sockets' `bytesWritten`, latency (send to ✓✓) from an
 * HDR histogram on the load side. Closed-loop rounds alternate the servers so a slow spell of
 * the shared machine hits them all; each figure is the median over rounds.
 *
 * - `e2e.relay` (200 users x window 4) and `e2e.relay_1000` (1,000 x 2): `value` = relaykit
 *   (README quick start) server CPU us per relayed message; the other servers as fields.
 * - `e2e.overload`: relaykit offered twice the rate it sustained (open loop), 1/4 high lane:
 *   `value` = high-lane p99 under overload / high-lane p99 at a tenth of that rate.
 * - `e2e.idle`: server RSS per idle connection at 10,000 connections (relaykit, raw ws).
 *
 * Knobs for quick runs: E2E_ROUNDS (3), E2E_ROUND_MS (1500), E2E_IDLE (10000). `e2e.idle`
 * needs `ulimit -n` above E2E_IDLE + 200 (it fails with that advice otherwise).
 * Writes docs/bench/e2e.svg (CPU per message and p99 of the four servers, 200 x 4).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderChart } from "./e2e/chart.js";
import { closedLoop, openLoop, UserSet } from "./e2e/load.js";
import type { ServerKind } from "./e2e/protocol.js";
import { measureRound, type RoundResult, r3, summarize } from "./e2e/round.js";
import { type ServerProcess, startServer } from "./e2e/servers.js";
import type { BenchContext } from "./harness.js";

const ROUNDS = Number(process.env.E2E_ROUNDS ?? 3);
const ROUND_MS = Number(process.env.E2E_ROUND_MS ?? 1500);
const IDLE = Number(process.env.E2E_IDLE ?? 10_000);
const KINDS: ServerKind[] = ["relaykit", "relaykit-demo", "raw-ws", "socketio"];

/** One server's medians over the rounds of a scenario. */
export type KindResult = RoundResult;

/** Closed-loop rounds over every server, kinds alternating (the order rotates per round). */
async function relayScenario(
  servers: Map<ServerKind, ServerProcess>,
  users: number,
  window: number,
  prefix: string,
): Promise<{ results: Map<ServerKind, KindResult>; sets: Map<ServerKind, UserSet> }> {
  const sets = new Map<ServerKind, UserSet>();
  for (const [kind, srv] of servers) {
    const set = new UserSet(kind, srv.port, prefix);
    await set.connect(users);
    sets.set(kind, set);
    await closedLoop(set, window, 300); // warm-up (JIT, buffers)
  }
  const rounds = new Map<ServerKind, KindResult[]>();
  for (let r = 0; r < ROUNDS; r++) {
    const order = KINDS.filter((k) => servers.has(k));
    for (let i = 0; i < order.length; i++) {
      const kind = order[(i + r) % order.length] as ServerKind;
      const srv = servers.get(kind) as ServerProcess;
      const set = sets.get(kind) as UserSet;
      const list = rounds.get(kind) ?? [];
      list.push(await measureRound([srv], set, window, ROUND_MS));
      rounds.set(kind, list);
    }
  }
  const results = new Map<ServerKind, KindResult>();
  for (const [kind, list] of rounds) results.set(kind, summarize(list));
  return { results, sets };
}

function relayFigure(
  name: string,
  users: number,
  window: number,
  res: Map<ServerKind, KindResult>,
) {
  const rk = res.get("relaykit") as KindResult;
  const demo = res.get("relaykit-demo") as KindResult;
  const io = res.get("socketio") as KindResult;
  const raw = res.get("raw-ws") as KindResult;
  return {
    bench: name,
    value: r3(rk.cpuUsPerMsg),
    unit: "us" as const,
    users,
    window,
    socketio_us: r3(io.cpuUsPerMsg),
    raw_ws_corked_us: r3(raw.cpuUsPerMsg),
    demo_us: r3(demo.cpuUsPerMsg),
    load_side_us: r3(rk.loadCpuUsPerMsg),
    socketio_load_side_us: r3(io.loadCpuUsPerMsg),
    ratio_vs_socketio: r3(rk.cpuUsPerMsg / io.cpuUsPerMsg),
    ratio_vs_raw_ws: r3(rk.cpuUsPerMsg / raw.cpuUsPerMsg),
    p99_ms: r3(rk.p99Ms),
    socketio_p99_ms: r3(io.p99Ms),
    raw_ws_p99_ms: r3(raw.p99Ms),
    demo_p99_ms: r3(demo.p99Ms),
    ops_per_s: Math.round(rk.opsPerS),
    socketio_ops_per_s: Math.round(io.opsPerS),
    raw_ws_ops_per_s: Math.round(raw.opsPerS),
    demo_ops_per_s: Math.round(demo.opsPerS),
    bytes_written_per_msg: Math.round(rk.bytesPerMsg),
    socketio_bytes_per_msg: Math.round(io.bytesPerMsg),
    raw_ws_bytes_per_msg: Math.round(raw.bytesPerMsg),
    duplicates: rk.duplicates,
    demo_duplicates: demo.duplicates,
    sent_after_delivered: rk.sentAfterDelivered,
    lost: rk.lost + demo.lost,
    rounds: ROUNDS,
    round_ms: ROUND_MS,
  };
}

/** The soft `Max open files` limit of this process (children inherit it), if readable. */
function openFileLimit(): number | undefined {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export default async function run(ctx: BenchContext): Promise<void> {
  const wantRelay = ctx.wants("e2e.relay");
  const want1000 = ctx.wants("e2e.relay_1000");
  const wantOverload = ctx.wants("e2e.overload");
  const wantIdle = ctx.wants("e2e.idle");
  if (!wantRelay && !want1000 && !wantOverload && !wantIdle) return;

  if (wantRelay || want1000 || wantOverload) {
    const servers = new Map<ServerKind, ServerProcess>();
    for (const kind of KINDS) servers.set(kind, await startServer(kind));
    let sustained = 0;
    if (wantRelay || wantOverload) {
      const { results, sets } = await relayScenario(servers, 200, 4, "u");
      sustained = (results.get("relaykit") as KindResult).opsPerS;
      if (wantRelay) {
        ctx.report(relayFigure("e2e.relay", 200, 4, results));
        const out = fileURLToPath(new URL("../docs/bench/", import.meta.url));
        mkdirSync(out, { recursive: true });
        writeFileSync(`${out}e2e.svg`, renderChart(results));
      }
      if (wantOverload) {
        const set = sets.get("relaykit") as UserSet;
        const srv = servers.get("relaykit") as ServerProcess;
        const quiet = await openLoop(set, Math.max(50, sustained / 10), 2000);
        const before = await srv.stats();
        const over = await openLoop(set, sustained * 2, 3000);
        const after = await srv.stats();
        const quietP99 = quiet.high.getValueAtPercentile(99) / 1000;
        const overP99 = over.high.getValueAtPercentile(99) / 1000;
        ctx.report({
          bench: "e2e.overload",
          value: r3(overP99 / quietP99),
          unit: "ratio",
          offered_per_s: Math.round(sustained * 2),
          offered: over.offered,
          completed: over.completed,
          high_p99_ms: r3(overP99),
          unloaded_high_p99_ms: r3(quietP99),
          all_p99_ms: r3(over.latency.getValueAtPercentile(99) / 1000),
          lost: over.lost,
          unaccepted: over.unaccepted,
          duplicates: over.duplicates,
          deferred: after.deferred - before.deferred,
          sent_after_delivered: over.sentAfterDelivered,
          drain_ms: Math.round(over.elapsedMs - 3000),
        });
      }
      for (const s of sets.values()) s.close();
    }
    if (want1000) {
      const { results, sets } = await relayScenario(servers, 1000, 2, "k");
      ctx.report(relayFigure("e2e.relay_1000", 1000, 2, results));
      for (const s of sets.values()) s.close();
    }
    for (const s of servers.values()) await s.stop();
  }

  if (wantIdle) {
    // Both this process and the server hold one descriptor per connection: a soft limit
    // under the count fails the handshakes. Node cannot raise it; run `ulimit -n 20000` first.
    const fds = openFileLimit();
    if (fds !== undefined && fds < IDLE + 200) {
      throw new Error(
        `e2e.idle needs ${IDLE + 200} open files per process, the limit is ${fds}: run \`ulimit -n ${IDLE + 1000}\` first, or set E2E_IDLE lower`,
      );
    }
    const per: Record<string, { rss: number; heap: number }> = {};
    for (const kind of ["relaykit", "raw-ws"] as const) {
      const srv = await startServer(kind);
      const set = new UserSet(kind, srv.port, "i");
      await set.connect(20); // the first connections' one-off costs are not per connection
      const before = await srv.stats(true);
      await set.connect(20 + IDLE, 200);
      await new Promise((r) => setTimeout(r, 500));
      const after = await srv.stats(true);
      per[kind] = {
        rss: (after.rss - before.rss) / IDLE,
        heap: (after.heapUsed - before.heapUsed) / IDLE,
      };
      set.close();
      await srv.stop();
    }
    const rk = per.relaykit as { rss: number; heap: number };
    const raw = per["raw-ws"] as { rss: number; heap: number };
    ctx.report({
      bench: "e2e.idle",
      value: Math.round(rk.rss),
      unit: "bytes",
      connections: IDLE,
      raw_ws_bytes: Math.round(raw.rss),
      heap_bytes: Math.round(rk.heap),
      raw_ws_heap_bytes: Math.round(raw.heap),
      ratio_vs_raw_ws: r3(rk.rss / raw.rss),
    });
  }
}
