import type { Clock, Timer } from "../core/clock.js";
import { isRelayError, RelayError } from "../core/errors.js";
import { TypedEmitter } from "../core/events.js";
import type { DeviceId, SessionId, UserId } from "../core/ids.js";
import { isPromiseLike, type MaybePromise } from "../core/maybe.js";
import type { IdSource } from "../core/random.js";
import { systemClock, systemIds } from "../core/system.js";
import type { Session } from "../core/types.js";
import { FrameParser, type RawFrame } from "../protocol/parse.js";
import type {
  ClientFrame,
  ClientFrameOf,
  ErrorFrame,
  ProtocolLimits,
  ServerFrame,
} from "../protocol/schemas.js";
import { errorFrame, type Router, type Sender } from "../router/router.js";
import { type ConnectionLimits, LimitGuard, type LimitOptions } from "./limits.js";

/** WebSocket close codes the gateway uses. 4xxx are application codes; stable. */
export const CLOSE_CODES = Object.freeze({
  /** The server is shutting down. */
  goingAway: 1001,
  /** The `authenticate` hook refused the connection. */
  unauthorized: 4401,
  /** The client did not read fast enough; its messages stay queued for its next connection. */
  slowConsumer: 4408,
  /**
   * The connection stopped acking its messages (ack timeout plus the outbox's grace); they
   * are redelivered on the device's next connection.
   */
  unresponsive: 4409,
  /** Something went wrong inside the server. */
  internal: 1011,
  /** Over a cap when connecting: too many connections, or too many device ids, for the user. */
  tooMany: 4410,
  /** The client's unread backlog stayed full past the grace (the ws adapter's `readGraceMs`). */
  readBacklog: 4413,
  /** The client kept sending after `rate_limited` answers (the `refusals` limit). */
  flooding: 4429,
});

/** Who a connection is, as decided by the `authenticate` hook. */
export interface Identity {
  readonly userId: string;
  readonly deviceId: string;
}

/**
 * Decides who a new connection is, from whatever the transport offers (a token from a
 * header or subprotocol, a cookie, a URL). Return (or resolve) `undefined` or throw to refuse.
 */
export type Authenticate<C = unknown> = (
  credentials: C,
) => Identity | undefined | Promise<Identity | undefined>;

/**
 * The socket side of one connection, implemented by a transport adapter (`relaykit/ws`,
 * or a test). The gateway never touches a socket itself.
 */
export interface Transport {
  /** Writes one encoded frame. */
  send(data: string): void;
  /** Closes the connection with a code and a short reason. */
  close(code: number, reason: string): void;
  /** Bytes accepted by `send` but not yet written to the network. */
  readonly bufferedAmount: number;
}

/** One authenticated connection held by a {@link Gateway}. */
export interface Connection {
  readonly session: Session;
  readonly transport: Transport;
}

/** Hooks a gateway calls for activity and presence frames (the presence tracker plugs in here). */
export interface GatewayPresence {
  /** A device connected or disconnected (`clean` false when the socket died). */
  connected(session: Session): void | Promise<void>;
  disconnected(session: Session, clean: boolean): void | Promise<void>;
  /**
   * The user did something on this device: a send, typing, a read receipt or an `active`
   * frame. Keepalive pings, automatic `delivered` receipts and subscriptions are not activity.
   */
  touch(connection: Connection): void;
  subscribe(viewer: Connection, users: readonly UserId[]): void | Promise<void>;
  unsubscribe(viewer: Connection, users: readonly UserId[]): void | Promise<void>;
  /** A typing frame (volatile): presence expires it by itself. */
  typing(from: Connection, frame: ClientFrameOf<"typing">): Promise<ErrorFrame | undefined>;
}

/** Options of {@link Gateway}; the abuse limits come from {@link LimitOptions}. */
export interface GatewayOptions<C = unknown> extends LimitOptions {
  readonly router: Router;
  readonly authenticate: Authenticate<C>;
  /** Parser limits for incoming frames. */
  readonly limits?: Partial<ProtocolLimits>;
  /**
   * Most bytes that may wait unwritten on one connection before it counts as a slow
   * consumer and is closed with {@link CLOSE_CODES.slowConsumer}. @default 1048576
   */
  readonly maxBufferedBytes?: number;
  /**
   * Grace for a slow consumer: a connection whose unwritten bytes went over
   * `maxBufferedBytes` is closed if they stay over for `slowConsumerMs` (sampled four times;
   * one sample under ends the overage). `0` closes it at the first write that would go over. With a grace, a client that reads at full speed
   * survives a burst larger than the limit (a large `window` replaying a backlog on
   * reconnect); the outbox's window bounds what a burst holds. @default 0
   */
  readonly slowConsumerMs?: number;
  readonly presence?: GatewayPresence;
  readonly clock?: Clock;
  readonly ids?: IdSource;
}

