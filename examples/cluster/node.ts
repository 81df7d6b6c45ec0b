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
import { createHttpHandler, type RequestCredentials } from "../../src/adapters/http/index.js";
import { createRedisNode } from "../../src/adapters/redis/index.js";
import { createWsGateway } from "../../src/adapters/ws/index.js";
import { type GroupId, isRelayError, type UserId } from "../../src/core/index.js";
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

async function readJson(req: IncomingMessage): Promise<unknown> {
  let body = "";
  for await (const chunk of req) body += chunk;
  return JSON.parse(body || "{}");
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
      const body = (await readJson(req)) as { id?: string; members?: string[]; name?: string };
      const group = await node.groups.create(who.userId as UserId, {
        ...(body.id ? { id: body.id as GroupId } : {}),
        members: (body.members ?? []) as UserId[],
        name: body.name ?? "",
      });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(group));
    })().catch((e: unknown) => {
      res
        .writeHead(isRelayError(e) ? 400 : 500, { "content-type": "application/json" })
        .end(JSON.stringify({ error: isRelayError(e) ? e.code : String(e) }));
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
