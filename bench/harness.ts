/**
 * The contract every `bench/*.bench.ts` file follows: a default export that receives a
 * {@link BenchContext} and reports figures through it. Figure names (`router.route_1to1`)
 * and their JSON fields are a public contract: keep them.
 */
import { Bench } from "tinybench";

/** A rate (`ops_per_s`) or any other measured value with its unit, plus extra fields. */
export type Figure =
  | { bench: string; ops_per_s: number; [extra: string]: unknown }
  | {
      bench: string;
      value: number;
      unit: "ns" | "us" | "bytes" | "ratio" | "percent" | "ms";
      [extra: string]: unknown;
    };

/** What a bench file gets from the runner. */
export interface BenchContext {
  /** True when the figure should run under the current filter. */
  wants(figure: string): boolean;
  /** Records a figure (printed as a table row or a JSON line). */
  report(figure: Figure): void;
  /**
   * Measures `fn` with tinybench and returns operations per second. `batch` is how many
   * operations one call of `fn` performs.
   */
  rate(name: string, fn: () => unknown, opts?: { batch?: number; time?: number }): Promise<number>;
}

/** Measures several functions side by side in one tinybench run, returning ops/s by name. */
export async function rates(
  cases: Record<string, { fn: () => unknown | Promise<unknown>; batch?: number }>,
  time = 1000,
): Promise<Record<string, number>> {
  const bench = new Bench({ time, warmupTime: Math.min(300, time / 2) });
  for (const [name, c] of Object.entries(cases)) bench.add(name, c.fn);
  await bench.run();
  const out: Record<string, number> = {};
  for (const task of bench.tasks) {
    // `period` is totalTime / runs. The mean of per-sample throughputs would overstate the rate
    // (it is the mean of 1/latency, which fast outlier samples inflate).
    const period = task.result && "period" in task.result ? task.result.period : 0;
    const hz = period > 0 ? 1000 / period : 0;
    out[task.name] = hz * (cases[task.name]?.batch ?? 1);
  }
  return out;
}
