import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { CLOSE_CODES } from "../../../src/index.js";
import { startWsNode } from "./ws-helpers.js";

type Node = Awaited<ReturnType<typeof startWsNode>>;
let node: Node | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

/** 16,000 code units, 32,000 bytes of UTF-8. */
const FRAME_BYTES = 32_064;
const FLOODER = fileURLToPath(new URL("./fixtures/flooder.mjs", import.meta.url));

/** Floods from a child process for `ms`: 32 KB sends as fast as its socket takes them. */
function floodFromChild(url: string, token: string, ms: number) {
  const child = spawn(process.execPath, [FLOODER, url, token, String(ms)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise<{ written: number; closed: number | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", () => resolve(JSON.parse(out) as { written: number; closed: number | null }));
  });
}

function held(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe("ws read backpressure", () => {
  it("a write flood against a slow handler keeps the node's memory bounded; another pair keeps working", async () => {
    // Every send takes 20 ms to be accepted (a slow store): frames arrive far faster than
    // they are handled. Before read backpressure all of them were read and parsed at once
    // and waited in memory.
    node = await startWsNode({
      limits: { rateLimits: false },
      hooks: {
        beforeSend: () => new Promise<undefined>((r) => setTimeout(() => r(undefined), 20)),
      },
    });
    const a = await node.connect("alice:d1");
    const b = await node.connect("bob:d1");
    await node.connect("victim:d1");
    const before = held();
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, held() - before);
    }, 20);
    const flooding = floodFromChild(node.url, "flooder:d1", 3000);
    await sleep(1000);
    a.send({ type: "send", id: "hello", to: { user: "bob" }, text: "still here" });
    await b.waitFor((f) => f.type === "message" && f.text === "still here", "pair message", 5000);
    const { written } = await flooding;
    clearInterval(sampler);
    peak = Math.max(peak, held() - before);
    // Stated bound: 64 frames of 32 KB wait (raw and parsed), plus what ws holds of one TCP
    // read and the test's own clients (measured ~6 MiB; ~30 MiB and growing before).
    expect(peak).toBeLessThan(16 * 1024 * 1024);
    // Throttled: the flooder got rid of what the node handled (50 sends/s here) plus what the
    // socket buffers hold (its own 4 MiB, the kernel's); ~10 MiB measured, ~29 MiB before.
    expect(written * FRAME_BYTES).toBeLessThan(20 * 1024 * 1024);
  }, 20_000);

  it("closes a client whose backlog stays full past readGraceMs with 4413; others keep working", async () => {
    const stuck: (() => void)[] = [];
    node = await startWsNode({
      limits: { rateLimits: false },
      readGraceMs: 300,
      maxReadFrames: 8,
      hooks: {
        beforeSend: (envelope) =>
          envelope.from === "flooder"
            ? new Promise<undefined>((r) => stuck.push(() => r(undefined)))
            : undefined,
      },
    });
    try {
      const a = await node.connect("alice:d1");
      const b = await node.connect("bob:d1");
      await node.connect("victim:d1");
      const { closed } = await floodFromChild(node.url, "flooder:d1", 2000);
      expect(closed).toBe(CLOSE_CODES.readBacklog);
      a.send({ type: "send", id: "hello", to: { user: "bob" }, text: "still here" });
      await b.waitFor((f) => f.type === "message" && f.text === "still here", "pair message");
    } finally {
      for (const release of stuck) release();
    }
  }, 20_000);
});
