/**
 * `e2e.flood`: one user floods a real ws node with sends while another pair relays in a
 * closed loop; `value` is the pair's p99 latency under the flood over its unloaded p99
 * (target <= 2). The node runs with its default abuse limits. The flooder is a child process
 * (as an attacker on another machine would be), reconnecting whenever it is closed.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { createWsGateway, type RequestCredentials } from "../src/adapters/ws/index.js";
import { Gateway } from "../src/gateway/index.js";
import { Router } from "../src/router/index.js";
import type { BenchContext } from "./harness.js";

const PHASE_MS = 2000;
/** The pair's pace: one message every 6 ms at most (under the default 200 sends/s per connection). */
const PERIOD_MS = 6;

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("e2e.flood")) return;
  const router = new Router();
  const gateway = new Gateway<RequestCredentials>({
    router,
    authenticate: (c) => {
      const [userId, deviceId = "d1"] = (c.token ?? "").split(":");
      return userId ? { userId, deviceId } : undefined;
    },
  });
  const ws = createWsGateway({ gateway, port: 0, host: "127.0.0.1", keepaliveMs: 0 });
  await ws.listening();
  const url = ws.url();
  const open = (token: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const s = new WebSocket(url, [], { headers: { authorization: `Bearer ${token}` } });
      s.once("open", () => resolve(s));
      s.once("error", reject);
    });
  const alice = await open("alice:d1");
  const bob = await open("bob:d1");
  const victim = await open("victim:d1");
  // The victim is an ordinary client: it acks what it gets.
  victim.on("message", (data) => {
    const f = JSON.parse(data.toString()) as { type: string; id?: string };
    if (f.type === "message" && f.id !== undefined) {
      victim.send(JSON.stringify({ type: "receipt", status: "delivered", ids: [f.id] }));
    }
  });
  alice.on("message", () => {});

  let waiting: ((text: string) => void) | undefined;
  bob.on("message", (data) => {
    const f = JSON.parse(data.toString()) as { type: string; id?: string; text?: string };
    if (f.type !== "message" || f.id === undefined) return;
    bob.send(JSON.stringify({ type: "receipt", status: "delivered", ids: [f.id] }));
    waiting?.(f.text ?? "");
  });
  let n = 0;
  /** Closed loop for `ms`: send, wait for bob to get it, pace, repeat. Latencies in ms. */
  const relay = async (ms: number): Promise<number[]> => {
    const lat: number[] = [];
    const until = performance.now() + ms;
    while (performance.now() < until) {
      const id = `p${n++}`;
      const t0 = performance.now();
      const got = new Promise<string>((resolve) => {
        waiting = resolve;
      });
      alice.send(JSON.stringify({ type: "send", id, to: { user: "bob" }, text: id }));
      await got;
      const t = performance.now() - t0;
      lat.push(t);
      if (process.env.FLOOD_DEBUG && t > 20) console.error("slow", Math.round(t0), Math.round(t));
      if (t < PERIOD_MS) await new Promise((r) => setTimeout(r, PERIOD_MS - t));
    }
    return lat;
  };

  await relay(300); // warm-up
  const unloaded = p99(await relay(PHASE_MS));
  const flooder = spawn(
    process.execPath,
    [
      fileURLToPath(new URL("./fixtures/flooder.mjs", import.meta.url)),
      url,
      "mallory:d1",
      String(PHASE_MS + 500),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  flooder.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => flooder.on("exit", () => resolve()));
  await new Promise((r) => setTimeout(r, 300)); // let the flood start
  const flooded = p99(await relay(PHASE_MS));
  await exited;
  const stats = JSON.parse(out) as { sends: number; rate_limited: number; closes: number };

  for (const s of [alice, bob, victim]) s.terminate();
  await ws.close();
  await gateway.close();
  await router.close();
  ctx.report({
    bench: "e2e.flood",
    value: flooded / unloaded,
    unit: "ratio",
    flood_sends: stats.sends,
    rate_limited: stats.rate_limited,
    flooder_closes: stats.closes,
    p99_unloaded_ms: unloaded,
    p99_flood_ms: flooded,
  });
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0;
}
