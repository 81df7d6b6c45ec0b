/**
 * `npm run demo:cluster`: N relaykit nodes (separate processes) on one Redis.
 *
 * - `REDIS_URL` set: the nodes use that Redis.
 * - unset: a local `redis-server` is started on a free loopback port (persistence off) and
 *   stopped on exit.
 * - `NODES` (default 3) nodes listen on ports `BASE_PORT` (default 8081), 8082, 8083...
 *
 * Ctrl-C stops every node (each leaves the cluster cleanly) and the Redis it started.
 * Try it: `npm run demo:client -- --user alice --url ws://127.0.0.1:8081` and
 * `npm run demo:client -- --user bob --url ws://127.0.0.1:8083`, then kill a node's pid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const N = Number(process.env.NODES ?? 3);
const BASE_PORT = Number(process.env.BASE_PORT ?? 8081);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function redisBinary(): string {
  if (process.env.REDIS_SERVER_BIN) return process.env.REDIS_SERVER_BIN;
  for (const c of ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]) {
    if (existsSync(c)) return c;
  }
  return "redis-server";
}

/** Starts a throwaway redis-server on loopback; resolves once it accepts connections. */
async function startRedis(): Promise<{ url: string; proc: ChildProcess; dir: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "relaykit-cluster-redis-"));
  const proc = spawn(
    redisBinary(),
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString("utf8");
      if (out.includes("Ready to accept connections")) resolve();
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("error", (e) =>
      reject(new Error(`cannot start redis-server (${e.message}); install it or set REDIS_URL`)),
    );
    proc.once("exit", (code) => reject(new Error(`redis-server exited (${code}):\n${out}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, proc, dir };
}

let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
let url = process.env.REDIS_URL;
if (!url) {
  redis = await startRedis();
  url = redis.url;
  console.log(`REDIS_URL is not set: started a local redis-server at ${url} (stopped on exit)`);
} else {
  console.log(`using Redis at ${url}`);
}

const children: ChildProcess[] = [];
for (let i = 0; i < N; i++) {
  const port = BASE_PORT + i;
  const child = spawn(process.execPath, ["--import", "tsx", "examples/cluster/node.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: url,
      PORT: String(port),
      NODE_ID: `n${i + 1}`,
      EXIT_WITH_PARENT: "1",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  child.once("exit", (code, signal) => {
    if (!stopping) console.log(`node n${i + 1} (port ${port}) exited: ${signal ?? code}`);
  });
  children.push(child);
}
console.log(`starting ${N} nodes on ports ${BASE_PORT}..${BASE_PORT + N - 1}; Ctrl-C stops all`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) process.exit(1);
  stopping = true;
  console.log("\nstopping the cluster...");
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => c.kill("SIGKILL"), 5_000);
          c.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          c.kill("SIGTERM");
        }),
    ),
  );
  if (redis) {
    const r = redis;
    await new Promise<void>((resolve) => {
      if (r.proc.exitCode !== null) return resolve();
      r.proc.once("exit", () => resolve());
      r.proc.kill("SIGTERM");
    });
    rmSync(r.dir, { recursive: true, force: true });
  }
  process.exit(0);
}
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