/** Events of a {@link Gateway}. */
export interface GatewayEvents {
  /** A connection was authenticated and registered. */
  open: (connection: Connection) => void;
  /** A connection went away. */
  close: (connection: Connection, code: number, reason: string) => void;
  /** A frame was refused; the client got the error frame. */
  rejected: (connection: Connection, error: ErrorFrame) => void;
  /** An unexpected failure while handling a frame (reported, never thrown at the socket). */
  error: (error: RelayError) => void;
}

const DONE: Promise<void> = Promise.resolve();

/**
 * Whether a frame is something the user did (it refreshes presence and last seen). A
 * keepalive is not, nor is a `delivered` receipt (the SDK sends those by itself).
 */
function isActivity(frame: ClientFrame): boolean {
  switch (frame.type) {
    case "send":
    case "typing":
    case "active":
      return true;
    case "receipt":
      return frame.status === "read";
    default:
      return false;
  }
}
/** How many times a slow consumer's buffer is sampled over its grace. */
const SLOW_SAMPLES = 4;

interface ConnState extends Connection {
  /** The connection's work in call order: its connect, then each frame that had to wait. */
  chain: Promise<void>;
  /** How many pieces of work are on `chain` and not finished. */
  pending: number;
  /** Frames received so far: the position of the latest one (errors reference it). */
  received: number;
  closed: boolean;
  sender: Sender;
  /** Armed while unwritten bytes are above the limit (`slowConsumerMs` > 0). */
  slowTimer: Timer | undefined;
  limits: ConnectionLimits | undefined;
}

/**
 * The edge of the system: holds connections and nothing else of value. It authenticates a
 * connection, parses every frame through the protocol parser, hands frames to the router as
 * the authenticated identity, and writes frames for its sessions back out. It can die and
 * lose nothing: every accepted message is in the outbox until a device acks it.
 */
export class Gateway<C = unknown> extends TypedEmitter<GatewayEvents> {
  /** The router frames go to. */
  readonly router: Router;
  /** The parser in use. */
  readonly parser: FrameParser;
  readonly #authenticate: Authenticate<C>;
  readonly #maxBuffered: number;
  readonly #slowMs: number;
  readonly #presence: GatewayPresence | undefined;
  readonly #clock: Clock;
  readonly #ids: IdSource;
  readonly #conns = new Map<SessionId, ConnState>();
  readonly #guard: LimitGuard;
  /** Open connections per user (for `maxConnectionsPerUser`). */
  readonly #perUser = new Map<UserId, number>();
  readonly #detach: () => void;

