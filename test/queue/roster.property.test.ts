import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DeviceKey,
  type Envelope,
  groupId,
  ManualClock,
  type MessageId,
  type Priority,
} from "../../src/core/index.js";
import {
  DeliveryQueue,
  type DeliveryQueueOptions,
  LoadSignal,
  MemoryQueueStore,
} from "../../src/queue/index.js";
import { applyWorldOp, dev, envelope, type WorldOp, worldOpsOver } from "./helpers.js";

/**
 * A fan-out to more than 8 devices is queued through a roster on the synchronous face (one
 * log message per message, each device reading it from its cursor) and as one entry per
 * device on the async face. Driven by the same operations, both must do the same thing:
 * the same transmissions per device in the same order, the same failures, counters, pending
 * counts and stored entries.
 */
const N = 12;
const DEVICES = Array.from({ length: N }, (_, i) => dev(`d${i}`));
/** Recurring recipient lists (a group's devices), rebuilt as new arrays for every message. */
const LISTS: readonly (readonly number[])[] = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1],
];
const LANES: readonly Priority[] = ["high", "normal", "low"];

type Op =
  | {
      kind: "group";
      list: number;
      lane: number;
      online: boolean;
      frozen: boolean;
      /** The device that sent it (left out of the list), if any. */
      sender: number;
      /** A group message (rosters by group), or a fan-out to a plain list. */
      group: boolean;
    }
  | { kind: "direct"; device: number; lane: number }
  | { kind: "ack"; device: number; picks: number[]; head: number }
  | WorldOp
  | { kind: "release"; device: number }
  /** The k-th last message queued again, not claimed fresh (a retried enqueue). */
  | { kind: "again"; back: number }
  | { kind: "recover"; device: number };

const device = fc.integer({ min: 0, max: N - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant("group" as const),
      list: fc.integer({ min: 0, max: LISTS.length - 1 }),
      // Mostly one lane: a roster keeps one lane, another one goes per device.
      lane: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, fc.integer({ min: 0, max: 2 })),
      online: fc.boolean(),
      frozen: fc.boolean(),
      sender: fc.oneof(
        { weight: 2, arbitrary: fc.constant(-1) },
        { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: N - 1 }) },
      ),
      group: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("direct" as const),
      device,
      lane: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 16,
    arbitrary: fc.record({
      kind: fc.constant("ack" as const),
      device,
      picks: fc.array(fc.nat(), { minLength: 0, maxLength: 3 }),
      // Acks of the oldest held entries, in order (a client's batched acks), or of all of
      // them (a device that catches up: it then holds nothing, and is on a roster afresh).
      head: fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 4 }) },
        { weight: 1, arbitrary: fc.constant(1000) },
      ),
    }),
  },
  ...worldOpsOver(N, { advance: 5 }),
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("release" as const), device }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("again" as const),
      back: fc.integer({ min: 1, max: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("recover" as const), device }) },
);

const configArb = fc.record({
  window: fc.integer({ min: 1, max: 4 }),
  retries: fc.integer({ min: 0, max: 3 }),
  ttlMs: fc.constantFrom(5_000, 30_000, 1_000_000),
  maxPerDevice: fc.oneof(
    { weight: 3, arbitrary: fc.constant(1000) },
    fc.integer({ min: 1, max: 40 }),
  ),
  /** Every device connected at the start (the usual group: most members online). */
  startConnected: fc.oneof({ weight: 2, arbitrary: fc.constant(true) }, fc.constant(false)),
  randomize: fc.boolean(),
  releaseBacklog: fc.constantFrom(1, 2, 1_000_000),
  /** Every third transmission to a device is acked from inside transmit (an in-process router). */
  ackInTransmit: fc.boolean(),
  /**
   * Inside transmit, now and then, another device of the fan-out disconnects (1), connects
   * (2) or acks the message (3): a callback that runs while a fan-out is being queued.
   */
  cross: fc.constantFrom(0, 1, 2, 3),
  /** The jitter: a fixed draw (the two faces may draw in another order across devices). */
  jitter: fc.double({ min: 0, max: 0.999, noNaN: true }),
});

