/**
 * The Redis-path measuring tool (issue 15): two RedisNode instances on one Redis, `pairs`
 * senders on node A each talking to their own recipient on node B, closed loop with `window`
 * messages in flight per sender. Everything goes through the public path: `send` frames into
 * A's gateway, the recipient's `delivered` receipt frame into B's gateway from its own
 * connection (one per message, a turn after it arrived, as a client would), the sender
 * seeing `sent` and then `delivered`. Redis commands are counted from `INFO commandstats`
 * deltas over the measured messages (the INFO calls themselves excluded).
 * Used by bench/redis.bench.ts (the figure) and test/integration/cluster (the bound).
 */
import { Redis } from "ioredis";
import { createRedisNode, type RedisNode } from "../src/adapters/redis/index.js";
import type { Connection, Transport } from "../src/gateway/index.js";

/** What one relay run measured. */
export interface RedisRelayResult {
  /** Messages relayed (each: send, `sent`, delivery, `delivered` back to the sender). */
  readonly messages: number;
  /** Redis commands per relayed message. */
  readonly commandsPerMsg: number;
  /** Commands per message by command name, largest first. */
  readonly breakdown: Readonly<Record<string, number>>;
  /** Messages fully relayed per second (wall clock). */
  readonly opsPerS: number;
  /** Deliveries of a message id the recipient already had. */
  readonly duplicates: number;
  /** Messages whose `delivered` reached the sender before its `sent`. */
  readonly sentAfterDelivered: number;
}

/** Options of {@link measureRedisRelay}. */
export interface RedisRelayOptions {
  /** A Redis that nothing else uses during the run (its command counters are read). */
  readonly url: string;
  /** Messages per sender measured (after a warm-up of `window` each). */
  readonly perSender?: number;
  /** Sender/recipient pairs, split across the two nodes. @default 20 */
  readonly pairs?: number;
  /** Messages in flight per sender. @default 4 */
  readonly window?: number;
  /** Key prefix. @default "rkbench" */
  readonly prefix?: string;
}

async function commandStats(client: Redis): Promise<Map<string, number>> {
  const text = await client.info("commandstats");
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** One closed-loop relay between two nodes on `url`; see the file comment. */
export async function measureRedisRelay(options: RedisRelayOptions): Promise<RedisRelayResult> {
  const pairs = options.pairs ?? 20;
  const window = options.window ?? 4;
  const perSender = options.perSender ?? 100;
  const prefix = options.prefix ?? "rkbench";
  const nodes: RedisNode<string>[] = [];
  const admin = new Redis(options.url, { lazyConnect: true });
  admin.on("error", () => {});
  await admin.connect();
  try {
    const mk = (name: string) =>
      createRedisNode<string>({
        redis: options.url,
        name,
        prefix,
        authenticate: (user) => ({ userId: user, deviceId: "d1" }),
      });
    const a = await mk("a");
    const b = await mk("b");
    nodes.push(a, b);

    let duplicates = 0;
    let sentAfterDelivered = 0;
    let done = 0;
    let target = 0;
    let wake: (() => void) | undefined;
    let counter = 0;
    let stopped = false;

    const senders: { conn: Connection; send: () => void }[] = [];
    for (let i = 0; i < pairs; i++) {
      const to = `r${i}`;
      const seen = new Set<string>();
      const rxRef: { conn?: Connection } = {};
      const rx: Transport = {
        send(data) {
          if (!data.startsWith('{"type":"message"')) return;
          const id = (JSON.parse(data) as { id: string }).id;
          if (seen.has(id)) {
            duplicates++;
            return;
          }
          seen.add(id);
          setImmediate(() => {
            void b.gateway.receive(
              rxRef.conn!,
              JSON.stringify({ type: "receipt", status: "delivered", ids: [id] }),
            );
          });
        },
        close() {},
        bufferedAmount: 0,
      };
      const sent = new Set<string>();
      const delivered = new Set<string>();
      const txRef: { conn?: Connection } = {};
      const sendOne = () => {
        if (stopped) return;
        const frame = JSON.stringify({
          type: "send",
          id: `c${counter++}`,
          to: { user: to },
          text: "hello there, how are you?",
        });
        void a.gateway.receive(txRef.conn!, frame);
      };
      const tx: Transport = {
        send(data) {
          if (!data.startsWith('{"type":"receipt"')) return;
          const f = JSON.parse(data) as { status: string; id?: string; ids?: string[] };
          if (f.status === "sent" && f.id) sent.add(f.id);
          if (f.status !== "delivered" || !f.ids) return;
          for (const id of f.ids) {
            if (delivered.has(id)) continue;
            delivered.add(id);
            if (!sent.has(id)) sentAfterDelivered++;
            done++;
            if (wake && done >= target) {
              const w = wake;
              wake = undefined;
              w();
            }
            setImmediate(sendOne);
          }
        },
        close() {},
        bufferedAmount: 0,
      };
      const rconn = await b.gateway.open(rx, to);
      const sconn = await a.gateway.open(tx, `s${i}`);
      if (!rconn || !sconn) throw new Error("redis-relay: a user was not admitted");
      rxRef.conn = rconn;
      txRef.conn = sconn;
      senders.push({ conn: sconn, send: sendOne });
    }

    const until = (n: number) =>
      new Promise<void>((resolve, reject) => {
        target = n;
        if (done >= n) return resolve();
        const timer = setTimeout(
          () => reject(new Error(`redis-relay: ${done}/${n} messages after 60 s`)),
          60_000,
        );
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });

    // Warm-up: one window per sender (scripts loaded, sessions and presence written).
    for (const s of senders) for (let k = 0; k < window; k++) s.send();
    await until(pairs * window);
    // The loop keeps going by itself: each `delivered` sends the next message.
    const before = await commandStats(admin);
    const start0 = done;
    const t0 = performance.now();
    await until(start0 + pairs * perSender);
    const elapsed = performance.now() - t0;
    const after = await commandStats(admin);
    const measured = done - start0;
    // Let the in-flight tail finish so closing does not race it.
    stopped = true;
    target = Number.POSITIVE_INFINITY;
    await new Promise((r) => setTimeout(r, 200));

    const deltas: [string, number][] = [];
    let total = 0;
    for (const [name, calls] of after) {
      let d = calls - (before.get(name) ?? 0);
      if (name === "info") d -= 1;
      if (d <= 0) continue;
      deltas.push([name, d]);
      total += d;
    }
    deltas.sort((x, y) => y[1] - x[1]);
    const breakdown: Record<string, number> = {};
    for (const [name, d] of deltas) breakdown[name] = Math.round((d / measured) * 100) / 100;
    return {
      messages: measured,
      commandsPerMsg: total / measured,
      breakdown,
      opsPerS: measured / (elapsed / 1000),
      duplicates,
      sentAfterDelivered,
    };
  } finally {
    for (const n of nodes) await n.close().catch(() => {});
    admin.disconnect();
  }
}
