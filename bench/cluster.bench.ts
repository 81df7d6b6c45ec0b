/**
 * cluster.relay: 1:1 relay across two relaykit nodes through Redis (stores, queue and the
 * pub/sub NodeBus) versus within one node on the same Redis, same load, one run. One op =
 * one message from a sender's gateway to the recipient's connection (8 senders at once, one
 * recipient); each batch of 64
 * is acked by the recipient (a `delivered` receipt frame, as its client would) before the
 * next, so queues stay bounded. Two RedisNode instances in this process, each with its own
 * Redis connections; a throwaway redis-server on a free loopback port, stopped at the end.
 * Without redis-server: `{"bench":"cluster.relay","skipped":true}` on stderr, no figure.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRedisNode, type RedisNode } from "../src/adapters/redis/index.js";
import type { Connection, Transport } from "../src/gateway/index.js";
import { type BenchContext, rates } from "./harness.js";

/** Messages per measured call, from SENDERS concurrent senders (each connection is handled in order). */
const BATCH = 64;
const SENDERS = 8;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = typeof a === "object" && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function redisBinary(): string | undefined {
  if (process.env.REDIS_SERVER_BIN) return process.env.REDIS_SERVER_BIN;
  return ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((c) => existsSync(c));
}

async function startRedis(
  bin: string,
): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "relaykit-bench-redis-"));
  const proc: ChildProcess = spawn(
    bin,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  const ok = await new Promise<boolean>((resolve) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString("utf8");
      if (out.includes("Ready to accept connections")) resolve(true);
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("error", () => resolve(false));
    proc.once("exit", () => resolve(false));
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      rmSync(dir, { recursive: true, force: true });
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once("exit", () => resolve());
      proc.kill("SIGKILL");
    });
  if (!ok) {
    await stop();
    return undefined;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}

/** A fake socket: counts `message` frames and keeps their ids for the batched ack. */
function sink() {
  const ids: string[] = [];
  let wanted = 0;
  let wake: (() => void) | undefined;
  const transport: Transport = {
    send(data) {
      if (!data.startsWith('{"type":"message"')) return;
      ids.push((JSON.parse(data) as { id: string }).id);
      if (wake && ids.length >= wanted) {
        const w = wake;
        wake = undefined;
        w();
      }
    },
    close() {},
    bufferedAmount: 0,
  };
  return {
    transport,
    ids,
    /** Resolves once `n` messages arrived (counting from the last `take`). */
    until(n: number): Promise<void> {
      if (ids.length >= n) return Promise.resolve();
      wanted = n;
      return new Promise((resolve, reject) => {
        // The bench must end by itself: a stuck relay is an error, not a hang.
        const timer = setTimeout(
          () => reject(new Error(`cluster.relay: ${ids.length}/${n} messages after 30 s`)),
          30_000,
        );
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
    take(): string[] {
      return ids.splice(0);
    },
  };
}

async function open(node: RedisNode<string>, user: string, t: Transport): Promise<Connection> {
  const c = await node.gateway.open(t, user);
  if (!c) throw new Error(`${user} was not admitted`);
  return c;
}

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("cluster.relay")) return;
  const bin = redisBinary();
  const redis = bin ? await startRedis(bin) : undefined;
  if (!redis) {
    console.error(
      JSON.stringify({ bench: "cluster.relay", skipped: true, reason: "no redis-server" }),
    );
    return;
  }
  const nodes: RedisNode<string>[] = [];
  try {
    const mk = (name: string) =>
      createRedisNode<string>({
        redis: redis.url,
        name,
        prefix: "bench",
        authenticate: (user) => ({ userId: user, deviceId: "d1" }),
        // The recipient acks once per batch: let a whole batch be in flight.
        queue: { window: BATCH },
      });
    const a = await mk("a");
    const b = await mk("b");
    nodes.push(a, b);
    const quiet = { send() {}, close() {}, bufferedAmount: 0 } satisfies Transport;

    // Cross-node: SENDERS users on A -> bob on B. Same node: SENDERS users on A -> dave on A.
    const crossFrom: Connection[] = [];
    const singleFrom: Connection[] = [];
    for (let i = 0; i < SENDERS; i++) {
      crossFrom.push(await open(a, `x${i}`, quiet));
      singleFrom.push(await open(a, `s${i}`, quiet));
    }
    const bobSink = sink();
    const bob = await open(b, "bob", bobSink.transport);
    const daveSink = sink();
    const dave = await open(a, "dave", daveSink.transport);

    let n = 0;
    const relay = (
      senders: readonly Connection[],
      to: { node: RedisNode<string>; conn: Connection; sink: ReturnType<typeof sink> },
      user: string,
    ) => {
      return async () => {
        const last: Promise<void>[] = [];
        for (const from of senders) {
          let p: Promise<void> = Promise.resolve();
          for (let i = 0; i < BATCH / SENDERS; i++) {
            const frame = JSON.stringify({
              type: "send",
              id: `c${n++}`,
              to: { user },
              text: "hello there, how are you?",
            });
            p = a.gateway.receive(from, frame);
          }
          last.push(p);
        }
        await Promise.all(last);
        await to.sink.until(BATCH);
        const ids = to.sink.take();
        await to.node.gateway.receive(
          to.conn,
          JSON.stringify({ type: "receipt", status: "delivered", ids }),
        );
      };
    };
    const r = await rates(
      {
        cross: { fn: relay(crossFrom, { node: b, conn: bob, sink: bobSink }, "bob"), batch: BATCH },
        single: {
          fn: relay(singleFrom, { node: a, conn: dave, sink: daveSink }, "dave"),
          batch: BATCH,
        },
      },
      3000,
    );
    const cross = r.cross ?? 0;
    const single = r.single ?? 0;
    ctx.report({
      bench: "cluster.relay",
      ops_per_s: cross,
      single_node_ops_per_s: single,
      ratio: single > 0 ? cross / single : 0,
    });
  } finally {
    for (const node of nodes) await node.close().catch(() => {});
    await redis.stop();
  }
}