type Config = typeof configArb extends fc.Arbitrary<infer C> ? C : never;

function world(cfg: Config, sync: boolean) {
  const clock = new ManualClock();
  /** Per device: its transmissions and failures in order. */
  const byDevice = new Map<DeviceKey, string[]>();
  /** Every failure, in any order within one instant. */
  const failures: string[] = [];
  const note = (d: DeviceKey, line: string) => {
    let list = byDevice.get(d);
    if (!list) {
      list = [];
      byDevice.set(d, list);
    }
    list.push(line);
  };
  /** Transmissions per device (the worlds interleave devices differently within an instant). */
  const transmissions = new Map<DeviceKey, number>();
  let enqueuing = false;
  let crossBudget = 0;
  let q!: DeliveryQueue;
  const ack = (d: DeviceKey, ids: readonly MessageId[]): number | Promise<number> =>
    sync ? q.sync!.ackSync(d, ids) : q.ack(d, ids);
  const options: DeliveryQueueOptions = {
    clock,
    store: new MemoryQueueStore(),
    load: new LoadSignal({ clock, histogram: false }),
    random: { next: () => cfg.jitter },
    storeRetry: false,
    window: cfg.window,
    ttlMs: cfg.ttlMs,
    maxPerDevice: cfg.maxPerDevice,
    releaseBacklog: cfg.releaseBacklog,
    retry: { retries: cfg.retries, minTimeout: 1000, factor: 2, randomize: cfg.randomize },
    transmit: (d, env, attempt) => {
      note(d, `t=${clock.now()} tx ${env.id} #${attempt}`);
      const t = (transmissions.get(d) ?? 0) + 1;
      transmissions.set(d, t);
      if (cfg.ackInTransmit && t % 3 === 0) void ack(d, [env.id]);
      const other = DEVICES[(DEVICES.indexOf(d) + 1 + (t % 5)) % N]!;
      // (Only while a fan-out is queued: elsewhere, as at an expiry, the two faces may take
      // the devices in another order, and a cross-device callback would then see another world.)
      // (At most two per fan-out: connects that reconnect each other inside transmit would
      // resend forever, on either face.)
      if (enqueuing && t % 4 === 1 && crossBudget-- > 0) {
        if (cfg.cross === 1) q.deviceDisconnected(other);
        if (cfg.cross === 2) q.deviceConnected(other);
        if (cfg.cross === 3) void ack(other, [env.id]);
      }
    },
    onFailed: (env, d, reason) => {
      note(d, `t=${clock.now()} failed ${env.id} ${reason}`);
      failures.push(`t=${clock.now()} ${env.id}->${d} ${reason}`);
    },
  };
  q = new DeliveryQueue(options);
  // No listener of `delivered`/`transmitted`/`enqueued`: those turn the roster path off.
  /** Runs an enqueue with the cross-device callbacks on. */
  const enqueue = async <T>(f: () => T | Promise<T>): Promise<T> => {
    enqueuing = true;
    crossBudget = 2;
    try {
      return await f();
    } finally {
      enqueuing = false;
    }
  };
  return { clock, q, byDevice, failures, load: options.load!, store: options.store!, enqueue };
}

