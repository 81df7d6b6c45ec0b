/**
 * HashRing figures: `ring.lookup` (against the `hashring` package, ketama, in the same run),
 * `ring.balance` and `ring.movement`. `npm run bench -- ring [--json]`.
 */
import { createRequire } from "node:module";
import { HashRing } from "../src/sharding/index.js";
import { type BenchContext, rates } from "./harness.js";

/** The `hashring` package (dev dependency, reference only). */
interface Ketama {
  get(key: string): string;
}
const require = createRequire(import.meta.url);
const KetamaRing = require("hashring") as new (servers: string[]) => Ketama;

const NODES = Array.from({ length: 100 }, (_, i) => `node-${i}`);

function counts(lookup: (k: string) => string, keys: readonly string[]): number[] {
  const index = new Map(NODES.map((n, i) => [n, i]));
  const c = new Array<number>(NODES.length + 1).fill(0);
  for (const k of keys) c[index.get(lookup(k)) ?? NODES.length]!++;
  return c;
}

export default async function ring(ctx: BenchContext): Promise<void> {
  if (ctx.wants("ring.lookup")) {
    // 2,000,000 distinct keys, walked in order: hashring's 5,000-entry LRU never hits.
    const keys = Array.from({ length: 2_000_000 }, (_, i) => `conversation:${i * 7919}:k`);
    // Flatten the template strings first (V8 builds them as ropes), as keys read off the
    // wire already are: the figure is the ring's cost, not the first read of a rope.
    for (const k of keys) HashRing.hash(k);
    const ours = new HashRing({ nodes: NODES });
    const ketama = new KetamaRing(NODES);
    const batch = 1000;
    let i = 0;
    let j = 0;
    let sink = 0;
    const r = await rates({
      ours: {
        batch,
        fn: () => {
          for (let b = 0; b < batch; b++) {
            if (ours.lookup(keys[i]!) === "x") sink++;
            if (++i === keys.length) i = 0;
          }
        },
      },
      hashring: {
        batch: 100,
        fn: () => {
          for (let b = 0; b < 100; b++) {
            if (ketama.get(keys[j]!) === "x") sink++;
            if (++j === keys.length) j = 0;
          }
        },
      },
    });
    const ops = r.ours ?? 0;
    const ref = r.hashring ?? 0;
    ctx.report({
      bench: "ring.lookup",
      value: 1e9 / ops,
      unit: "ns",
      ops_per_s: ops,
      hashring_ops_per_s: ref,
      speedup_vs_hashring: ops / ref,
      ratio: ops / ref,
      nodes: NODES.length,
      vnodes: ours.vnodes,
      sink,
    });
  }

  if (ctx.wants("ring.balance")) {
    const keys = Array.from({ length: 1_000_000 }, (_, i) => `user:${i}`);
    const ours = new HashRing({ nodes: NODES });
    const mean = keys.length / NODES.length;
    const c = counts((k) => ours.lookup(k)!, keys).slice(0, NODES.length);
    const ketama = new KetamaRing(NODES);
    const kc = counts((k) => ketama.get(k), keys).slice(0, NODES.length);
    ctx.report({
      bench: "ring.balance",
      value: Math.max(...c) / mean,
      unit: "ratio",
      min_over_mean: Math.min(...c) / mean,
      hashring_max_over_mean: Math.max(...kc) / mean,
      keys: keys.length,
      nodes: NODES.length,
      vnodes: ours.vnodes,
      points: ours.pointCount,
      memory_bytes: ours.memoryBytes,
    });
  }

  if (ctx.wants("ring.movement")) {
    const keys = Array.from({ length: 1_000_000 }, (_, i) => `group:${i}`);
    const before = new HashRing({ nodes: NODES });
    const after = before.clone().add("node-100");
    let moved = 0;
    let wrong = 0;
    for (const k of keys) {
      const now = after.lookup(k);
      if (now !== before.lookup(k)) {
        moved++;
        if (now !== "node-100") wrong++;
      }
    }
    const fraction = moved / keys.length;
    ctx.report({
      bench: "ring.movement",
      value: fraction,
      unit: "ratio",
      ideal: 1 / 101,
      off_ideal_percent: (Math.abs(fraction - 1 / 101) / (1 / 101)) * 100,
      moved_elsewhere: wrong,
      ranges: HashRing.diff(before, after).length,
    });
  }
}
