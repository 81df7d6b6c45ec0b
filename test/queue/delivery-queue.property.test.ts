import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DeviceKey,
  ManualClock,
  type MessageId,
  type Priority,
  seededRandom,
} from "../../src/core/index.js";
import { DeliveryQueue, LoadSignal, MemoryQueueStore } from "../../src/queue/index.js";
import { dev, envelope, type WorldOp, worldOps } from "./helpers.js";

const DEVICES = [dev("d0"), dev("d1"), dev("d2")] as const;
const LANE_NAMES: readonly Priority[] = ["high", "normal", "low"];

type Op =
  | { kind: "enqueue"; lane: number; mask: number; online: boolean }
  | { kind: "ack"; device: number; pick: number; any: boolean }
  | WorldOp;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("enqueue" as const),
      lane: fc.integer({ min: 0, max: 2 }),
      mask: fc.integer({ min: 1, max: 7 }),
      online: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("ack" as const),
      device: fc.integer({ min: 0, max: 2 }),
      pick: fc.nat(),
      any: fc.boolean(),
    }),
  },
  ...worldOps,
);

const configArb = fc.record({
  window: fc.integer({ min: 1, max: 4 }),
  retries: fc.integer({ min: 0, max: 3 }),
  ttlMs: fc.constantFrom(5_000, 30_000, 1_000_000),
  // Up to 12: past the id index threshold (8), so the indexed path is exercised too.
  maxPerDevice: fc.integer({ min: 1, max: 12 }),
  seed: fc.integer(),
  /** Every third transmission is acked synchronously from inside transmit (an in-process router). */
  syncAck: fc.boolean(),
  order: fc.constantFrom("fifo" as const, "priority" as const),
  /** The release budget after degraded mode; 0 leaves the default (the signal's normal depth). */
  releaseBacklog: fc.constantFrom(0, 1, 2, 3),
});

