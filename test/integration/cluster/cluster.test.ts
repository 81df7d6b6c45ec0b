/**
 * A real cluster: three relaykit node processes (examples/cluster/node.ts) with ws gateways
 * on 127.0.0.1, sharing one dedicated redis-server. Clients on different nodes exchange 1:1
 * and group messages with receipts and presence; then one node is SIGKILLed mid-traffic
 * (its users reconnect elsewhere, nothing accepted is lost, last seen = its last heartbeat);
 * then Redis is restarted and the nodes carry on.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { RelayClient, type WebSocketConstructor } from "../../../src/client/index.js";
import { type RedisServer, redisUrl, startRedisServer } from "../redis/redis-helpers.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const HEARTBEAT_MS = 250;
const TTL_MS = 1_200;

interface NodeProc {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly url: string;
  alive: boolean;
  log: string;
}

function startNode(name: string, redis: string, prefix: string): Promise<NodeProc> {
  const proc = spawn(process.execPath, ["--import", "tsx", "examples/cluster/node.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: redis,
      PORT: "0",
      HOST: "127.0.0.1",
      NODE_ID: name,
      RELAYKIT_PREFIX: prefix,
      RELAYKIT_TTL_MS: String(TTL_MS),
      RELAYKIT_HEARTBEAT_MS: String(HEARTBEAT_MS),
      RELAYKIT_RESYNC_MS: "500",
      EXIT_WITH_PARENT: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`node ${name} did not start in time:\n${log}`));
    }, 20_000);
    const onData = (d: Buffer) => {
      log += d.toString("utf8");
      const m = /listening on (ws:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        const node: NodeProc = { name, proc, url: `${m[1]}/`, alive: true, log };
        proc.stdout?.on("data", (x: Buffer) => {
          node.log = (node.log + x.toString("utf8")).slice(-8000);
        });
        proc.stderr?.on("data", (x: Buffer) => {
          node.log = (node.log + x.toString("utf8")).slice(-8000);
        });
        proc.stdout?.off("data", onData);
        proc.stderr?.off("data", onData);
        resolve(node);
      }
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`node ${name} exited (${code}) before listening:\n${log}`));
    });
  });
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const url = redisUrl();

describe.skipIf(!url)("cluster: three node processes on one Redis", () => {
  let redis: RedisServer;
  const nodes: NodeProc[] = [];
  const clients: RelayClient[] = [];
  const prefix = `rkc${randomBytes(3).toString("hex")}`;

  /** A client that prefers node `home` and fails over to the next live node on reconnect. */
  function client(user: string, home: number, reconnect = true) {
    const pick = () => {
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[(home + i) % nodes.length]!;
        if (n.alive) return n.url;
      }
      return nodes[home]!.url;
    };
    const Failover = class extends WebSocket {
      constructor(_url: string, protocols?: string | string[]) {
        super(pick(), protocols);
      }
    } as unknown as WebSocketConstructor;
    const c = new RelayClient({
      url: nodes[home]!.url,
      token: `${user}:d1`,
      userId: user,
      WebSocket: Failover,
      reconnect: reconnect ? { initialDelay: 50, maxDelay: 200 } : false,
      ackTimeout: 1_000,
      pingInterval: 0,
    });
    const received = new Map<string, string>();
    c.on("message", (m) => received.set(m.id, m.text));
    c.on("error", () => {});
    clients.push(c);
    const opened = new Promise<void>((r) => c.once("open", () => r()));
    c.connect();
    return { c, received, opened };
  }

  beforeAll(async () => {
    redis = await startRedisServer();
    nodes.push(
      ...(await Promise.all(["n1", "n2", "n3"].map((n) => startNode(n, redis.url, prefix)))),
    );
  }, 40_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(
      nodes.map(
        (n) =>
          new Promise<void>((resolve) => {
            if (n.proc.exitCode !== null || n.proc.signalCode !== null) return resolve();
            const t = setTimeout(() => n.proc.kill("SIGKILL"), 3_000);
            n.proc.once("exit", () => {
              clearTimeout(t);
              resolve();
            });
            n.proc.kill("SIGTERM");
          }),
      ),
    );
    await redis?.dispose();
  });

  it("relays across nodes, survives a SIGKILLed node and a Redis restart", async () => {
    // ---- phase 1: 1:1 and group across nodes, receipts, presence -----------------------
    const alice = client("alice", 0);
    const bob = client("bob", 1);
    const carol = client("carol", 2);
    const dave = client("dave", 1, false); // does not come back after its node dies
    await Promise.all([alice.opened, bob.opened, carol.opened, dave.opened]);

    alice.c.subscribePresence(["bob", "dave"]);
    await waitFor("bob online", () => alice.c.presenceOf("bob")?.status === "online");

    const statuses = new Map<string, string>();
    for (const x of [alice, carol]) x.c.on("status", (m) => statuses.set(m.clientId, m.status));
    const hello = alice.c.send("bob", "hello bob");
    await waitFor("bob gets hello", () => [...bob.received.values()].includes("hello bob"));
    await waitFor("✓✓ on hello", () => alice.c.outgoing(hello.clientId)?.status === "delivered");
    bob.c.markRead(alice.c.outgoing(hello.clientId)!.conversation!);
    await waitFor("read on hello", () => statuses.get(hello.clientId) === "read");

    const res = await fetch(`${nodes[0]!.url.replace("ws:", "http:")}api/groups`, {
      method: "POST",
      headers: { authorization: "Bearer alice", "content-type": "application/json" },
      body: JSON.stringify({ id: "crew", members: ["bob", "carol"] }),
    });
    expect(res.status).toBe(200);
    // The demo group API: bounded bodies, the protocol's id rule, error frames only.
    const post = async (body: string) => {
      const r = await fetch(`${nodes[0]!.url.replace("ws:", "http:")}api/groups`, {
        method: "POST",
        headers: { authorization: "Bearer alice", "content-type": "application/json" },
        body,
      });
      return { status: r.status, json: (await r.json()) as { type: string; code: string } };
    };
    expect(await post("{nope")).toMatchObject({
      status: 400,
      json: { type: "error", code: "bad_json" },
    });
    expect(await post(JSON.stringify({ id: "bad id!", members: ["bob"] }))).toMatchObject({
      status: 400,
      json: { type: "error", code: "invalid_field", path: "id" },
    });
    expect(await post(JSON.stringify({ id: "g2", members: ["bob", "x y"] }))).toMatchObject({
      status: 400,
      json: { type: "error", code: "invalid_field", path: "members.1" },
    });
    const huge = JSON.stringify({ id: "g3", members: [], name: "n".repeat(100 * 1024) });
    expect(await post(huge)).toMatchObject({
      status: 413,
      json: { type: "error", code: "frame_too_large" },
    });
    alice.c.send({ group: "crew" }, "hi crew");
    await waitFor(
      "group message on two other nodes",
      () =>
        [...bob.received.values()].includes("hi crew") &&
        [...carol.received.values()].includes("hi crew"),
    );
    const fromCarol = carol.c.send("bob", "carol to bob");
    await waitFor("carol's ✓✓", () => carol.c.outgoing(fromCarol.clientId)?.status === "delivered");

    // ---- phase 2: SIGKILL node 2 (bob, dave) mid-traffic -----------------------------
    /** Accepted messages (got a `sent` tick), by recipient. */
    const accepted = { bob: new Set<string>(), alice: new Set<string>() };
    const failures: string[] = [];
    let phase = 2;
    for (const [sender, to] of [
      [alice, "bob"],
      [carol, "bob"],
      [bob, "alice"],
    ] as const) {
      sender.c.on("status", (m) => {
        if (m.id !== undefined && m.status !== "failed" && "user" in m.to) {
          accepted[m.to.user as "bob" | "alice"]?.add(m.id);
        }
        if (m.status === "failed" && phase === 2)
          failures.push(`${m.clientId} to ${to}: ${m.reason}`);
      });
    }
    let sending = true;
    // Sends to bob stop at the kill, so what was in flight to him then can only arrive
    // through the store (loaded where he reconnects), not behind newer traffic.
    let toBob = true;
    let n = 0;
    const traffic = (async () => {
      while (sending) {
        n++;
        if (toBob) {
          alice.c.send("bob", `a${n}`);
          carol.c.send("bob", `c${n}`);
        }
        bob.c.send("alice", `b${n}`);
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    await new Promise((r) => setTimeout(r, 600));
    const victim = nodes[1]!;
    const killedAt = Date.now();
    victim.alive = false;
    toBob = false;
    victim.proc.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 1_500));
    sending = false;
    await traffic;
    // Every send of bob's (queued while reconnecting) must get its ✓ eventually.
    await waitFor("all sends accepted", () =>
      [alice, bob, carol].every((x) => x.c.pendingMessages().length === 0),
    );
    await waitFor(
      "every accepted message delivered",
      () =>
        [...accepted.bob].every((id) => bob.received.has(id)) &&
        [...accepted.alice].every((id) => alice.received.has(id)),
      15_000,
    ).catch(() => {}); // the expectation below lists what is missing
    expect(accepted.bob.size).toBeGreaterThan(10);
    expect(accepted.alice.size).toBeGreaterThan(10);
    const lostBob = [...accepted.bob].filter((id) => !bob.received.has(id));
    const lostAlice = [...accepted.alice].filter((id) => !alice.received.has(id));
    expect({ lostBob, lostAlice, failures }).toEqual({ lostBob: [], lostAlice: [], failures: [] });

    // Presence: dave went with the node; his last seen is its last heartbeat, not the expiry time.
    await waitFor("dave offline", () => alice.c.presenceOf("dave")?.status === "offline", 10_000);
    const daveSeen = alice.c.presenceOf("dave")!.lastSeen!;
    expect(daveSeen).toBeLessThanOrEqual(killedAt + 50);
    expect(daveSeen).toBeGreaterThan(killedAt - HEARTBEAT_MS * 3);
    // bob reconnected elsewhere: online again.
    await waitFor("bob online again", () => alice.c.presenceOf("bob")?.status === "online");

    // ---- phase 3: restart Redis (empty dataset); the nodes carry on ---------------------
    phase = 3;
    await redis.restart();
    let delivered = false;
    const end = Date.now() + 15_000;
    while (!delivered && Date.now() < end) {
      const m = alice.c.send("bob", `after restart ${Date.now()}`);
      const t = Date.now() + 1_500;
      while (Date.now() < t) {
        const s = alice.c.outgoing(m.clientId)?.status;
        const got = [...bob.received.values()].includes(m.text);
        if (got && s !== undefined && s !== "pending" && s !== "failed") {
          delivered = true;
          break;
        }
        if (s === "failed") break; // recipient not re-linked yet: try again
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    expect(delivered, nodes.map((x) => `--- ${x.name}\n${x.log}`).join("\n")).toBe(true);
  }, 55_000);
});
