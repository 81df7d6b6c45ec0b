/**
 * groups.fanout: one member of a 1,024-member group posts; the members (one device each)
 * are spread round-robin over 4 in-process nodes (Router + Gateway each, one shared
 * MemoryNodeBus, session directory, device registry, sequence, message and queue stores).
 * A delivery is one member device reached at its gateway's transport. The path measured:
 * parse the `send` frame, membership check and member list (GroupService), recipient devices,
 * message store, the sender node's DeliveryQueue and queue store (the group's devices form a
 * roster: one log message per message, each device reading from its cursor), receipt tracking
 * (policy `none`), one bus packet per node, the gateways' writes to their connections.
 *
 * Housekeeping inside the timed loop, after each batch of `BATCH` messages (what clients'
 * batched acks cause): every device's entries are acked on the sender node's queue (through
 * its synchronous face, as the router's receipt path does when the outbox has one; its
 * in-flight window is 16, so without acks delivery would stall) and marked delivered in the
 * message store. The tracker's state is released by a retention sweep (1 ms retention under a
 * manual clock) so the heap stays bounded: the receipt path itself is not measured.
 *
 * Extra field `ops_per_s_direct_outbox`: the same run with an outbox that transmits at once and
 * stores nothing (no per-device queue entries, no acks): the ceiling of the routing path alone.
 * Extra field `entry_shape_floor_ops_per_s`, timed in the same run: only the shape of a
 * per-device queue (per delivery an entry object in a per-device list and a reference in a
 * per-device store list, a map lookup of the device for each; per ack the same lookups and a
 * removal from both lists; no routing, timers, lanes or windows). It bounds what any queue
 * that keeps one entry per (message, device) can do here (the queue did, before rosters).
 * Extra field `ops_per_s_senders_in_turn`: the same world, but `SENDERS_IN_TURN` members post
 * in turn, one message each (each message's recipients then leave out another device); each
 * device acks what it got.
 * Each figure is the median of `ROUNDS` rounds that run the cases in turn.
 */
import { type Connection, Gateway } from "../src/gateway/index.js";
import { GroupService } from "../src/groups/index.js";
import {
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type Envelope,
  type GroupId,
  ManualClock,
  MemoryDeviceRegistry,
  MemoryMessageStore,
  MemoryNodeBus,
  MemorySequenceStore,
  MemorySessionDirectory,
  type MessageId,
  type NodeId,
  ReceiptTracker,
  Router,
  sequentialIds,
  type UserId,
} from "../src/index.js";
import { type EnqueueOptions, MemoryQueueStore } from "../src/queue/index.js";
import { deliveryQueue, type OutboxFactory } from "../src/router/index.js";
import { type BenchContext, rates } from "./harness.js";

const MEMBERS = 1024;
const NODES = 4;
const BATCH = 16;
/** Rounds of the three cases; each figure is its median round. */
const ROUNDS = 5;
/** Members who post in turn in the `ops_per_s_senders_in_turn` world. */
const SENDERS_IN_TURN = 4;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] ?? 0;
}

/**
 * An outbox that transmits to online devices at once and keeps nothing; like the queue over
 * the memory store it answers synchronously too, so both worlds take the same router path.
 */
const directOutbox: OutboxFactory = (hooks) => {
  const sync = {
    enqueueSync(envelope: Envelope, recipients: readonly DeviceKey[], options?: EnqueueOptions) {
      for (const d of recipients) if (options?.online?.(d) ?? true) hooks.transmit(d, envelope, 1);
      return { ok: true } as const;
    },
    ackSync: () => 0,
    checkDuplicateSync: () => undefined,
  };
  return {
    sync,
    async enqueue(envelope, recipients, options) {
      return sync.enqueueSync(envelope, recipients, options);
    },
    async ack() {
      return 0;
    },
    deviceConnected() {},
    deviceDisconnected() {},
    async checkDuplicate() {
      return undefined;
    },
    close() {},
  };
};

