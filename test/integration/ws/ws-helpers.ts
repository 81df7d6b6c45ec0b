import { type ClientOptions, WebSocket } from "ws";
import {
  createWsGateway,
  type RequestCredentials,
  type WsGatewayServer,
} from "../../../src/adapters/ws/index.js";
import type { Clock } from "../../../src/core/index.js";
import { sequentialIds } from "../../../src/core/index.js";
import { Gateway, type LimitOptions } from "../../../src/gateway/index.js";
import type { ServerFrame } from "../../../src/protocol/index.js";
import { deliveryQueue, Router, type RouterOptions } from "../../../src/router/index.js";

/** Test auth: the token is `<user>:<device>`; anything else (or "nope") is refused. */
export function tokenAuth(c: RequestCredentials) {
  if (!c.token || c.token === "nope") return undefined;
  const [userId, deviceId = "d1"] = c.token.split(":");
  return userId ? { userId, deviceId } : undefined;
}

/** A router + gateway + ws server on 127.0.0.1, port 0. */
export async function startWsNode(
  opts: {
    clock?: Clock;
    keepaliveMs?: number;
    maxBufferedBytes?: number;
    slowConsumerMs?: number;
    window?: number;
    /** More options of the router's DeliveryQueue. */
    queue?: Parameters<typeof deliveryQueue>[0];
    limits?: LimitOptions;
    hooks?: RouterOptions["hooks"];
    readGraceMs?: number;
    maxReadFrames?: number;
    maxReadBytes?: number;
    /** More options of the router. */
    router?: Partial<RouterOptions>;
  } = {},
) {
  const router = new Router({
    ids: sequentialIds("m"),
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    ...(opts.window === undefined && opts.queue === undefined
      ? {}
      : {
          outbox: deliveryQueue({
            ...opts.queue,
            ...(opts.window === undefined ? {} : { window: opts.window }),
          }),
        }),
    ...opts.router,
  });
  const gateway = new Gateway<RequestCredentials>({
    router,
    authenticate: tokenAuth,
    ids: sequentialIds("s"),
    ...(opts.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: opts.maxBufferedBytes }),
    ...(opts.slowConsumerMs === undefined ? {} : { slowConsumerMs: opts.slowConsumerMs }),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...opts.limits,
  });
  const ws: WsGatewayServer = createWsGateway({
    gateway,
    port: 0,
    host: "127.0.0.1",
    keepaliveMs: opts.keepaliveMs ?? 0,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.readGraceMs === undefined ? {} : { readGraceMs: opts.readGraceMs }),
    ...(opts.maxReadFrames === undefined ? {} : { maxReadFrames: opts.maxReadFrames }),
    ...(opts.maxReadBytes === undefined ? {} : { maxReadBytes: opts.maxReadBytes }),
  });
  await ws.listening();
  const url = ws.url();
  const clients: TestClient[] = [];
  const connect = async (
    token: string | undefined,
    options: ClientOptions & { protocols?: string[] } = {},
  ) => {
    const c = TestClient.open(url, token, options);
    clients.push(c);
    await c.opened;
    return c;
  };
  const extra: { gateway: Gateway<RequestCredentials>; ws: WsGatewayServer }[] = [];
  /** A second gateway + ws listener on the same router (another listener of the same node). */
  const addListener = async (maxBufferedBytes?: number) => {
    const g = new Gateway<RequestCredentials>({
      router,
      authenticate: tokenAuth,
      ids: sequentialIds("t"),
      ...(maxBufferedBytes === undefined ? {} : { maxBufferedBytes }),
    });
    const w = createWsGateway({ gateway: g, port: 0, host: "127.0.0.1", keepaliveMs: 0 });
    await w.listening();
    extra.push({ gateway: g, ws: w });
    return async (token: string) => {
      const c = TestClient.open(w.url(), token);
      clients.push(c);
      await c.opened;
      return c;
    };
  };
  const stop = async () => {
    for (const c of clients) c.socket.terminate();
    for (const e of [{ gateway, ws }, ...extra]) {
      await e.ws.close();
      await e.gateway.close();
    }
    await router.close();
  };
  return { router, gateway, ws, url, connect, addListener, clients, stop };
}

interface Waiter {
  pred: (f: ServerFrame) => boolean;
  resolve: (f: ServerFrame) => void;
}

/** A real `ws` client that records every frame and lets a test wait for one (event-based, with a timeout). */
export class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Waiter[] = [];

  private constructor(readonly socket: WebSocket) {
    this.opened = new Promise((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    this.closed = new Promise((resolve) => {
      socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    socket.on("error", () => {});
    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as ServerFrame;
      this.frames.push(frame);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.pred(frame)) return true;
        w.resolve(frame);
        return false;
      });
    });
  }

  static open(
    url: string,
    token: string | undefined,
    options: ClientOptions & { protocols?: string[] } = {},
  ) {
    const { protocols, ...rest } = options;
    const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
    return new TestClient(new WebSocket(url, protocols ?? [], { headers, ...rest }));
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Frames of one type received so far. */
  ofType<T extends ServerFrame["type"]>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type);
  }

  /** The first frame (already received or still to come) that matches. */
  waitFor<T extends ServerFrame = ServerFrame>(
    pred: (f: ServerFrame) => boolean,
    label = "frame",
    timeoutMs = 5000,
  ): Promise<T> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen as T);
    return withTimeout(
      new Promise<T>((resolve) =>
        this.#waiters.push({ pred, resolve: resolve as (f: ServerFrame) => void }),
      ),
      timeoutMs,
      label,
    );
  }

  /** Waits until `n` frames match. */
  async waitForCount(
    pred: (f: ServerFrame) => boolean,
    n: number,
    label = "frames",
    timeoutMs = 5000,
  ) {
    let count = this.frames.filter(pred).length;
    if (count >= n) return;
    await withTimeout(
      new Promise<void>((resolve) => {
        const w: Waiter = {
          pred: (f) => pred(f) && ++count >= n,
          resolve: () => resolve(),
        };
        this.#waiters.push(w);
      }),
      timeoutMs,
      `${n} ${label} (got ${count})`,
    );
  }
}

/** Rejects if `p` does not settle within `ms` (a guard against hangs, not a sleep). */
export function withTimeout<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** Resolves when `emitter` emits `event` once (with a timeout). */
export function once<T extends unknown[]>(
  emitter: { once(event: string, fn: (...args: T) => void): unknown },
  event: string,
  timeoutMs = 5000,
): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve) => emitter.once(event, (...args: T) => resolve(args))),
    timeoutMs,
    event,
  );
}
