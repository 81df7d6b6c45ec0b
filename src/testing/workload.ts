import type { UserId } from "../core/ids.js";
import type { SimClient } from "./sim-client.js";
import type { Simulation } from "./simulation.js";

/** Options of {@link scheduleTraffic}. */
export interface TrafficOptions {
  /** How many messages to send. */
  readonly messages: number;
  /** Spread them uniformly over this many ms from now. */
  readonly spanMs: number;
  /** Who may send. @default every client of the simulation */
  readonly senders?: readonly SimClient[];
}

/**
 * Schedules random 1:1 traffic: each message goes at a random time within the span, from a
 * random sender to a random other user. Every draw comes from the simulation's seeded
 * random source (all of them now), so the same seed gives the same traffic.
 * @remarks Only the next send is on the clock at any time, which keeps the timer heap small
 * for runs of a million messages.
 */
export function scheduleTraffic(sim: Simulation, options: TrafficOptions): void {
  const senders = options.senders ?? sim.clients;
  const users = [...new Set(sim.clients.map((c) => c.user))];
  if (senders.length === 0 || users.length < 2 || options.messages <= 0) return;
  const r = sim.random;
  const plan: { at: number; from: SimClient; to: UserId; text: string }[] = [];
  for (let i = 0; i < options.messages; i++) {
    const at = Math.floor(r.next() * options.spanMs);
    const from = senders[Math.floor(r.next() * senders.length)]!;
    let to = users[Math.floor(r.next() * users.length)]!;
    if (to === from.user) to = users[(users.indexOf(to) + 1) % users.length]!;
    plan.push({ at, from, to, text: `m${i}` });
  }
  plan.sort((a, b) => a.at - b.at);
  const start = sim.clock.now();
  let next = 0;
  const fire = (): void => {
    const now = sim.clock.now();
    while (next < plan.length && start + plan[next]!.at <= now) {
      const p = plan[next++]!;
      p.from.send(p.to, p.text);
    }
    if (next < plan.length) sim.at(start + plan[next]!.at - now, fire);
  };
  sim.at(plan[0]!.at, fire);
}
