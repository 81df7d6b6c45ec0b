/**
 * One relaykit node on Redis, with a WebSocket gateway and the HTTP frame endpoint.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 PORT=8081 NODE_ID=n1 npx tsx examples/cluster/node.ts
 *
 * Env: `REDIS_URL` (default redis://127.0.0.1:6379), `PORT` (default 8081, 0 = any free
 * port), `HOST` (default 0.0.0.0), `NODE_ID` (a readable name; the real node id gets a fresh
 * random suffix per start), `RELAYKIT_PREFIX` (key namespace, default "rk"), and for tests
 * `RELAYKIT_TTL_MS`, `RELAYKIT_HEARTBEAT_MS`, `RELAYKIT_RESYNC_MS`; `EXIT_WITH_PARENT=1` stops
 * the node when the process that started it goes away.
 *
 * HTTP: `GET /healthz`, `POST /api/frames` (frames over HTTP), and a demo-only
 * `POST /api/groups` `{"id":"g1","members":["bob"]}` (creator = the bearer token's user).
 * DEMO ONLY: the token IS the identity (see examples/single-node/app.ts `demoAuthenticate`).
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createHttpHandler,
  httpStatusFor,
  type RequestCredentials,
} from "../../src/adapters/http/index.js";
import { createRedisNode } from "../../src/adapters/redis/index.js";
import { createWsGateway } from "../../src/adapters/ws/index.js";
import { type GroupId, isRelayError, RelayError, type UserId } from "../../src/core/index.js";
import { DEFAULT_LIMITS } from "../../src/protocol/index.js";
import { demoAuthenticate } from "../single-node/app.js";

const env = process.env;
const num = (v: string | undefined): number | undefined => (v ? Number(v) : undefined);
const ttlMs = num(env.RELAYKIT_TTL_MS);
const heartbeatMs = num(env.RELAYKIT_HEARTBEAT_MS);
const resyncMs = num(env.RELAYKIT_RESYNC_MS);

const node = await createRedisNode<RequestCredentials>({
  redis: env.REDIS_URL ?? "redis://127.0.0.1:6379",
  authenticate: demoAuthenticate,
  name: env.NODE_ID ?? "node",
  ...(env.RELAYKIT_PREFIX ? { prefix: env.RELAYKIT_PREFIX } : {}),
  ...(ttlMs ? { ttlMs } : {}),
  ...(heartbeatMs ? { heartbeatMs } : {}),
  ...(resyncMs ? { resyncMs } : {}),
});
node.on("error", (e) => console.error(`[${node.nodeId}] ${e.code}: ${e.message}`));
node.on("nodeExpired", (n, users) =>
  console.log(`[${node.nodeId}] node ${n.nodeId} died; took over ${users.length} user(s)`),
);
node.on("selfExpired", () => console.log(`[${node.nodeId}] re-registered (Redis lost us)`));

const frames = createHttpHandler({ router: node.router, authenticate: demoAuthenticate });

/** Largest `POST /api/groups` body read; more is refused (`frame_too_large`, 413). */
const MAX_BODY_BYTES = 64 * 1024;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      // Stop reading: the answer goes out with `connection: close` and the rest is never read.
      req.off("data", onData);
      req.pause();
      reject(new RelayError("frame_too_large", `a body may hold at most ${MAX_BODY_BYTES} bytes`));
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
  try {
    return JSON.parse(text || "{}");
  } catch {
    throw new RelayError("bad_json", "the body is not valid JSON");
  }
}

/** The group a `POST /api/groups` body asks for, checked with the protocol's id rule. */
function groupBody(body: unknown): { id?: string; members: string[]; name: string } {
  const bad = (path: string, message: string) => new RelayError("invalid_field", message, { path });
  if (!body || typeof body !== "object" || Array.isArray(body)) throw bad("", "expected an object");
  const { id, members = [], name = "" } = body as Record<string, unknown>;
  const isId = (v: unknown) => typeof v === "string" && DEFAULT_LIMITS.idPattern.test(v);
  if (id !== undefined && !isId(id)) throw bad("id", "malformed id");
  if (!Array.isArray(members) || members.length > 256) {
    throw bad("members", "expected at most 256 user ids");
  }
  members.forEach((m, i) => {
    if (!isId(m)) throw bad(`members.${i}`, "malformed id");
  });
  if (typeof name !== "string" || name.length > 255) throw bad("name", "expected a short string");
  return { ...(id === undefined ? {} : { id: id as string }), members: members as string[], name };
}

const server = createServer((req, res) => {
  const path = new URL(req.url ?? "/", "http://node").pathname;
  if (path === "/api/frames") return frames(req, res);
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end(`ok ${node.nodeId}\n`);
    return;
  }
  if (path === "/api/groups" && req.method === "POST") {
    void (async () => {
      const token = req.headers.authorization?.replace(/^Bearer /, "");
      const who = token
        ? demoAuthenticate({ token, request: req } as RequestCredentials)
        : undefined;
      if (!who) {
        res.writeHead(401).end();
        return;
      }
      const body = groupBody(await readJson(req));
      const group = await node.groups.create(who.userId as UserId, {
        ...(body.id ? { id: body.id as GroupId } : {}),
        members: (body.members ?? []) as UserId[],
        name: body.name,
      });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(group));
    })().catch((e: unknown) => {
      // An error frame, as on the socket; never the internal error's text.
      const frame = isRelayError(e)
        ? {
            type: "error",
            code: e.code,
            message: e.message,
            ...(e.path === undefined ? {} : { path: e.path }),
          }
        : { type: "error", code: "internal", message: "internal error" };
      if (!isRelayError(e)) console.error(`[${node.nodeId}] /api/groups failed`, e);
      const status = httpStatusFor(frame.code);
      res.writeHead(status, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify(frame));
    });
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
});
const ws = createWsGateway({ gateway: node.gateway, server, keepaliveMs: 10_000 });

await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(Number(env.PORT ?? 8081), env.HOST ?? "0.0.0.0", () => resolve());
});
const port = (server.address() as AddressInfo).port;
console.log(
  `relaykit node ${node.nodeId} listening on ws://127.0.0.1:${port} (pid ${process.pid})`,
);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) process.exit(1);
  stopping = true;
  console.log(`[${node.nodeId}] ${signal}: leaving the cluster...`);
  (async () => {
    await ws.close();
    await node.close();
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  })().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
};
process.on("SIGINT", () => stop("SIGINT"));
if (env.EXIT_WITH_PARENT === "1") {
  // Started by cluster.ts or a test: never outlive it, even if it was SIGKILLed.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop("parent gone");
  }, 500).unref();
}
process.on("SIGTERM", () => stop("SIGTERM"));
