/** One measured closed-loop round against one or several server processes, and medians. */
import { closedLoop, type UserSet } from "./load.js";
import type { ServerProcess } from "./servers.js";

/** What one round (or the median of several) measured. */
export interface RoundResult {
  /** Server CPU (every process of the round, summed) per relayed message, us. */
  cpuUsPerMsg: number;
  /** The load process's CPU per message (it must not be the bottleneck). */
  loadCpuUsPerMsg: number;
  p99Ms: number;
  p50Ms: number;
  opsPerS: number;
  /** Bytes the servers' sockets wrote per relayed message. */
  bytesPerMsg: number;
  duplicates: number;
  sentAfterDelivered: number;
  /** Accepted but never received, plus never accepted. */
  lost: number;
  completed: number;
}

/** Runs `closedLoop(set, window, ms)` and charges it the CPU and bytes of `servers`. */
export async function measureRound(
  servers: readonly ServerProcess[],
  set: UserSet,
  window: number,
  ms: number,
): Promise<RoundResult> {
  const before = await Promise.all(servers.map((s) => s.stats()));
  const load0 = process.cpuUsage();
  const res = await closedLoop(set, window, ms);
  const load = process.cpuUsage(load0);
  const after = await Promise.all(servers.map((s) => s.stats()));
  const delta = (f: "cpuUs" | "bytesWritten") =>
    after.reduce((a, s, i) => a + s[f] - (before[i]?.[f] ?? 0), 0);
  const n = Math.max(1, res.completed);
  return {
    cpuUsPerMsg: delta("cpuUs") / n,
    loadCpuUsPerMsg: (load.user + load.system) / n,
    p99Ms: res.latency.getValueAtPercentile(99) / 1000,
    p50Ms: res.latency.getValueAtPercentile(50) / 1000,
    opsPerS: (res.completed * 1000) / res.elapsedMs,
    bytesPerMsg: delta("bytesWritten") / n,
    duplicates: res.duplicates,
    sentAfterDelivered: res.sentAfterDelivered,
    lost: res.lost + res.unaccepted,
    completed: res.completed,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

/** Medians of the rates and latencies over rounds; counts (duplicates, lost...) summed. */
export function summarize(list: readonly RoundResult[]): RoundResult {
  const med = (f: keyof RoundResult) => median(list.map((x) => x[f]));
  const sum = (f: keyof RoundResult) => list.reduce((a, x) => a + x[f], 0);
  return {
    cpuUsPerMsg: med("cpuUsPerMsg"),
    loadCpuUsPerMsg: med("loadCpuUsPerMsg"),
    p99Ms: med("p99Ms"),
    p50Ms: med("p50Ms"),
    opsPerS: med("opsPerS"),
    bytesPerMsg: med("bytesPerMsg"),
    duplicates: sum("duplicates"),
    sentAfterDelivered: sum("sentAfterDelivered"),
    lost: sum("lost"),
    completed: sum("completed"),
  };
}

/** Three significant digits. */
export const r3 = (x: number) => Number(x.toPrecision(3));