describe("DeliveryQueue property", () => {
  it("every accepted entry ends acked or failed exactly once; first transmissions are FIFO per lane, and per device outside degraded mode", async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { maxLength: 60 }), async (cfg, ops) => {
        const clock = new ManualClock();
        const store = new MemoryQueueStore();
        const load = new LoadSignal({ clock, histogram: false });
        const online = new Set<DeviceKey>();
        const outcome = new Map<string, string>(); // "id|device" -> acked | failed:<reason>
        const accepted = new Set<string>();
        const refused = new Set<string>();
        const arrival = new Map<string, number>(); // id -> enqueue index
        const laneOf = new Map<string, number>();
        const firstTx = new Map<DeviceKey, string[]>();
        const txSeen = new Set<string>();
        const outstanding = new Map<DeviceKey, MessageId[]>();
        /** Per device: arrival index of accepted entries never transmitted and without an outcome. */
        const untransmitted = new Map<DeviceKey, Map<string, number>>();
        const problems: string[] = [];
        let transmissions = 0;

        const q: DeliveryQueue = new DeliveryQueue({
          clock,
          store,
          load,
          random: seededRandom(cfg.seed),
          storeRetry: false,
          window: cfg.window,
          order: cfg.order,
          ...(cfg.releaseBacklog > 0 ? { releaseBacklog: cfg.releaseBacklog } : {}),
          ttlMs: cfg.ttlMs,
          maxPerDevice: cfg.maxPerDevice,
          retry: { retries: cfg.retries, minTimeout: 1000, factor: 2, randomize: true },
          transmit: (device, env) => {
            const key = `${env.id}|${device}`;
            if (!online.has(device)) problems.push(`transmit to offline ${key}`);
            if (outcome.has(key)) problems.push(`transmit after outcome ${key}`);
            if (!accepted.has(key)) problems.push(`transmit of unaccepted ${key}`);
            if (!txSeen.has(key)) {
              txSeen.add(key);
              const waiting = untransmitted.get(device);
              waiting?.delete(env.id);
              // "fifo" outside degraded mode: nothing that arrived earlier for this device is
              // still waiting for its first transmission.
              if (cfg.order === "fifo" && !q.degraded && waiting) {
                const mine = arrival.get(env.id)!;
                for (const [id, at] of waiting) {
                  if (at < mine)
                    problems.push(`${key} went before earlier ${id} outside degraded mode`);
                }
              }
              firstTx.get(device)?.push(env.id) ?? firstTx.set(device, [env.id]);
            }
            const out = outstanding.get(device) ?? [];
            if (!out.includes(env.id)) out.push(env.id);
            outstanding.set(device, out);
            if (cfg.syncAck && ++transmissions % 3 === 0) void q.ack(device, [env.id]);
          },
          onFailed: (env, device, reason) => {
            const key = `${env.id}|${device}`;
            if (outcome.has(key)) problems.push(`second outcome ${key}: ${reason}`);
            if (reason === "attempts_exhausted" && !online.has(device)) {
              problems.push(`attempts exhausted while offline ${key}`);
            }
            outcome.set(key, `failed:${reason}`);
            untransmitted.get(device)?.delete(env.id);
          },
        });
        q.on("delivered", (device, id) => {
          const key = `${id}|${device}`;
          if (outcome.has(key)) problems.push(`second outcome ${key}: acked`);
          outcome.set(key, "acked");
          untransmitted.get(device)?.delete(id);
        });

        let n = 0;
        for (const op of ops) {
          switch (op.kind) {
            case "enqueue": {
              n++;
              const env = envelope(n, LANE_NAMES[op.lane]);
              const recipients = DEVICES.filter((_, i) => op.mask & (1 << i));
              arrival.set(env.id, n);
              laneOf.set(env.id, op.lane);
              // Transmission starts inside enqueue, so count the entries accepted until refused.
              for (const d of recipients) {
                accepted.add(`${env.id}|${d}`);
                const waiting = untransmitted.get(d) ?? new Map<string, number>();
                untransmitted.set(d, waiting.set(env.id, n));
              }
              // Either the router says who is online, or the queue relies on connect/disconnect.
              const r = await q.enqueue(
                env,
                recipients,
                op.online ? { online: (d) => online.has(d) } : {},
              );
              // Refused, or accepted without the devices whose queues were full.
              const left = r.ok ? (r.skipped ?? []) : recipients;
              for (const d of left) {
                accepted.delete(`${env.id}|${d}`);
                untransmitted.get(d)?.delete(env.id);
                refused.add(`${env.id}|${d}`);
              }
              break;
            }
            case "ack": {
              const d = DEVICES[op.device]!;
              const pool: MessageId[] = op.any
                ? [...accepted]
                    .filter((k) => k.endsWith(`|${d}`))
                    .map((k) => k.split("|")[0] as MessageId)
                : (outstanding.get(d) ?? []);
              if (pool.length === 0) break;
              const id = pool[op.pick % pool.length]!;
              const key = `${id}|${d}`;
              const held = accepted.has(key) && !outcome.has(key);
              await q.ack(d, [id]);
              // An ack of an entry the queue holds always takes it.
              if (held && outcome.get(key) !== "acked") problems.push(`ack of ${key} missed`);
              break;
            }
            case "connect":
              online.add(DEVICES[op.device]!);
              q.deviceConnected(DEVICES[op.device]!);
              break;
            case "disconnect":
              online.delete(DEVICES[op.device]!);
              q.deviceDisconnected(DEVICES[op.device]!);
              break;
            case "advance":
              clock.advance(op.ms);
              break;
            case "load":
              load.setDegraded(op.to);
              break;
          }
          let onlinePending = 0;
          for (const d of online) onlinePending += q.pending(d);
          if (q.backlog < 0 || q.backlog > onlinePending) {
            problems.push(`backlog ${q.backlog} outside [0, ${onlinePending}] after ${op.kind}`);
          }
        }

        // Drain: load falls, everyone connects, time runs until nothing is held.
        load.setDegraded(undefined);
        for (const d of DEVICES) {
          online.add(d);
          q.deviceConnected(d);
        }
        for (let guard = 0; q.depth > 0 && guard < 10_000; guard++) {
          const due = clock.nextDue();
          if (due === undefined) break;
          clock.advanceTo(due);
        }

        expect(problems).toEqual([]);
        expect(q.depth).toBe(0);
        expect(q.backlog).toBe(0);
        expect(await store.devices()).toEqual([]);
        for (const key of accepted) expect(outcome.has(key), `lost ${key}`).toBe(true);
        for (const key of refused) {
          expect(outcome.has(key), `refused but had an outcome ${key}`).toBe(false);
          expect(txSeen.has(key), `refused but transmitted ${key}`).toBe(false);
        }
        for (const [device, ids] of firstTx) {
          for (let lane = 0; lane < 3; lane++) {
            const order = ids.filter((id) => laneOf.get(id) === lane).map((id) => arrival.get(id)!);
            expect(order, `FIFO of lane ${lane} at ${device}`).toEqual(
              [...order].sort((a, b) => a - b),
            );
          }
        }
        q.close();
      }),
      { numRuns: Number(process.env.QUEUE_RUNS ?? 200) },
    );
  });
});
