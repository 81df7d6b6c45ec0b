/**
 * The single-node demo server, as a function tests can start on port 0: one in-memory
 * router, one gateway, WebSockets (any path) and the HTTP frame endpoint on one
 * `http.Server`, plus the browser page from examples/browser/ when that folder exists, and
 * Prometheus metrics at `/metrics` (relaykit/metrics).
 *
 * DEMO ONLY: the token *is* the identity (see `demoAuthenticate`). Never ship that.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createHttpHandler, type RequestCredentials } from "../../src/adapters/http/index.js";
import { createWsGateway, type WsGatewayServer } from "../../src/adapters/ws/index.js";
import { Gateway, type Identity, presenceBridge } from "../../src/gateway/index.js";
import { GroupService } from "../../src/groups/index.js";
import { type RelayMetrics, relayMetrics } from "../../src/metrics/index.js";
import { PresenceTracker } from "../../src/presence/index.js";
import { Router } from "../../src/router/index.js";

/** Where the browser demo lives (served at `/` when present). */
export const BROWSER_DIR = fileURLToPath(new URL("../browser/", import.meta.url));

/**
 * DEMO-ONLY authentication: the bearer token is `<user>` or `<user>:<device>` and is
 * trusted as is (device defaults to `main`). Browsers, which cannot set headers, send it
 * as the `token.<token>` subprotocol; `?token=` in the URL works too. A real server
 * verifies a signed token (a JWT, a session cookie) here instead.
 */
export function demoAuthenticate(c: RequestCredentials): Identity | undefined {
  let token = c.token;
  if (token === undefined && c.request.url) {
    token = new URL(c.request.url, "http://demo").searchParams.get("token") ?? undefined;
  }
  if (!token) return undefined;
  const at = token.indexOf(":");
  const userId = at < 0 ? token : token.slice(0, at);
  const deviceId = at < 0 ? "main" : token.slice(at + 1);
  return userId && deviceId ? { userId, deviceId } : undefined;
}

// ---- BROWSER PAGE HOOK ---------------------------------------------------------------
// `GET /client.js` serves the browser bundle of the client SDK (src/client). The browser
// demo owns how it is built: if examples/browser/bundle.ts exists, its `bundleClient()`
// (or default export), returning the script source, is called (and may cache). Otherwise
// a static examples/browser/client.js is served if present, else 404.
async function clientScript(): Promise<string | undefined> {
  const bundler = join(BROWSER_DIR, "bundle.ts");
  if (!existsSync(bundler)) return undefined;
  const mod = (await import(pathToFileURL(bundler).href)) as {
    bundleClient?: () => string | Promise<string>;
    default?: () => string | Promise<string>;
  };
  const build = mod.bundleClient ?? mod.default;
  return build ? await build() : undefined;
}
// ---------------------------------------------------------------------------------------

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** Serves a file from `root` for GET/HEAD; false when there is none (never outside `root`). */
async function serveStatic(
  root: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  if (!existsSync(root)) return false;
  let path = decodeURIComponent(new URL(req.url ?? "/", "http://demo").pathname);
  if (path.endsWith("/")) path += "index.html";
  const file = resolve(root, normalize(`.${path}`));
  if (!file.startsWith(resolve(root) + sep)) return false;
  if (extname(file) === ".ts") return false; // build scripts, not assets
  try {
    if (!(await stat(file)).isFile()) return false;
    const body = await readFile(file);
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": body.length,
      "cache-control": "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  } catch {
    return false;
  }
}

/** What {@link startServer} returns. */
export interface DemoServer {
  readonly server: Server;
  readonly router: Router;
  readonly gateway: Gateway<RequestCredentials>;
  readonly ws: WsGatewayServer;
  /** Groups: create one with `groups.create(creator, { members })`. */
  readonly groups: GroupService;
  readonly presence: PresenceTracker;
  /** The address it listens on (`127.0.0.1` unless `host` was given). */
  readonly host: string;
  /** The port it listens on. */
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly httpUrl: string;
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string;
  /** Whether the browser page is served at `/`. */
  readonly hasBrowserPage: boolean;
  /** The metrics served at `/metrics`. */
  readonly metrics: RelayMetrics;
  /** Closes every connection and the server. */
  close(): Promise<void>;
}

/**
 * Starts the demo: in-memory router + gateway + ws + HTTP on one server, on 127.0.0.1 unless
 * `host` says otherwise (its auth trusts any token, so it stays off the network by default).
 */
export async function startServer(
  opts: { port?: number; host?: string } = {},
): Promise<DemoServer> {
  const groups = new GroupService();
  const router = new Router({ groups });
  // Membership changes become system messages in the group's conversation.
  groups.on("system", ({ groupId, event }) => void router.postSystem(groupId, event));
  const presence = new PresenceTracker();
  const gateway = new Gateway<RequestCredentials>({
    router,
    authenticate: demoAuthenticate,
    presence: presenceBridge(presence, router),
  });
  const frames = createHttpHandler({ router, authenticate: demoAuthenticate });
  const metrics = relayMetrics({ router, gateways: [gateway], presence });
  const hasBrowserPage = existsSync(BROWSER_DIR);

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://demo").pathname;
    if (path === "/api/frames") {
      frames(req, res);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    void (async () => {
      if (path === "/metrics") {
        const body = await metrics.metrics();
        res.writeHead(200, { "content-type": metrics.contentType });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      }
      if (path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      }
      if (path === "/client.js") {
        const script = await clientScript();
        if (script !== undefined) {
          res.writeHead(200, {
            "content-type": "text/javascript; charset=utf-8",
            "cache-control": "no-cache",
          });
          res.end(req.method === "HEAD" ? undefined : script);
          return;
        }
      }
      if (await serveStatic(BROWSER_DIR, req, res)) return;
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    })().catch((e: unknown) => {
      console.error("demo: request failed:", e);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    });
  });
  const ws = createWsGateway({ gateway, server });
  gateway.on("error", (e) => console.error("gateway:", e.code, e.message));

  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8080, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolveListen();
    });
  });
  const { address: host, port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    server,
    router,
    gateway,
    ws,
    groups,
    presence,
    host,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    hasBrowserPage,
    metrics,
    close() {
      closing ??= (async () => {
        metrics.close();
        await ws.close();
        await gateway.close();
        await router.close();
        presence.close();
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