export async function world(kind: "queue" | "direct", senders = 1) {
  const clock = new ManualClock(1_000_000);
  const bus = new MemoryNodeBus();
  const directory = new MemorySessionDirectory();
  const devices = new MemoryDeviceRegistry();
  const sequences = new MemorySequenceStore();
  const messages = new MemoryMessageStore();
  const queueStore = new MemoryQueueStore();
  const groups = new GroupService({ clock, ids: sequentialIds("g") });
  const nodes = Array.from({ length: NODES }, (_, i) => {
    const id = `n${i + 1}` as NodeId;
    const router = new Router({
      nodeId: id,
      clock,
      ids: sequentialIds(`${id}.`),
      bus,
      directory,
      devices,
      sequences,
      messages,
      groups,
      outbox:
        kind === "queue"
          ? deliveryQueue({ clock, store: queueStore, sharedStore: true })
          : directOutbox,
      receipts: new ReceiptTracker({ clock, retentionMs: 1, sweepIntervalMs: 0 }),
    });
    const gateway = new Gateway<string>({
      router,
      clock,
      ids: sequentialIds(`${id}.s`),
      authenticate: (user) => ({ userId: user, deviceId: "d1" }),
      // Measures routing, not the abuse limits a flood from one connection would hit.
      rateLimits: false,
    });
    return { router, gateway };
  });

  const counter = { deliveries: 0 };
  const counting = {
    // A message frame (`{"type":"message"...`) is a delivery; a sender's `sent` receipt is not.
    send: (data: string) => {
      if (data.charCodeAt(9) === 109) counter.deliveries++;
    },
    close() {},
    bufferedAmount: 0,
  };
  const users: UserId[] = [];
  const keys: DeviceKey[] = [];
  const conns: Connection[] = [];
  for (let i = 0; i < MEMBERS; i++) {
    const user = `u${i}`;
    users.push(user as UserId);
    keys.push(deviceKey(user as UserId, "d1" as DeviceId));
    const conn = await nodes[i % NODES]!.gateway.open(counting, user);
    if (!conn) throw new Error(`${user} was not admitted`);
    conns.push(conn);
  }
  // The members who post, in turn (one message each): u0, u4, u8... all on the first node.
  const posters = Array.from({ length: senders }, (_, k) => k * NODES);
  const sender = nodes[0]!;
  const g = await groups.create(users[0]!, { id: "big" as GroupId, members: users.slice(1) });
  await settle();

  const accepted: MessageId[] = [];
  sender.router.on("accepted", (e) => accepted.push(e.id));
  let n = 0;
  /** The next batch: each frame with the member who sends it. */
  const frames = () =>
    Array.from({ length: BATCH }, () => {
      const by = posters[n % senders]!;
      const frame = { type: "send", id: `c${n++}`, to: { group: g.id }, text: "hello group" };
      return { by, data: JSON.stringify(frame) };
    });
  let next = frames();

  const step = async () => {
    let last: Promise<void> = Promise.resolve();
    for (const f of next) last = sender.gateway.receive(conns[f.by]!, f.data);
    await last;
    // Let the batched transmits (a microtask flush) reach the gateways.
    for (let i = 0; i < 4; i++) await Promise.resolve();
    const ids = accepted.splice(0);
    // The router's own receipt path acks through the outbox's synchronous face when it has one.
    // Each device acks what it got: every message but its own.
    const outbox = sender.router.outbox;
    const ackSync = outbox.sync;
    for (let k = 0; k < MEMBERS; k++) {
      const d = keys[k]!;
      const got = posters.includes(k) ? ids.filter((_, j) => next[j]!.by !== k) : ids;
      if (got.length === 0) continue;
      if (ackSync) ackSync.ackSync(d, got);
      else await outbox.ack(d, got);
      for (const id of got) messages.deliveredSync(id, d);
    }
    clock.advance(2);
    await sender.router.receipts.sweep();
    next = frames();
  };
  const close = async () => {
    for (const node of nodes) {
      await node.gateway.close();
      await node.router.close();
    }
  };
  return { step, counter, sent: () => n, close };
}

const settle = () => new Promise<void>((r) => setImmediate(r));

/** The per-device queue shape alone (see `entry_shape_floor_ops_per_s` above). */
function entryShape(): () => void {
  const keys = Array.from({ length: MEMBERS - 1 }, (_, i) => `u${i + 1}/d1`);
  const states = new Map(keys.map((k) => [k, { list: [] as object[], count: 0 }]));
  const store = new Map(keys.map((k) => [k, [] as object[]]));
  let n = 0;
  return () => {
    const ids: string[] = [];
    for (let b = 0; b < BATCH; b++) {
      const id = `m${n++}`;
      ids.push(id);
      const record = { id };
      for (const k of keys) {
        store.get(k)!.push(record);
        const state = states.get(k)!;
        state.list.push({ state, record, attempts: 1, dueAt: 0, sent: true });
        state.count++;
      }
    }
    for (const k of keys) {
      const state = states.get(k)!;
      const slots = store.get(k)!;
      for (let i = 0; i < ids.length; i++) {
        state.list.shift();
        slots.shift();
        state.count--;
      }
    }
  };
}

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("groups.fanout")) return;
  const queue = await world("queue");
  const direct = await world("direct");
  const turns = await world("queue", SENDERS_IN_TURN);
  // Sanity check before measuring: one batch reaches every member device once per message.
  for (const w of [queue, direct, turns]) {
    await w.step();
    await settle();
    if (w.counter.deliveries !== BATCH * (MEMBERS - 1)) {
      throw new Error(`expected ${BATCH * (MEMBERS - 1)} deliveries, got ${w.counter.deliveries}`);
    }
  }
  const start = queue.sent();
  // Short rounds, the three cases in turn, the median round of each: a slow spell of this
  // shared machine lands on all three instead of on whichever ran then.
  const shape = entryShape();
  const rounds: Record<string, number>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    rounds.push(
      await rates(
        {
          queue: { fn: queue.step, batch: BATCH * (MEMBERS - 1) },
          direct: { fn: direct.step, batch: BATCH * (MEMBERS - 1) },
          shape: { fn: shape, batch: BATCH * (MEMBERS - 1) },
          turns: { fn: turns.step, batch: BATCH * (MEMBERS - 1) },
        },
        700,
      ),
    );
  }
  const r = {
    queue: median(rounds.map((x) => x.queue ?? 0)),
    direct: median(rounds.map((x) => x.direct ?? 0)),
    shape: median(rounds.map((x) => x.shape ?? 0)),
    turns: median(rounds.map((x) => x.turns ?? 0)),
  };
  await settle();
  for (const w of [queue, direct, turns]) {
    // Nothing lost: every message sent reached every other member's device.
    const expected = (w.sent() - BATCH) * (MEMBERS - 1);
    if (w.counter.deliveries !== expected) {
      throw new Error(`deliveries ${w.counter.deliveries}, expected ${expected}`);
    }
  }
  ctx.report({
    bench: "groups.fanout",
    ops_per_s: r.queue,
    members: MEMBERS,
    nodes: NODES,
    messages: queue.sent() - start,
    messages_per_s: r.queue / (MEMBERS - 1),
    ops_per_s_direct_outbox: r.direct,
    entry_shape_floor_ops_per_s: r.shape,
    ops_per_s_senders_in_turn: r.turns,
    senders_in_turn: SENDERS_IN_TURN,
    rounds: ROUNDS,
  });
  await queue.close();
  await direct.close();
  await turns.close();
}
