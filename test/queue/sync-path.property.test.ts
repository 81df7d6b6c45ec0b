import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  ManualClock,
  type MessageId,
  type Priority,
  seededRandom,
  userId,
} from "../../src/core/index.js";
import {
  DeliveryQueue,
  type DeliveryQueueOptions,
  LoadSignal,
  MemoryQueueStore,
} from "../../src/queue/index.js";
import { applyWorldOp, dev, envelope, type WorldOp, worldOps } from "./helpers.js";

const DEVICES = [dev("d0"), dev("d1"), dev("d2")] as const;
const LANES: readonly Priority[] = ["high", "normal", "low"];

type Op =
  | {
      kind: "enqueue";
      lane: number;
      mask: number;
      /** Lists the first device again at the end (a caller that did not dedupe). */
      twice: boolean;
      online: boolean;
      dupOf: number;
      remember: boolean;
    }
  | { kind: "ack"; device: number; picks: number[] }
  | WorldOp
  | { kind: "check"; of: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("enqueue" as const),
      lane: fc.integer({ min: 0, max: 2 }),
      mask: fc.integer({ min: 1, max: 7 }),
      twice: fc.boolean(),
      online: fc.boolean(),
      // 0: a fresh client id; k > 0: reuse the client id of the k-th last send (a retried send).
      dupOf: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 4 })),
      remember: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("ack" as const),
      device: fc.integer({ min: 0, max: 2 }),
      picks: fc.array(fc.nat(), { minLength: 0, maxLength: 3 }),
    }),
  },
  ...worldOps,
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("check" as const),
      of: fc.integer({ min: 1, max: 5 }),
    }),
  },
);

const configArb = fc.record({
  window: fc.integer({ min: 1, max: 4 }),
  retries: fc.integer({ min: 0, max: 3 }),
  ttlMs: fc.constantFrom(5_000, 30_000, 1_000_000),
  // Up to 12: past the per-device id index threshold (8).
  maxPerDevice: fc.integer({ min: 1, max: 12 }),
  seed: fc.integer(),
  order: fc.constantFrom("fifo" as const, "priority" as const),
  releaseBacklog: fc.constantFrom(1, 2, 1_000_000),
  /** Every third transmission is acked from inside transmit (an in-process router). */
  ackInTransmit: fc.boolean(),
});

type Config = typeof configArb extends fc.Arbitrary<infer C> ? C : never;

/** One queue and everything it did, as a log of strings to compare. */
function world(cfg: Config, sync: boolean) {
  const clock = new ManualClock();
  const log: string[] = [];
  let transmissions = 0;
  let q!: DeliveryQueue;
  const ack = (device: DeviceKey, ids: readonly MessageId[]): number | Promise<number> =>
    sync ? q.sync!.ackSync(device, ids) : q.ack(device, ids);
  const options: DeliveryQueueOptions = {
    clock,
    store: new MemoryQueueStore(),
    load: new LoadSignal({ clock, histogram: false }),
    random: seededRandom(cfg.seed),
    storeRetry: false,
    window: cfg.window,
    order: cfg.order,
    ttlMs: cfg.ttlMs,
    maxPerDevice: cfg.maxPerDevice,
    releaseBacklog: cfg.releaseBacklog,
    retry: { retries: cfg.retries, minTimeout: 1000, factor: 2, randomize: true },
    transmit: (device, env, attempt) => {
      log.push(`t=${clock.now()} tx ${env.id}->${device} #${attempt}`);
      if (cfg.ackInTransmit && ++transmissions % 3 === 0) void ack(device, [env.id]);
    },
    onFailed: (env, device, reason) =>
      log.push(`t=${clock.now()} failed ${env.id}->${device} ${reason}`),
  };
  q = new DeliveryQueue(options);
  q.on("delivered", (device, id) => log.push(`delivered ${id}->${device}`));
  q.on("deferred", (device, env) => log.push(`deferred ${env.id}->${device}`));
  return { clock, q, log, load: options.load!, store: options.store! };
}

describe("DeliveryQueue: sync and async faces", () => {
  it("the synchronous methods do exactly what the awaited ones do, for any sequence", async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { maxLength: 80 }), async (cfg, ops) => {
        const a = world(cfg, false);
        const s = world(cfg, true);
        expect(a.q.sync).toBeDefined();
        const fast = s.q.sync!;
        const sent: Envelope[] = [];
        const held = new Map<DeviceKey, MessageId[]>();
        const connected = new Set<DeviceKey>();
        let n = 0;
        for (const op of ops) {
          let answerA: unknown;
          let answerS: unknown;
          switch (op.kind) {
            case "enqueue": {
              n++;
              const base = envelope(n, LANES[op.lane]);
              const earlier = op.dupOf > 0 ? sent[sent.length - op.dupOf] : undefined;
              const env = earlier ? { ...base, clientId: earlier.clientId } : base;
              sent.push(env);
              const listed = DEVICES.filter((_, i) => op.mask & (1 << i));
              const to = op.twice ? [...listed, listed[0]!] : listed;
              // Either the router says who is online, or the queue relies on connect/disconnect.
              const online = (d: DeviceKey) => connected.has(d);
              const opts = { remember: op.remember, ...(op.online ? { online } : {}) };
              answerA = await a.q.enqueue(env, to, opts);
              answerS = fast.enqueueSync(env, to, opts);
              for (const d of to) held.set(d, [...(held.get(d) ?? []), env.id]);
              break;
            }
            case "ack": {
              const d = DEVICES[op.device]!;
              const pool = held.get(d) ?? [];
              // Picks past the pool ack an id the device never had.
              const ids = op.picks.map((p) => pool[p % (pool.length + 1)] ?? ("nope" as MessageId));
              answerA = await a.q.ack(d, ids);
              answerS = fast.ackSync(d, ids);
              break;
            }
            case "connect":
            case "disconnect":
            case "advance":
            case "load":
              applyWorldOp(op, DEVICES, connected, [a, s]);
              break;
            case "check": {
              const env = sent[sent.length - op.of];
              if (!env) break;
              answerA = await a.q.checkDuplicate(
                deviceKey(userId("alice"), deviceId("a1")),
                env.clientId,
              );
              answerS = fast.checkDuplicateSync(
                deviceKey(userId("alice"), deviceId("a1")),
                env.clientId,
              );
              break;
            }
          }
          expect(answerS, `answer to ${op.kind}`).toEqual(answerA);
          expect(s.log).toEqual(a.log);
          expect(s.q.stats).toEqual(a.q.stats);
          expect(s.q.degraded).toBe(a.q.degraded);
        }
        for (const d of DEVICES) {
          expect(s.q.pending(d)).toBe(a.q.pending(d));
          expect(await s.store.list(d)).toEqual(await a.store.list(d));
        }
        a.q.close();
        s.q.close();
      }),
      { numRuns: Number(process.env.QUEUE_RUNS ?? 150) },
    );
  });
});
