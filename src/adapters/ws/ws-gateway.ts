import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { PerMessageDeflateOptions, RawData, WebSocket } from "ws";
import { WebSocketServer } from "ws";
import { type Clock, RelayError, systemClock, type Timer, TypedEmitter } from "../../core/index.js";
import { CLOSE_CODES, type Connection, type Gateway } from "../../gateway/index.js";
import { bearerToken, type RequestCredentials } from "../http/index.js";
import { offeredSubprotocols, RELAYKIT_SUBPROTOCOL, subprotocolToken } from "./subprotocol.js";
import { WriteCoalescer, WsTransport } from "./ws-transport.js";

/** Where {@link WsGatewayServer} looks for a connection's token. */
export type TokenSource = "header" | "subprotocol" | "both";

/** Options of {@link createWsGateway}. Give exactly one of `server` or `port`. */
export interface WsGatewayOptions {
  /** The gateway connections are handed to. Its `authenticate` hook gets {@link RequestCredentials}. */
  readonly gateway: Gateway<RequestCredentials>;
  /** An existing HTTP server to take WebSocket upgrades from (it keeps serving HTTP). */
  readonly server?: Server;
  /** A port to listen on with a server of our own (0 picks a free one). */
  readonly port?: number;
  /** The host to listen on with `port`. @default all interfaces */
  readonly host?: string;
  /** Only upgrades to this path are taken (query string ignored). @default any path */
  readonly path?: string;
  /** Where the token is read from. @default "both" (the header wins) */
  readonly tokenFrom?: TokenSource;
  /**
   * Ping every connection this often; one that has not answered the previous ping (nor sent
   * anything) by the next one is terminated. 0 turns keepalive off. @default 30000
   */
  readonly keepaliveMs?: number;
  /**
   * Largest WebSocket message accepted at all; bigger ones close the connection (1009).
   * Messages between the parser's `maxFrameBytes` and this get a `frame_too_large` error
   * frame instead. @default twice the gateway parser's maxFrameBytes
   */
  readonly maxPayload?: number;
  /** permessage-deflate: off by default (CPU and memory per connection for small frames). @default false */
  readonly perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** A connection's coalescing buffer is flushed early once it holds this many bytes. @default 65536 */
  readonly maxCoalesceBytes?: number;
  /** Frames a connection may send before its authentication resolves; more closes it (1008). @default 64 */
  readonly maxEarlyFrames?: number;
  /**
   * Read backpressure: frames of one connection received and not yet handled. At this many
   * the socket is no longer read (paused) until half of them are handled. @default 64
   */
  readonly maxReadFrames?: number;
  /** Read backpressure: bytes of frames received and not yet handled (as `maxReadFrames`). @default 1048576 */
  readonly maxReadBytes?: number;
  /**
   * A connection whose socket stays paused this long (its backlog never drains to half) is
   * closed with {@link CLOSE_CODES}.readBacklog (4413). 0 never closes it. @default 30000
   */
  readonly readGraceMs?: number;
  /** On {@link WsGatewayServer.close}, how long to wait for clients to answer the close. @default 1000 */
  readonly closeGraceMs?: number;
  /** Timers (keepalive, close grace) go through this clock. @default systemClock */
  readonly clock?: Clock;
}

/** Events of a {@link WsGatewayServer}. */
export interface WsGatewayEvents {
  /** A connection missed its pong and was terminated. */
  timeout: (transport: WsTransport) => void;
  /** The listening server failed (port in use...). */
  error: (error: Error) => void;
}

interface SocketState {
  readonly transport: WsTransport;
  alive: boolean;
  conn: Connection | undefined;
  early: RawData[] | undefined;
  closed: boolean;
  terminated: boolean;
  onClose: (() => void) | undefined;
  /** Frames and bytes handed to the gateway and not yet handled. */
  readFrames: number;
  readBytes: number;
  /** Armed while the socket is paused (read backpressure); fires after `readGraceMs`. */
  paused: Timer | undefined;
  isPaused: boolean;
}

