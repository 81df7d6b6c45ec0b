/**
 * Starts and stops real `redis-server` processes for tests: the global one (see
 * test/setup/global-redis.ts) and dedicated ones for tests that kill or restart Redis.
 * No vitest imports here, so the global setup can use it too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where the binary is looked for, in order (`REDIS_SERVER_BIN` overrides). */
const CANDIDATES = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "redis-server"];

/** The redis-server binary to run, or `undefined` when none is installed. */
export function redisServerBinary(): string | undefined {
  const fromEnv = process.env.REDIS_SERVER_BIN;
  if (fromEnv) return fromEnv;
  for (const c of CANDIDATES) {
    if (!c.includes("/")) return c; // on PATH: spawn will tell us if it is missing
    if (existsSync(c)) return c;
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (asks the OS for one, then releases it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends one inline PING; resolves true on `+PONG`. Raw socket: no client library retries. */
export function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
    sock.on("error", () => done(false));
  });
}

/** A redis-server process owned by a test. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** True while the process runs. */
  readonly running: boolean;
  /** Stops it gracefully (SIGTERM, SIGKILL after 3 s). Keeps the port for {@link start}. */
  stop(): Promise<void>;
  /** Kills it at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port (an empty dataset: persistence is off). */
  start(): Promise<void>;
  /** {@link stop} then {@link start}. */
  restart(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  /** Thaws a paused process (SIGCONT). */
  resume(): void;
  /** Stops it and removes its temp dir. */
  dispose(): Promise<void>;
}

/** Options for {@link startRedisServer}. */
export interface StartRedisOptions {
  /** Port to use; a free one by default. */
  port?: number;
  /** How long to wait for PING to answer. @default 10000 */
  readyTimeoutMs?: number;
  /** Extra redis-server arguments. */
  args?: readonly string[];
}

/**
 * Spawns `redis-server` on loopback with persistence off and a temp working dir, and waits
 * until it answers PING.
 * @throws Error when the binary is missing or the server does not come up in time.
 */
export async function startRedisServer(options: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = redisServerBinary();
  if (!bin) throw new Error("redis-server binary not found (set REDIS_SERVER_BIN)");
  const dir = mkdtempSync(join(tmpdir(), "relaykit-redis-"));
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const fixedPort = options.port;
  let port = fixedPort ?? (await freePort());
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = "";

  const onExit = () => child?.kill("SIGKILL");

  async function launch(): Promise<void> {
    log = "";
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--protected-mode",
      "no",
      "--loglevel",
      "warning",
      ...(options.args ?? []),
    ];
    const proc = spawn(bin!, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stdout?.on("data", (d: Buffer) => {
      log = (log + d.toString("utf8")).slice(-4000);
    });
    proc.stderr?.on("data", (d: Buffer) => {
      log = (log + d.toString("utf8")).slice(-4000);
    });
    let spawnError: Error | undefined;
    proc.on("error", (e) => {
      spawnError = e;
    });
    exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    process.once("exit", onExit);
    if (proc.pid) watchdog(proc.pid);
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) throw spawnError;
      if (proc.exitCode !== null || proc.signalCode !== null) break;
      if (await ping(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    proc.kill("SIGKILL");
    await exited;
    throw new Error(
      `redis-server on port ${port} did not answer PING within ${readyTimeoutMs} ms` +
        (spawnError ? `: ${spawnError.message}` : "") +
        (log ? `\n--- redis-server output ---\n${log}` : ""),
    );
  }

  async function stopWith(signal: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
    process.removeListener("exit", onExit);
  }

  // A free port can be taken between asking and binding: try a few.
  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      if (fixedPort !== undefined || attempt >= 2) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      port = await freePort();
    }
  }

  const server: RedisServer = {
    get port() {
      return port;
    },
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get running() {
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    stop: () => stopWith("SIGTERM"),
    kill: () => stopWith("SIGKILL"),
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async start() {
      if (server.running) return;
      await launch();
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    async dispose() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * If this process dies without cleaning up (SIGKILL, or a SIGTERM from `timeout` that skips
 * exit handlers), a tiny shell loop kills the orphaned redis-server within a second.
 */
function watchdog(redisPid: number): void {
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${redisPid} 2>/dev/null; do sleep 1; done; kill -9 ${redisPid} 2>/dev/null`;
  const dog = spawn("sh", ["-c", script], { stdio: "ignore", detached: true });
  dog.on("error", () => {});
  dog.unref();
}