describe("DeliveryQueue: fan-outs through a roster", () => {
  it("do exactly what one entry per device does, for any sequence", async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { maxLength: 100 }), async (cfg, ops) => {
        const a = world(cfg, false);
        const s = world(cfg, true);
        const fast = s.q.sync!;
        const held = new Map<DeviceKey, MessageId[]>();
        const connected = new Set<DeviceKey>();
        if (cfg.startConnected) {
          for (const d of DEVICES) {
            connected.add(d);
            a.q.deviceConnected(d);
            s.q.deviceConnected(d);
          }
        }
        let n = 0;
        const queued: { env: Envelope; to: readonly DeviceKey[] }[] = [];
        const hold = (to: readonly DeviceKey[], env: Envelope) => {
          for (const d of to) held.set(d, [...(held.get(d) ?? []), env.id]);
        };
        for (const op of ops) {
          let answerA: unknown;
          let answerS: unknown;
          switch (op.kind) {
            case "group": {
              const base = envelope(++n, LANES[op.lane]);
              // Lists 0 and 1 are one group before and after two devices joined.
              const group = groupId(op.list === 2 ? "g2" : "g0");
              const env = op.group ? { ...base, to: { group } } : base;
              const list = LISTS[op.list]!.filter((i) => i !== op.sender).map((i) => DEVICES[i]!);
              const to = op.frozen ? Object.freeze(list) : list;
              const online = (d: DeviceKey) => connected.has(d);
              const opts = { fresh: true, ...(op.online ? { online } : {}) };
              answerA = await a.enqueue(() => a.q.enqueue(env, list.slice(), opts));
              answerS = await s.enqueue(() => fast.enqueueSync(env, to, opts));
              hold(list, env);
              queued.push({ env, to: list });
              break;
            }
            case "direct": {
              const env = envelope(++n, LANES[op.lane]);
              const to = [DEVICES[op.device]!];
              answerA = await a.enqueue(() => a.q.enqueue(env, to));
              answerS = await s.enqueue(() => fast.enqueueSync(env, to));
              hold(to, env);
              queued.push({ env, to });
              break;
            }
            case "ack": {
              const d = DEVICES[op.device]!;
              const pool = held.get(d) ?? [];
              const ids = [
                ...pool.slice(0, op.head),
                ...op.picks.map((p) => pool[p % (pool.length + 1)] ?? ("nope" as MessageId)),
              ];
              answerA = await a.q.ack(d, ids);
              answerS = fast.ackSync(d, ids);
              held.set(
                d,
                pool.filter((id) => !ids.includes(id)),
              );
              break;
            }
            case "connect":
            case "disconnect":
            case "advance":
            case "load":
              applyWorldOp(op, DEVICES, connected, [a, s]);
              break;
            case "again": {
              const earlier = queued[queued.length - op.back];
              if (!earlier) break;
              const again = { remember: false };
              answerA = await a.enqueue(() => a.q.enqueue(earlier.env, earlier.to.slice(), again));
              answerS = await s.enqueue(() =>
                fast.enqueueSync(earlier.env, earlier.to.slice(), again),
              );
              break;
            }
            case "recover":
              answerA = await a.q.recover({ devices: [DEVICES[op.device]!] });
              answerS = await s.q.recover({ devices: [DEVICES[op.device]!] });
              break;
            case "release":
              answerA = a.q.release(DEVICES[op.device]!);
              answerS = s.q.release(DEVICES[op.device]!);
              break;
          }
          expect(answerS, `answer to ${op.kind}`).toEqual(answerA);
          for (const d of DEVICES) {
            expect(s.byDevice.get(d), `log of ${d}`).toEqual(a.byDevice.get(d));
            expect(s.q.pending(d), `pending of ${d}`).toBe(a.q.pending(d));
          }
          expect([...s.failures].sort()).toEqual([...a.failures].sort());
          expect(s.q.stats).toEqual(a.q.stats);
          expect(s.q.depth).toBe(a.q.depth);
          expect(s.q.backlog).toBe(a.q.backlog);
        }
        for (const d of DEVICES) {
          expect(await s.store.list(d)).toEqual(await a.store.list(d));
        }
        // Everything still held ends, one way or the other: expired while offline or not.
        a.clock.advance(cfg.ttlMs + 1);
        s.clock.advance(cfg.ttlMs + 1);
        for (const d of DEVICES) {
          expect(s.byDevice.get(d), `final log of ${d}`).toEqual(a.byDevice.get(d));
          expect(s.q.pending(d)).toBe(0);
        }
        expect(s.q.stats).toEqual(a.q.stats);
        a.q.close();
        s.q.close();
      }),
      {
        numRuns: Number(process.env.QUEUE_RUNS ?? 150),
        ...(process.env.QUEUE_SEED ? { seed: Number(process.env.QUEUE_SEED) } : {}),
      },
    );
  });
});