/**
 * A WebSocket server for a {@link Gateway}, on `ws`. It attaches to an existing
 * `http.Server` or listens on a port, reads the token from `Authorization: Bearer` or the
 * `token.<token>` subprotocol, answers with the `relaykit.v1` subprotocol, keeps
 * connections alive with pings on the injected clock, and coalesces writes per connection.
 * Refused connections are closed by the gateway with 4401.
 */
export class WsGatewayServer extends TypedEmitter<WsGatewayEvents> {
  /** The gateway connections are handed to. */
  readonly gateway: Gateway<RequestCredentials>;
  /** The HTTP server upgrades come from (ours when listening on a port). */
  readonly server: Server;
  /** The underlying `ws` server (noServer mode). */
  readonly wss: WebSocketServer;
  /** Write batching shared by every connection; `stats` counts frames and batches. */
  readonly coalescer = new WriteCoalescer();
  readonly #ownServer: boolean;
  readonly #path: string | undefined;
  readonly #tokenFrom: TokenSource;
  readonly #maxCoalesce: number;
  readonly #maxEarly: number;
  readonly #closeGrace: number;
  readonly #maxReadFrames: number;
  readonly #maxReadBytes: number;
  readonly #readGrace: number;
  readonly #clock: Clock;
  readonly #sockets = new Set<SocketState>();
  readonly #keepalive: Timer | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: WsGatewayOptions) {
    super();
    const o = validate(options);
    this.gateway = o.gateway;
    this.#path = o.path;
    this.#tokenFrom = o.tokenFrom ?? "both";
    this.#maxCoalesce = o.maxCoalesceBytes ?? 64 * 1024;
    this.#maxEarly = o.maxEarlyFrames ?? 64;
    this.#closeGrace = o.closeGraceMs ?? 1000;
    this.#maxReadFrames = o.maxReadFrames ?? 64;
    this.#maxReadBytes = o.maxReadBytes ?? 1024 * 1024;
    this.#readGrace = o.readGraceMs ?? 30_000;
    this.#clock = o.clock ?? systemClock;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: o.maxPayload ?? 2 * this.gateway.parser.limits.maxFrameBytes,
      perMessageDeflate: o.perMessageDeflate ?? false,
      clientTracking: false,
      handleProtocols: (protocols) =>
        protocols.has(RELAYKIT_SUBPROTOCOL) ? RELAYKIT_SUBPROTOCOL : false,
    });
    if (o.server) {
      this.server = o.server;
      this.#ownServer = false;
    } else {
      this.server = createServer((_req, res) => {
        res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
        res.end("Upgrade Required\n");
      });
      this.#ownServer = true;
      this.server.on("error", (e) => this.emit("error", e));
      if (o.host === undefined) this.server.listen(o.port);
      else this.server.listen(o.port, o.host);
    }
    this.server.on("upgrade", this.#onUpgrade);
    const every = o.keepaliveMs ?? 30_000;
    this.#keepalive = every > 0 ? this.#clock.setInterval(() => this.#sweep(), every) : undefined;
  }

  /** How many WebSocket connections are open (authenticated or not yet). */
  get clients(): number {
    return this.#sockets.size;
  }

  /** Resolves with the address once the HTTP server listens. */
  listening(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.server.off("error", fail);
        resolve(this.server.address() as AddressInfo);
      };
      const fail = (e: Error) => {
        this.server.off("listening", done);
        reject(e);
      };
      if (this.server.listening) return done();
      this.server.once("listening", done);
      this.server.once("error", fail);
    });
  }

  /** The `ws://host:port` URL of the listening server (loopback for wildcard hosts). */
  url(): string {
    const a = this.server.address();
    if (!a || typeof a === "string")
      throw new RelayError("closed", "WsGateway: the server is not listening");
    const host =
      a.address === "::" || a.address === "0.0.0.0"
        ? "127.0.0.1"
        : a.family === "IPv6"
          ? `[${a.address}]`
          : a.address;
    return `ws://${host}:${a.port}${this.#path ?? ""}`;
  }

  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (this.#path !== undefined && pathOf(req.url) !== this.#path) {
      // Another upgrade listener may own this path; answer only when nobody else will.
      if (this.server.listenerCount("upgrade") <= 1) reject(socket, 404, "Not Found");
      return;
    }
    if (this.#closing) {
      reject(socket, 503, "Service Unavailable");
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, req));
  };

  #onConnection(ws: WebSocket, req: IncomingMessage): void {
    const state: SocketState = {
      transport: new WsTransport(ws, this.coalescer, this.#maxCoalesce),
      alive: true,
      conn: undefined,
      early: [],
      closed: false,
      terminated: false,
      onClose: undefined,
      readFrames: 0,
      readBytes: 0,
      paused: undefined,
      isPaused: false,
    };
    this.#sockets.add(state);
    ws.on("message", (data) => {
      state.alive = true;
      if (state.conn) {
        this.#receive(state, state.conn, data);
      } else if (state.early) {
        if (state.early.length >= this.#maxEarly) {
          state.transport.close(1008, "too many frames before authentication");
          return;
        }
        state.early.push(data);
      }
    });
    ws.on("pong", () => {
      state.alive = true;
    });
    // Errors (bad frames, resets) are followed by `close`; handling them here keeps them
    // from being thrown as unhandled `error` events.
    ws.on("error", () => {});
    ws.on("close", (code, reason) => {
      state.closed = true;
      state.early = undefined;
      this.#clock.clear(state.paused);
      state.paused = undefined;
      state.transport.dispose();
      this.#sockets.delete(state);
      if (state.conn) {
        const clean = !state.terminated && code !== 1006;
        void this.gateway.closed(state.conn, { clean, code, reason: reason.toString() });
      }
      state.onClose?.();
    });
    const credentials: RequestCredentials = {
      token: this.#token(req),
      headers: req.headers,
      request: req,
      transport: "ws",
    };
    this.gateway.open(state.transport, credentials).then(
      (conn) => this.#opened(state, conn),
      () => state.transport.close(1011, "internal error"),
    );
  }

  #opened(state: SocketState, conn: Connection | undefined): void {
    const early = state.early ?? [];
    state.early = undefined;
    if (!conn) return;
    if (state.closed) {
      void this.gateway.closed(conn, { clean: false, code: 1006, reason: "" });
      return;
    }
    state.conn = conn;
    for (const data of early) this.#receive(state, conn, data);
  }

  /**
   * Hands a frame to the gateway, counting it until it is handled: at `maxReadFrames` or
   * `maxReadBytes` waiting, the socket is paused (TCP then pushes back on the client), and
   * resumed once half of them are handled. Memory per connection stays bounded whatever
   * the client writes: what waits, plus what `ws` already read from one TCP chunk.
   */
  #receive(state: SocketState, conn: Connection, data: RawData): void {
    const bytes = byteLength(data);
    state.readFrames++;
    state.readBytes += bytes;
    const done = this.gateway.receive(conn, data);
    if (state.readFrames >= this.#maxReadFrames || state.readBytes >= this.#maxReadBytes) {
      this.#pause(state);
    }
    void done.then(() => {
      state.readFrames--;
      state.readBytes -= bytes;
      if (
        state.isPaused &&
        state.readFrames <= this.#maxReadFrames / 2 &&
        state.readBytes <= this.#maxReadBytes / 2
      ) {
        this.#resume(state);
      }
    });
  }

  #pause(state: SocketState): void {
    if (state.isPaused || state.closed) return;
    state.isPaused = true;
    state.transport.socket.pause();
    if (this.#readGrace > 0) {
      state.paused = this.#clock.setTimeout(() => this.#backlogged(state), this.#readGrace);
    }
  }

  #resume(state: SocketState): void {
    state.isPaused = false;
    this.#clock.clear(state.paused);
    state.paused = undefined;
    if (!state.closed) state.transport.socket.resume();
  }

  /** The backlog stayed full past the grace: close, and read on only to finish the close. */
  #backlogged(state: SocketState): void {
    state.paused = undefined;
    if (state.closed) return;
    const conn = state.conn;
    state.conn = undefined;
    state.transport.close(CLOSE_CODES.readBacklog, "read_backlog");
    if (conn) {
      void this.gateway.closed(conn, {
        clean: false,
        code: CLOSE_CODES.readBacklog,
        reason: "read_backlog",
      });
    }
    state.isPaused = false;
    state.transport.socket.resume();
  }

  #token(req: IncomingMessage): string | undefined {
    let token: string | undefined;
    if (this.#tokenFrom !== "subprotocol") token = bearerToken(req.headers);
    if (token === undefined && this.#tokenFrom !== "header") {
      token = subprotocolToken(offeredSubprotocols(req.headers["sec-websocket-protocol"]));
    }
    return token;
  }

  /** One keepalive round: terminate who missed the last ping, ping everyone else. */
  #sweep(): void {
    for (const state of this.#sockets) {
      const ws = state.transport.socket;
      if (ws.readyState !== 1) continue;
      if (!state.alive) {
        state.terminated = true;
        this.emit("timeout", state.transport);
        ws.terminate();
        continue;
      }
      state.alive = false;
      ws.ping();
    }
  }

  /**
   * Stops taking connections, closes every open one with 1001 (waiting up to
   * `closeGraceMs` for clients to answer, then terminating), and closes the HTTP server if
   * it is our own. The gateway itself stays open: close it separately if you own it.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#clock.clear(this.#keepalive);
    this.server.off("upgrade", this.#onUpgrade);
    const waits: Promise<void>[] = [];
    for (const state of this.#sockets) {
      waits.push(new Promise<void>((resolve) => (state.onClose = resolve)));
      const ws = state.transport.socket;
      if (ws.readyState === 1) state.transport.close(1001, "server shutting down");
      else ws.terminate();
    }
    if (waits.length > 0) {
      let timer: Timer | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = this.#clock.setTimeout(resolve, this.#closeGrace);
      });
      await Promise.race([Promise.all(waits), grace]);
      this.#clock.clear(timer);
      for (const state of this.#sockets) state.transport.socket.terminate();
    }
    this.wss.close();
    if (this.#ownServer && this.server.listening) {
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    }
  }
}

/**
 * Serves a {@link Gateway} over WebSockets: attach to an existing `http.Server` (`server`)
 * or listen on `port`.
 * @example
 * const ws = createWsGateway({ gateway, server: httpServer, path: "/ws" });
 * @throws RelayError `invalid_option` on bad options
 */
