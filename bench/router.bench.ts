/**
 * router.route_1to1: parse a `send` frame, route it through the in-memory directory to an
 * in-process gateway sink (the recipient's connection), and emit the `sent` receipt to the
 * sender, with the default DeliveryQueue and ReceiptTracker in the path. The recipient's
 * client acks what it receives once per turn (as the client SDK batches its delivered acks),
 * straight into the queue, so its in-flight window keeps moving; a batch is timed until bob
 * has every message of it. Frames are made ahead, outside the timed part.
 *
 * Extra fields: `floor_ops_per_s`, measured side by side, is the codec work alone that every
 * routed message needs (JSON.parse + zod validation of the send frame, JSON.stringify of the
 * message frame and of the sent receipt); `of_floor` = route / floor, the share of the
 * machine's codec speed the whole routing path keeps.
 */
import { Gateway } from "../src/gateway/index.js";
import {
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type MessageId,
  Router,
  sequentialIds,
  type UserId,
} from "../src/index.js";
import { type BenchContext, rates } from "./harness.js";

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("router.route_1to1")) return;
  const router = new Router({ ids: sequentialIds() });
  const gateway = new Gateway<string>({
    router,
    ids: sequentialIds("s"),
    authenticate: (user) => ({ userId: user, deviceId: "d1" }),
    // Measures routing, not the abuse limits a flood from one connection would hit.
    rateLimits: false,
  });
  let receipts = 0;
  let delivered = 0;
  const bob: DeviceKey = deviceKey("bob" as UserId, "d1" as DeviceId);
  let toAck: MessageId[] = [];
  const ackTurn = () => {
    const ids = toAck;
    toAck = [];
    const sync = router.outbox.sync;
    if (sync) sync.ackSync(bob, ids);
    else void router.outbox.ack(bob, ids);
  };
  const alice = await gateway.open(
    {
      send: () => {
        receipts++;
      },
      close() {},
      bufferedAmount: 0,
    },
    "alice",
  );
  await gateway.open(
    {
      send: (data) => {
        // {"type":"message","id":"<id>",...: the id starts at a fixed offset.
        if (!data.startsWith('{"type":"message"')) return;
        delivered++;
        if (toAck.length === 0) queueMicrotask(ackTurn);
        toAck.push(data.slice(24, data.indexOf('"', 24)) as MessageId);
      },
      close() {},
      bufferedAmount: 0,
    },
    "bob",
  );
  if (!alice) throw new Error("alice was not admitted");
  const BATCH = 1000;
  // Raw frames are made ahead, outside the timed part (each needs a fresh client id).
  let made = 0;
  const frames = (count: number) =>
    Array.from({ length: count }, () =>
      JSON.stringify({
        type: "send",
        id: `c${made++}`,
        to: { user: "bob" },
        text: "hello there, how are you?",
      }),
    );
  let pool = frames(400 * BATCH);
  let at = 0;
  let sent = 0;
  // The floor, side by side: only the codec work every routed message needs (parse and
  // validate the send frame, encode the message frame and the sent receipt).
  const floorFrames = frames(BATCH);
  const sample = {
    type: "message",
    id: "n1.123",
    clientId: "c123",
    from: "alice",
    fromDevice: "d1",
    to: { user: "bob" },
    conversation: "dm:alice:bob",
    seq: 123,
    ts: 1_700_000_000_000,
    text: "hello there, how are you?",
    priority: "high",
  };
  const receipt = {
    type: "receipt",
    status: "sent",
    clientId: "c123",
    id: "n1.123",
    conversation: "dm:alice:bob",
    seq: 123,
    ts: 1_700_000_000_000,
  };
  let sink = 0;
  const route = async () => {
    if (at + BATCH > pool.length) {
      pool = frames(100 * BATCH);
      at = 0;
    }
    let last: Promise<void> = Promise.resolve();
    for (let k = 0; k < BATCH; k++) last = gateway.receive(alice, pool[at++]!);
    sent += BATCH;
    await last;
    // Timed until bob has every message of the batch (his window moves as he acks).
    while (delivered < sent) await new Promise((r) => setImmediate(r));
  };
  const r = await rates(
    {
      route: { fn: route, batch: BATCH },
      floor: {
        fn: () => {
          for (const f of floorFrames) {
            if (gateway.parser.parseClient(f).ok) sink++;
            sink += JSON.stringify(sample).length + JSON.stringify(receipt).length;
          }
        },
        batch: BATCH,
      },
    },
    3000,
  );
  const ops = r.route ?? 0;
  const floor = r.floor ?? 0;
  if (sink === 0) throw new Error("router.route_1to1: floor did nothing");
  // Let the last acks land, then check that the run delivered what it accepted.
  for (let i = 0; i < 100 && (delivered < sent || toAck.length > 0); i++) {
    await new Promise((r) => setImmediate(r));
  }
  if (receipts < sent || delivered < sent) {
    throw new Error(
      `router.route_1to1: ${sent} sent, ${receipts} receipts, ${delivered} delivered`,
    );
  }
  ctx.report({
    bench: "router.route_1to1",
    ops_per_s: ops,
    // Parse + validate + two encodes alone on this machine, and how much of it routing leaves.
    floor_ops_per_s: floor,
    of_floor: ops / floor,
  });
  await router.close();
}
