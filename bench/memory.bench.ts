/**
 * Memory figures. `memory.retained`: heap bytes a single node still holds per relayed 1:1
 * message once it was delivered and read. 1,000,000 messages go through `Gateway.receive`
 * (1,000 senders, each to its own recipient, both connected), each answered by the
 * recipient's `delivered` and `read` receipt frames; then GC runs twice and the heap growth
 * since before the run is divided by the message count. `heap_mb_after` is the heap after
 * the run (MB). Target: at most 64 bytes per message. GC comes from `node --expose-gc` or,
 * failing that, is exposed at run time (`v8.setFlagsFromString`). `RELAYKIT_MEMORY_MESSAGES`
 * sets another message count (a quick look; the figure is defined at 1,000,000).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ManualClock, sequentialIds } from "../src/core/index.js";
import { type Connection, Gateway, type Transport } from "../src/gateway/index.js";
import { Router } from "../src/router/index.js";
import type { BenchContext } from "./harness.js";

function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

function heapUsed(gc: (() => void) | undefined): number {
  if (gc) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
}

/** A transport that keeps only the id of the last message frame written to it. */
class LastMessage implements Transport {
  readonly bufferedAmount = 0;
  last = "";
  send(data: string): void {
    // Message frames start with {"type":"message","id":"...": cut the id out without parsing.
    if (data.startsWith('{"type":"message"')) {
      const from = data.indexOf('"id":"') + 6;
      this.last = data.slice(from, data.indexOf('"', from));
    }
  }
  close(): void {}
}

export default async function memoryBench(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("memory.retained")) return;
  const messages = Number(process.env.RELAYKIT_MEMORY_MESSAGES ?? 1_000_000);
  const pairs = 1000;
  const gc = getGc();
  const clock = new ManualClock(1_700_000_000_000);
  const router = new Router({ clock, ids: sequentialIds() });
  const gateway = new Gateway<{ user: string }>({
    router,
    clock,
    ids: sequentialIds("g"),
    authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
  });
  const senders: Connection[] = [];
  const recipients: { conn: Connection; transport: LastMessage }[] = [];
  for (let p = 0; p < pairs; p++) {
    senders.push((await gateway.open(new LastMessage(), { user: `s${p}` })) as Connection);
    const transport = new LastMessage();
    recipients.push({
      conn: (await gateway.open(transport, { user: `r${p}` })) as Connection,
      transport,
    });
  }
  const before = heapUsed(gc);
  const start = performance.now();
  for (let i = 0; i < messages; i++) {
    const p = i % pairs;
    await gateway.receive(
      senders[p]!,
      `{"type":"send","id":"c${i}","to":{"user":"r${p}"},"text":"message ${i}"}`,
    );
    // The first transmission goes out on a microtask.
    await Promise.resolve();
    const r = recipients[p]!;
    const id = r.transport.last;
    await gateway.receive(r.conn, `{"type":"receipt","status":"delivered","ids":["${id}"]}`);
    await gateway.receive(r.conn, `{"type":"receipt","status":"read","ids":["${id}"]}`);
    // Time moves (1 ms per message): anything kept for a while is kept as in production.
    if (i % 1000 === 999) clock.advance(1000);
  }
  const seconds = (performance.now() - start) / 1000;
  const after = heapUsed(gc);
  ctx.report({
    bench: "memory.retained",
    value: (after - before) / messages,
    unit: "bytes",
    target: 64,
    messages,
    heap_mb_after: after / (1024 * 1024),
    messages_per_s: messages / seconds,
    ...(gc ? {} : { note: "no GC available: run with node --expose-gc" }),
  });
  await gateway.close?.();
  await router.close();
}