  constructor(options: GatewayOptions<C>) {
    super();
    if (typeof options?.authenticate !== "function") {
      throw new RelayError("invalid_option", "Gateway: Expected `authenticate` to be a function");
    }
    this.router = options.router;
    this.parser = new FrameParser(options.limits);
    this.#authenticate = options.authenticate;
    this.#maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.#slowMs = options.slowConsumerMs ?? 0;
    if (!Number.isInteger(this.#maxBuffered) || this.#maxBuffered < 1) {
      throw new RelayError(
        "invalid_option",
        `Gateway: Expected \`maxBufferedBytes\` to be an integer >= 1, got \`${String(options.maxBufferedBytes)}\``,
      );
    }
    if (!Number.isFinite(this.#slowMs) || this.#slowMs < 0) {
      throw new RelayError(
        "invalid_option",
        `Gateway: Expected \`slowConsumerMs\` to be a number >= 0, got \`${String(options.slowConsumerMs)}\``,
      );
    }
    this.#guard = new LimitGuard(options);
    this.#presence = options.presence;
    this.#clock = options.clock ?? systemClock;
    this.#ids = options.ids ?? systemIds();
    const detachSink = this.router.attach((sessions, frame) => this.#deliver(sessions, frame));
    const onUnresponsive = (sessions: readonly SessionId[]) => {
      for (const id of sessions) {
        const conn = this.#conns.get(id);
        if (conn) this.#kick(conn, CLOSE_CODES.unresponsive, "unresponsive");
      }
    };
    this.router.on("unresponsive", onUnresponsive);
    this.#detach = () => {
      detachSink();
      this.router.off("unresponsive", onUnresponsive);
    };
  }

  /** How many connections are open. */
  get size(): number {
    return this.#conns.size;
  }

  /** The open connection of a session, if it is here. */
  connection(sessionId: SessionId): Connection | undefined {
    return this.#conns.get(sessionId);
  }

  /**
   * Authenticates a new connection and registers its session. Resolves to the connection,
   * or to `undefined` after closing the transport with {@link CLOSE_CODES.unauthorized}.
   */
  async open(transport: Transport, credentials: C): Promise<Connection | undefined> {
    let identity: Identity | undefined;
    try {
      identity = await this.#authenticate(credentials);
    } catch {
      identity = undefined;
    }
    const id = this.parser.limits.idPattern;
    if (!identity || !id.test(identity.userId) || !id.test(identity.deviceId)) {
      transport.close(CLOSE_CODES.unauthorized, "unauthorized");
      return undefined;
    }
    const session: Session = {
      sessionId: this.#ids.next("s") as SessionId,
      userId: identity.userId as UserId,
      deviceId: identity.deviceId as DeviceId,
      nodeId: this.router.nodeId,
      connectedAt: this.#clock.now(),
    };
    const conn: ConnState = {
      session,
      transport,
      chain: Promise.resolve(),
      pending: 0,
      received: 0,
      closed: false,
      sender: { userId: session.userId, deviceId: session.deviceId, sessionId: session.sessionId },
      slowTimer: undefined,
      limits: undefined,
    };
    if (!(await this.#admit(transport, session))) return undefined;
    conn.limits = this.#guard.attach(session.userId);
    this.#perUser.set(session.userId, (this.#perUser.get(session.userId) ?? 0) + 1);
    this.#conns.set(session.sessionId, conn);
    let failed = false;
    await this.#then(conn, async () => {
      await this.router.connect(session);
      await this.#presence?.connected(session);
    }).catch((cause: unknown) => {
      failed = true;
      this.#fail(conn, cause);
    });
    if (failed && !conn.closed) {
      // Half-registered is worse than gone: close, undo what was registered, let it reconnect.
      transport.close(CLOSE_CODES.internal, "connect_failed");
      await this.closed(conn, {
        clean: false,
        code: CLOSE_CODES.internal,
        reason: "connect_failed",
      });
    }
    if (conn.closed) return undefined;
    this.emit("open", conn);
    return conn;
  }

  /**
   * Handles one raw frame from a connection. Frames of one connection are handled in the
   * order they arrived and their replies (errors included) are written in that order; a
   * `ping` is the exception: its `pong` is written at once, from memory, so liveness never
   * waits behind a frame that waits on storage. Never rejects: bad input becomes an `error`
   * frame carrying the frame's `id` as `ref` when it had one, and always its `position`.
   */
  receive(connection: Connection, raw: RawFrame): Promise<void> {
    const conn = this.#conns.get(connection.session.sessionId);
    if (!conn || conn.closed) return DONE;
    const position = ++conn.received;
    const parsed = this.parser.parseClient(raw);
    if (!parsed.ok) {
      const frame: ErrorFrame = { ...parsed.error.toFrame(), position };
      if (conn.pending > 0) return this.#then(conn, () => this.#reply(conn, frame));
      this.#reply(conn, frame);
      return DONE;
    }
    const frame = parsed.frame;
    const refused = this.#limited(conn, frame);
    if (refused) {
      const answer = () => {
        this.#reply(conn, { ...refused.refusal, position });
        if (refused.close) this.#kick(conn, CLOSE_CODES.flooding, "flooding");
      };
      // In order behind what is in progress, except when the backlog itself is the problem.
      if (conn.pending > 0 && !refused.overloaded) return this.#then(conn, answer);
      answer();
      return DONE;
    }
    if (isActivity(frame)) this.#presence?.touch(conn);
    if (frame.type === "ping") {
      this.#reply(conn, this.#pong(frame.id));
      return DONE;
    }
    if (conn.pending === 0) {
      // Nothing of this connection is in progress, so order holds if it runs now: on
      // in-memory ports a send or a receipt is handled before this returns, promise-free.
      let done: MaybePromise<void>;
      try {
        done = this.#dispatch(conn, frame, position);
      } catch (cause) {
        this.#fail(conn, cause, frame, position);
        return DONE;
      }
      if (!isPromiseLike(done)) return DONE;
      return this.#then(conn, () =>
        Promise.resolve(done).catch((cause: unknown) => this.#fail(conn, cause, frame, position)),
      );
    }
    return this.#then(conn, async () => {
      try {
        await this.#dispatch(conn, frame, position);
      } catch (cause) {
        this.#fail(conn, cause, frame, position);
      }
    });
  }