export function createWsGateway(options: WsGatewayOptions): WsGatewayServer {
  return new WsGatewayServer(options);
}

function validate(o: WsGatewayOptions): WsGatewayOptions {
  const bad = (name: string, expected: string, value: unknown): never => {
    throw new RelayError(
      "invalid_option",
      `WsGateway: Expected \`${name}\` to be ${expected}, got \`${String(value)}\` (${typeof value})`,
      { path: name },
    );
  };
  if (!o || typeof o !== "object") return bad("options", "an object", o);
  if (!o.gateway || typeof o.gateway.open !== "function") bad("gateway", "a Gateway", o.gateway);
  if (o.server !== undefined && o.port !== undefined)
    bad("port", "absent when `server` is given", o.port);
  if (o.server === undefined && o.port === undefined)
    bad("server", "an http.Server (or give `port`)", o.server);
  if (o.server !== undefined && typeof o.server.on !== "function")
    bad("server", "an http.Server", o.server);
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535)) {
    bad("port", "an integer in 0..65535", o.port);
  }
  if (o.path !== undefined && !(typeof o.path === "string" && o.path.startsWith("/"))) {
    bad("path", "a string starting with `/`", o.path);
  }
  if (o.tokenFrom !== undefined && !["header", "subprotocol", "both"].includes(o.tokenFrom)) {
    bad("tokenFrom", '"header", "subprotocol" or "both"', o.tokenFrom);
  }
  const ints: [keyof WsGatewayOptions, number][] = [
    ["keepaliveMs", 0],
    ["maxPayload", 1],
    ["maxCoalesceBytes", 1],
    ["maxEarlyFrames", 0],
    ["closeGraceMs", 0],
    ["maxReadFrames", 1],
    ["maxReadBytes", 1],
    ["readGraceMs", 0],
  ];
  for (const [name, min] of ints) {
    const v = o[name];
    if (v !== undefined && !(typeof v === "number" && Number.isInteger(v) && v >= min)) {
      bad(name, `an integer >= ${min}`, v);
    }
  }
  return o;
}

function byteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data.byteLength;
}

function pathOf(url: string | undefined): string {
  if (!url) return "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
