/**
 * Starts an e2e benchmark server ({@link ServerKind}) as a child process and talks to it over
 * IPC. Children are killed when this process exits, and exit by themselves when it dies (their
 * IPC channel closes).
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ServerKind, ServerStats } from "./protocol.js";

const SERVER = fileURLToPath(new URL("./server.ts", import.meta.url));
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

/** A running server process. */
export interface ServerProcess {
  readonly kind: ServerKind;
  readonly port: number;
  readonly pid: number;
  /** CPU, memory and bytes written so far; `gc` runs a full GC first (for memory figures). */
  stats(gc?: boolean): Promise<ServerStats>;
  stop(): Promise<void>;
}

/** Forks `bench/e2e/server.ts <kind>` and waits until it listens. */
export async function startServer(
  kind: ServerKind,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const child = fork(SERVER, [kind], {
    env: { ...process.env, ...env },
    execArgv: ["--expose-gc", "--import", "tsx"],
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const port = await new Promise<number>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${kind} server exited (${code})`));
    child.once("exit", onExit);
    child.once("message", (m: { type: string; port: number }) => {
      child.off("exit", onExit);
      if (m.type === "ready") resolve(m.port);
      else reject(new Error(`${kind} server: unexpected ${JSON.stringify(m)}`));
    });
  });
  const waiting: ((s: ServerStats) => void)[] = [];
  child.on("message", (m: ServerStats) => {
    if (m.type === "stats") waiting.shift()?.(m);
  });
  return {
    kind,
    port,
    pid: child.pid ?? 0,
    stats(gc = false) {
      return new Promise((resolve, reject) => {
        if (!child.connected) {
          reject(new Error(`${kind} server is gone`));
          return;
        }
        waiting.push(resolve);
        child.send({ type: "stats", gc });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}