  /** Caps checked on connect: connections and device ids per user. Closes the transport when over. */
  async #admit(transport: Transport, session: Session): Promise<boolean> {
    const g = this.#guard;
    let over = (this.#perUser.get(session.userId) ?? 0) >= g.maxConnectionsPerUser;
    if (!over) {
      const devices = await this.router.devices.devices(session.userId);
      over = !devices.includes(session.deviceId) && devices.length >= g.maxDevicesPerUser;
      if (over) {
        transport.close(CLOSE_CODES.tooMany, "too_many_devices");
        return false;
      }
      over = (this.#perUser.get(session.userId) ?? 0) >= g.maxConnectionsPerUser;
    }
    if (over) transport.close(CLOSE_CODES.tooMany, "too_many_connections");
    return !over;
  }

  /** Forgets a closed connection in the limit counts. */
  #release(conn: ConnState): void {
    if (!conn.limits) return;
    conn.limits = undefined;
    const user = conn.session.userId;
    this.#guard.detach(user);
    const n = (this.#perUser.get(user) ?? 1) - 1;
    if (n <= 0) this.#perUser.delete(user);
    else this.#perUser.set(user, n);
  }

  /**
   * The abuse limits, checked before a frame does anything: a refused frame is answered
   * (`rate_limited` with `retryAfterMs`, `limit_exceeded` or `overloaded`) and changes nothing.
   */
  #limited(
    conn: ConnState,
    frame: ClientFrame,
  ): { refusal: ErrorFrame; close: boolean; overloaded: boolean } | undefined {
    if (!conn.limits) return undefined;
    const ref = "id" in frame && typeof frame.id === "string" ? frame.id : undefined;
    let refusal: ErrorFrame | undefined;
    let close = false;
    if (conn.pending >= this.#guard.maxPendingFrames && frame.type !== "ping") {
      refusal = errorFrame("overloaded", "too many frames waiting; retry later", ref);
    } else {
      const verdict = this.#guard.check(conn.limits, conn.session.userId, frame, this.#clock.now());
      if (verdict) ({ refusal, close } = verdict);
    }
    if (!refusal) return undefined;
    return { refusal, close, overloaded: refusal.code === "overloaded" };
  }

