/**
 * Testing your own routing rule inside a simulated cluster: a spam filter on the router's
 * `beforeSend` hook, run on a 3-node relaykit cluster with a lossy network, under a virtual
 * clock and a seed. `npx vitest run test/testing/spam-filter-example.test.ts` runs it.
 */
import type { Envelope, Refusal, RouterHooks, UserId } from "../../src/index.js";
import { createSimulation, type Violation } from "../../src/testing/index.js";

/** Options of {@link spamFilter}. */
export interface SpamFilterOptions {
  /** Words that get a message refused. @default ["viagra", "lottery"] */
  readonly banned?: readonly string[];
  /** Most messages one user may send per window on one node. @default 5 */
  readonly maxPerWindow?: number;
  /** @default 10_000 */
  readonly windowMs?: number;
}

/**
 * The rule under test: refuses messages with a banned word, and rate-limits each sender per
 * node (its counters live in the node's memory, as a real per-process limiter's would).
 */
export function spamFilter(options: SpamFilterOptions = {}): RouterHooks {
  const banned = (options.banned ?? ["viagra", "lottery"]).map((w) => w.toLowerCase());
  const max = options.maxPerWindow ?? 5;
  const windowMs = options.windowMs ?? 10_000;
  const windows = new Map<UserId, { start: number; count: number }>();
  return {
    beforeSend(envelope: Envelope): Refusal | undefined {
      const text = envelope.text.toLowerCase();
      if (banned.some((w) => text.includes(w))) {
        return { code: "forbidden_sender", message: "message looks like spam" };
      }
      const w = windows.get(envelope.from);
      if (!w || envelope.ts - w.start >= windowMs) {
        windows.set(envelope.from, { start: envelope.ts, count: 1 });
        return undefined;
      }
      if (++w.count > max) return { code: "rate_limited", message: "slow down" };
      return undefined;
    },
  };
}

/** What {@link simulateSpamFilter} observed. */
export interface SpamFilterRun {
  readonly seed: number;
  /** Texts bob's device received, in order. */
  readonly bobReceived: readonly string[];
  /** How alice's sends ended, by text. */
  readonly aliceSends: Readonly<Record<string, string>>;
  /** How the flooder's sends ended: counts per outcome. */
  readonly flood: Readonly<Record<string, number>>;
  /** Invariant violations (should be none). */
  readonly violations: readonly Violation[];
  /** The readable report (seed, violations, trace), for a failing assertion. */
  readonly report: string;
}

/**
 * Runs the filter in a 3-node cluster (one filter instance per node process) with a lossy,
 * duplicating bus: alice sends ham and spam to bob, and a flooder sends 20 messages in
 * one second. Returns what everyone saw.
 */
export async function simulateSpamFilter(seed: number): Promise<SpamFilterRun> {
  const sim = createSimulation({
    seed,
    nodes: 3,
    bus: { drop: 0.05, duplicate: 0.05 },
    // A fresh filter per node incarnation: its counters die with the process.
    router: () => ({ hooks: spamFilter({ maxPerWindow: 5, windowMs: 10_000 }) }),
  });
  const alice = sim.client("alice", { node: "n1" });
  const bob = sim.client("bob", { node: "n2" });
  const flooder = sim.client("flooder", { node: "n3" });
  await sim.run(50);

  const texts = ["hi bob", "win the LOTTERY now", "lunch at noon?", "cheap viagra"];
  texts.forEach((t, i) => {
    sim.at(i * 100, () => alice.send(bob.user, t));
  });
  for (let i = 0; i < 20; i++) sim.at(i * 50, () => flooder.send(bob.user, `flood ${i}`));
  await sim.runUntilQuiet();

  const aliceSends: Record<string, string> = {};
  for (const o of alice.outgoing) aliceSends[o.text] = o.reason ?? o.state;
  const flood: Record<string, number> = {};
  for (const o of flooder.outgoing) {
    const k = o.reason ?? o.state;
    flood[k] = (flood[k] ?? 0) + 1;
  }
  const byId = new Map<string, string>();
  for (const c of sim.clients) for (const o of c.outgoing) if (o.id) byId.set(o.id, o.text);
  const violations = sim.check({ bounded: true });
  return {
    seed,
    bobReceived: bob.received.map((r) => byId.get(r.id) ?? "?"),
    aliceSends,
    flood,
    violations,
    report: sim.report(violations),
  };
}
