/**
 * One end-to-end benchmark server, run as its own process:
 * `node --expose-gc --import tsx bench/e2e/server.ts <kind>` (forked with an IPC channel by
 * {@link startServer} in `./servers.ts`). Listens on 127.0.0.1:0, sends `{ type: "ready", port }`
 * to the parent, answers `{ type: "stats" }` with its CPU time, memory and the bytes its
 * sockets wrote, and exits when the parent goes away (the IPC channel closes).
 *
 * Every kind relays the same conversation: a `send` gets an accept answer (`sent`), the message
 * reaches the partner, the partner's `delivered` receipt goes back to the sender.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { demoAuthenticate, startServer as startDemo } from "../../examples/single-node/app.js";
import type { RequestCredentials } from "../../src/adapters/http/index.js";
import { createWsGateway } from "../../src/adapters/ws/index.js";
import { Gateway } from "../../src/gateway/index.js";
import { Router } from "../../src/router/index.js";
import type { ServerKind, ServerStats } from "./protocol.js";

/** Sums what every socket the server ever accepted has written (open and closed ones). */
function countBytes(server: Server): () => number {
  const open = new Set<Socket>();
  let closed = 0;
  server.on("connection", (socket: Socket) => {
    open.add(socket);
    socket.on("close", () => {
      open.delete(socket);
      closed += socket.bytesWritten;
    });
  });
  return () => {
    let sum = closed;
    for (const s of open) sum += s.bytesWritten;
    return sum;
  };
}

interface Started {
  server: Server;
  /** Queue counters where there is a queue. */
  deferred?: () => number;
}

/** relaykit as the README's quick start assembles it: Router + Gateway + createWsGateway. */
async function relaykit(): Promise<Started> {
  const router = new Router();
  const gateway = new Gateway<RequestCredentials>({
    router,
    authenticate: ({ token }) => {
      const [userId, deviceId = "web"] = (token ?? "").split(":");
      return userId ? { userId, deviceId } : undefined;
    },
  });
  const server = createServer();
  createWsGateway({ gateway, server });
  return { server, deferred: () => queueDeferred(router) };
}

/** relaykit as `npm run demo` assembles it (groups, presence, the HTTP endpoint). */
async function relaykitDemo(): Promise<Started> {
  const app = await startDemo({ port: 0, host: "127.0.0.1" });
  return { server: app.server, deferred: () => queueDeferred(app.router) };
}

function queueDeferred(router: Router): number {
  const outbox = router.outbox as { stats?: { deferred: number } };
  return outbox.stats?.deferred ?? 0;
}

/**
 * A relaykit node on Redis as examples/cluster/node.ts assembles it (createRedisNode +
 * createWsGateway), on the Redis at `REDIS_URL`, named `NODE_ID`.
 */
async function relaykitRedis(): Promise<Started> {
  const { createRedisNode } = await import("../../src/adapters/redis/index.js");
  const node = await createRedisNode<RequestCredentials>({
    redis: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    authenticate: demoAuthenticate,
    name: process.env.NODE_ID ?? "bench",
  });
  node.on("error", (e) => console.error(`[${node.nodeId}] ${e.code}: ${e.message}`));
  const server = createServer();
  createWsGateway({ gateway: node.gateway, server });
  return { server, deferred: () => queueDeferred(node.router) };
}

/** Client frames of the raw ws relay (short JSON, the same information). */
type RawIn =
  | { t: "send"; id: string; to: string; text: string }
  | { t: "ack"; id: string; from: string };

/**
 * A minimal relay on `ws`: writes are corked per event-loop turn (every socket written in a
 * turn is uncorked once, in `setImmediate`), so a turn's frames leave in one syscall each.
 * The user is the `user` query parameter; one connection per user.
 */
async function rawWs(): Promise<Started> {
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  const users = new Map<string, WebSocket>();
  const corked: Socket[] = [];
  const uncork = () => {
    for (const s of corked) s.uncork();
    corked.length = 0;
  };
  const write = (ws: WebSocket, data: string) => {
    const socket = (ws as unknown as { _socket: Socket })._socket;
    if (socket.writableCorked === 0) {
      socket.cork();
      if (corked.length === 0) setImmediate(uncork);
      corked.push(socket);
    }
    ws.send(data);
  };
  wss.on("connection", (ws, req) => {
    const user = new URL(req.url ?? "/", "http://x").searchParams.get("user") ?? "";
    users.set(user, ws);
    ws.on("close", () => {
      if (users.get(user) === ws) users.delete(user);
    });
    ws.on("message", (raw) => {
      let frame: RawIn;
      try {
        frame = JSON.parse(String(raw)) as RawIn;
      } catch {
        return;
      }
      if (frame.t === "send") {
        write(ws, JSON.stringify({ t: "sent", id: frame.id }));
        const to = users.get(frame.to);
        if (to) write(to, JSON.stringify({ t: "msg", id: frame.id, from: user, text: frame.text }));
      } else if (frame.t === "ack") {
        const from = users.get(frame.from);
        if (from) write(from, JSON.stringify({ t: "delivered", id: frame.id, by: user }));
      }
    });
  });
  return { server };
}

/** Socket.IO 4.8, WebSocket transport only; the user is `auth.user`. */
async function socketIo(): Promise<Started> {
  const { Server: IoServer } = await import("socket.io");
  const server = createServer();
  const io = new IoServer(server, { transports: ["websocket"], serveClient: false });
  const users = new Map<string, import("socket.io").Socket>();
  io.on("connection", (socket) => {
    const user = String((socket.handshake.auth as { user?: string }).user ?? "");
    users.set(user, socket);
    socket.on("disconnect", () => {
      if (users.get(user) === socket) users.delete(user);
    });
    socket.on("send", (m: { id: string; to: string; text: string }) => {
      socket.emit("sent", m.id);
      users.get(m.to)?.emit("msg", { id: m.id, from: user, text: m.text });
    });
    socket.on("ack", (m: { id: string; from: string }) => {
      users.get(m.from)?.emit("delivered", { id: m.id, by: user });
    });
  });
  return { server };
}

const kinds: Record<ServerKind, () => Promise<Started>> = {
  relaykit,
  "relaykit-demo": relaykitDemo,
  "raw-ws": rawWs,
  socketio: socketIo,
  "relaykit-redis": relaykitRedis,
};

const kind = process.argv[2] as ServerKind;
const make = kinds[kind];
if (!make || !process.send) {
  console.error(`usage: fork bench/e2e/server.ts <${Object.keys(kinds).join("|")}> with IPC`);
  process.exit(2);
}
// The parent went away (or closed the channel): stop at once.
process.on("disconnect", () => process.exit(0));

const started = await make();
const { server } = started;
const bytes = countBytes(server);
if (!server.listening) {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
}
const gc = (globalThis as { gc?: () => void }).gc;
process.on("message", (m: { type: string; gc?: boolean }) => {
  if (m.type !== "stats") return;
  if (m.gc && gc) {
    gc();
    gc();
  }
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const stats: ServerStats = {
    type: "stats",
    cpuUs: cpu.user + cpu.system,
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    bytesWritten: bytes(),
    deferred: started.deferred?.() ?? 0,
  };
  process.send?.(stats);
});
process.send({ type: "ready", port: (server.address() as AddressInfo).port });