  /** Appends work to the connection's chain; the chain itself never rejects. */
  #then(conn: ConnState, work: () => MaybePromise<void>): Promise<void> {
    conn.pending++;
    const run = conn.chain.then(work);
    const settle = () => {
      conn.pending--;
    };
    conn.chain = run.then(settle, settle);
    return run;
  }

  #dispatch(conn: ConnState, frame: ClientFrame, position: number): MaybePromise<void> {
    switch (frame.type) {
      case "send":
        return this.#replyWith(conn, this.router.sendNow(conn.sender, frame), position);
      case "receipt":
        return this.#replyWith(conn, this.router.receiptNow(conn.sender, frame), position);
      default:
        return this.#dispatchOther(conn, frame, position);
    }
  }

  #replyWith(
    conn: ConnState,
    reply: MaybePromise<ServerFrame | undefined>,
    position: number,
  ): MaybePromise<void> {
    if (isPromiseLike(reply)) {
      return Promise.resolve(reply).then((r) => this.#reply(conn, r, position));
    }
    this.#reply(conn, reply, position);
  }

  /** Writes a frame's reply; an error reply gets the frame's position on the connection. */
  #reply(conn: ConnState, reply: ServerFrame | undefined, position?: number): void {
    if (!reply) return;
    if (reply.type === "error") {
      const error = position === undefined ? reply : { ...reply, position };
      this.#write(conn, error);
      this.emit("rejected", conn, error);
    } else {
      this.#write(conn, reply);
    }
  }

  #pong(id: string | undefined): ServerFrame {
    const ts = this.#clock.now();
    return id === undefined ? { type: "pong", ts } : { type: "pong", id, ts };
  }

  async #dispatchOther(conn: ConnState, frame: ClientFrame, position: number): Promise<void> {
    let reply: ServerFrame | undefined;
    switch (frame.type) {
      case "typing":
        reply = this.#presence
          ? await this.#presence.typing(conn, frame)
          : await this.router.typing(conn.sender, frame);
        break;
      case "presence.subscribe":
        await this.#presence?.subscribe(conn, frame.users as UserId[]);
        break;
      case "presence.unsubscribe":
        await this.#presence?.unsubscribe(conn, frame.users as UserId[]);
        break;
      case "active": // presence was touched in `receive`; nothing to answer
        break;
    }
    this.#reply(conn, reply, position);
  }

  #fail(conn: ConnState, cause: unknown, frame?: ClientFrame, position?: number): void {
    const err = isRelayError(cause)
      ? cause
      : new RelayError("internal", "unexpected failure while handling a frame", { cause });
    this.emit("error", err);
    const ref = frame && "id" in frame && typeof frame.id === "string" ? frame.id : undefined;
    // The client is told which of its operations failed; store internals go to `error` only.
    const message =
      err.code === "store_unavailable" && frame
        ? `${frame.type} not handled: storage did not answer in time; retry later`
        : err.message;
    const error = errorFrame(err.code, message, ref);
    this.#write(conn, position === undefined ? error : { ...error, position });
  }

  /** The transport closed (cleanly or not): forget the session; its messages stay queued. */
  async closed(
    connection: Connection,
    opts: { clean?: boolean; code?: number; reason?: string } = {},
  ): Promise<void> {
    const conn = this.#conns.get(connection.session.sessionId);
    if (!conn) return;
    this.#conns.delete(conn.session.sessionId);
    conn.closed = true;
    this.#release(conn);
    this.#clock.clear(conn.slowTimer);
    // Let the connect (and any frame in progress) finish first: unregistering before the
    // register lands would leave a ghost session that the queue and presence think is live.
    await conn.chain.catch(() => {});
    try {
      await this.router.disconnect(conn.session.sessionId);
      await this.#presence?.disconnected(conn.session, opts.clean ?? true);
    } catch (cause) {
      this.emit(
        "error",
        new RelayError("store_unavailable", "failed to unregister a session", { cause }),
      );
    }
    this.emit("close", conn, opts.code ?? 1000, opts.reason ?? "");
  }

  /** Sends a frame to one connection of this gateway (used by presence and extensions). */
  sendTo(connection: Connection, frame: ServerFrame): void {
    const conn = this.#conns.get(connection.session.sessionId);
    if (conn) this.#write(conn, frame);
  }

  #deliver(sessions: readonly SessionId[], frame: ServerFrame): void {
    let data: string | undefined;
    for (const id of sessions) {
      const conn = this.#conns.get(id);
      if (!conn || conn.closed) continue;
      data ??= JSON.stringify(frame);
      this.#writeRaw(conn, data);
    }
  }

  #write(conn: ConnState, frame: ServerFrame): void {
    if (!conn.closed) this.#writeRaw(conn, JSON.stringify(frame));
  }

  #writeRaw(conn: ConnState, data: string): void {
    if (conn.transport.bufferedAmount + data.length > this.#maxBuffered) {
      if (this.#slowMs === 0) {
        this.#kick(conn, CLOSE_CODES.slowConsumer, "slow_consumer");
        return;
      }
      if (conn.slowTimer === undefined) this.#watchSlow(conn);
    }
    conn.transport.send(data);
  }

  /**
   * Over the limit: the connection has `slowConsumerMs` to get back under it. Sampled four
   * times over the grace; one sample under the limit ends the overage (the next one gets a
   * whole grace of its own), four over it close the connection.
   */
  #watchSlow(conn: ConnState): void {
    const step = Math.max(1, this.#slowMs / SLOW_SAMPLES);
    let over = 0;
    const sample = () => {
      conn.slowTimer = undefined;
      if (conn.closed || conn.transport.bufferedAmount <= this.#maxBuffered) return;
      if (++over >= SLOW_SAMPLES) this.#kick(conn, CLOSE_CODES.slowConsumer, "slow_consumer");
      else conn.slowTimer = this.#clock.setTimeout(sample, step);
    };
    conn.slowTimer = this.#clock.setTimeout(sample, step);
  }

  #kick(conn: ConnState, code: number, reason: string): void {
    if (conn.closed) return;
    conn.transport.close(code, reason);
    void this.closed(conn, { clean: false, code, reason });
  }

  /** Closes every connection (going away) and detaches from the router. */
  async close(): Promise<void> {
    for (const conn of [...this.#conns.values()]) {
      conn.transport.close(CLOSE_CODES.goingAway, "server shutting down");
      await this.closed(conn, {
        clean: true,
        code: CLOSE_CODES.goingAway,
        reason: "server shutting down",
      });
    }
    this.#detach();
  }
}
