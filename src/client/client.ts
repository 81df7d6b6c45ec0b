import { z } from "zod";
import type { Clock, Timer } from "../core/clock.js";
import { RelayError } from "../core/errors.js";
import { TypedEmitter } from "../core/events.js";
import { parseOptions } from "../core/options.js";
import { type IdSource, type RandomSource, randomIds } from "../core/random.js";
import { systemClock, systemRandom } from "../core/system.js";
import {
  type ClientFrame,
  type ErrorFrame,
  FrameParser,
  type MessageFrame,
  type ProtocolLimits,
  type RawFrame,
  type SendFrame,
  type ServerFrame,
  type ServerFrameOf,
  type ServerReceiptFrame,
} from "../protocol/index.js";
import { backoffDelay, DEFAULT_RECONNECT, type ReconnectPolicy } from "./backoff.js";
import { advanceStatus, type OutgoingStatus } from "./outgoing-status.js";
import { RecentIds } from "./recent-ids.js";
import { SOCKET_OPEN, type WebSocketConstructor, type WebSocketLike } from "./websocket.js";

/** Who a message goes to: a user id, or `{ user }` / `{ group }`. */
export type ClientTarget = string | { readonly user: string } | { readonly group: string };

/** Where the client's connection stands. */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A message this client sent, as the `status` event and {@link RelayClient.outgoing} report it. */
export interface OutgoingMessage {
  /** The client message id: the idempotency key, the same on every resend. */
  readonly clientId: string;
  readonly to: { readonly user: string } | { readonly group: string };
  readonly text: string;
  readonly status: OutgoingStatus;
  /** The server's message id, once the `sent` receipt arrived. */
  readonly id: string | undefined;
  readonly conversation: string | undefined;
  /** Position in the conversation, once sent. */
  readonly seq: number | undefined;
  /** When the server accepted it (server clock). */
  readonly ts: number | undefined;
  /** Why it failed (an error code or the server's reason), when `status` is `failed`. */
  readonly reason: string | undefined;
}

/** What the client knows of a user's presence. */
export interface PresenceInfo {
  readonly user: string;
  readonly status: "online" | "offline";
  /** Last activity (server clock), or null when the user's privacy hides it. */
  readonly lastSeen: number | null;
}

/** Why the connection went away and whether the client will try again. */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
  /** Milliseconds until the next attempt, or `undefined` when the client gave up or was closed. */
  readonly reconnectIn: number | undefined;
}

/** Events of a {@link RelayClient}. */
export interface RelayClientEvents {
  /** The socket opened; pending sends were resent and presence subscriptions restored. */
  open: () => void;
  /** The socket went away. */
  close: (info: CloseInfo) => void;
  /** A new message (duplicates are dropped). `own`: a copy of a message sent from another device of ours. */
  message: (message: MessageFrame, info: { readonly own: boolean }) => void;
  /** A sent message moved to a new status (✓, ✓✓, read, failed). */
  status: (message: OutgoingMessage, previous: OutgoingStatus) => void;
  /** Every receipt frame as received (read sync from our other devices included). */
  receipt: (frame: ServerReceiptFrame) => void;
  /** A user's presence changed. */
  presence: (presence: PresenceInfo) => void;
  /** A peer is typing (or stopped). */
  typing: (frame: ServerFrameOf<"typing">) => void;
  /** The server refused a frame of ours. */
  rejected: (frame: ErrorFrame) => void;
  /** The server sent something the parser refused, or a socket could not be created. */
  error: (error: RelayError) => void;
}

/** Options of {@link RelayClient}. */
export interface RelayClientOptions {
  /** The server's WebSocket URL, e.g. `ws://localhost:8080/`. */
  readonly url: string;
  /** The credential the server's `authenticate` hook checks. */
  readonly token: string;
  /** Our own user id: tells copies of our messages and our own read syncs apart. */
  readonly userId: string;
  /** The WebSocket class. @default globalThis.WebSocket */
  readonly WebSocket?: WebSocketConstructor;
  /** The subprotocol list that carries the token. @default {@link tokenProtocols} */
  readonly protocols?: (token: string) => string[];
  /** Reconnection backoff, or `false` to stay closed after a drop. */
  readonly reconnect?: Partial<ReconnectPolicy> | false;
  /** Give up on a connection attempt after this many ms. @default 10000 */
  readonly connectTimeout?: number;
  /** Resend a send that got no `sent` receipt within this many ms (same client id). @default 10000 */
  readonly ackTimeout?: number;
  /** Send an application ping this often while idle-open; 0 disables. @default 25000 */
  readonly pingInterval?: number;
  /** Drop the connection when nothing arrives this long after a ping. @default 10000 */
  readonly pongTimeout?: number;
  /**
   * {@link RelayClient.active} writes at most one `active` frame this often (call it on
   * every focus and input event; keep it under the server's presence threshold). @default 5000
   */
  readonly activeInterval?: number;
  /** Acknowledge every new message with a `delivered` receipt. @default true */
  readonly autoDelivered?: boolean;
  /** How many incoming message ids to remember for dedupe. @default 10000 */
  readonly dedupeCapacity?: number;
  /** Parser limits for incoming frames. */
  readonly limits?: Partial<ProtocolLimits>;
  readonly clock?: Clock;
  /** Client message ids. @default 16 random base-36 characters from `random` */
  readonly ids?: IdSource;
  /** Randomness for the backoff jitter (and the default ids). @default systemRandom */
  readonly random?: RandomSource;
}

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([4401]);
/** Error codes after which a resend may succeed: the send stays pending. */
const TRANSIENT_ERRORS: ReadonlySet<string> = new Set([
  "rate_limited",
  "quota_exceeded",
  "recipient_queue_full",
  "overloaded",
  "store_unavailable",
  "timeout",
  "internal",
]);
const EARLY_CAPACITY = 1024;
/** Our own close code for a connection we dropped (timeout); never sent by a server. */
const CLIENT_DROP = 4000;

const ms = z.number().int().min(0);
const optionsSchema = z.object({
  url: z.string().min(1),
  token: z.string().min(1),
  userId: z.string().min(1),
  WebSocket: z.custom<WebSocketConstructor>((v) => typeof v === "function", "a WebSocket class"),
  protocols: z.custom<(token: string) => string[]>((v) => typeof v === "function").optional(),
  reconnect: z
    .union([
      z.literal(false),
      z.object({
        initialDelay: ms.min(1).optional(),
        maxDelay: ms.min(1).optional(),
        factor: z.number().min(1).optional(),
        jitter: z.number().min(0).max(1).optional(),
      }),
    ])
    .optional(),
  connectTimeout: ms.min(1).default(10_000),
  ackTimeout: ms.min(1).default(10_000),
  pingInterval: ms.default(25_000),
  pongTimeout: ms.min(1).default(10_000),
  activeInterval: ms.default(5_000),
  autoDelivered: z.boolean().default(true),
  dedupeCapacity: z.number().int().min(1).default(10_000),
});

type OutgoingRecord = { -readonly [K in keyof OutgoingMessage]: OutgoingMessage[K] };

interface Pending {
  record: OutgoingRecord;
  frame: SendFrame;
  /** Clock time of the last write, or undefined when never written on this connection. */
  writtenAt: number | undefined;
}

/**
 * The relaykit client SDK for browsers and Node: connects with a token, reconnects with
 * backoff, resends unacknowledged messages with the same client id after a reconnect (the
 * server dedupes, so delivery is effectively-once), drops duplicate incoming messages,
 * acknowledges them as delivered, and tracks ✓ / ✓✓ / read per sent message.
 * @example
 * const client = new RelayClient({ url: "ws://localhost:8080/", token, userId: "alice" });
 * client.on("message", (m) => console.log(m.from, m.text));
 * client.connect();
 * client.send("bob", "hi");
 */
export class RelayClient extends TypedEmitter<RelayClientEvents> {
  /** Our own user id. */
  readonly userId: string;
  readonly #url: string;
  readonly #token: string;
  readonly #WS: WebSocketConstructor;
  readonly #protocols: (token: string) => string[];
  readonly #reconnect: ReconnectPolicy | false;
  readonly #connectTimeout: number;
  readonly #ackTimeout: number;
  readonly #pingInterval: number;
  readonly #pongTimeout: number;
  readonly #activeInterval: number;
  /** Clock time of the last `active` frame written, or undefined when none on this connection. */
  #activeAt: number | undefined;
  readonly #autoDelivered: boolean;
  readonly #parser: FrameParser;
  readonly #clock: Clock;
  readonly #ids: IdSource;
  readonly #random: RandomSource;

  #state: ClientState = "idle";
  #socket: WebSocketLike | undefined;
  #attempt = 0;
  #connectTimer: Timer | undefined;
  #reconnectTimer: Timer | undefined;
  #ackTimer: Timer | undefined;
  #pingTimer: Timer | undefined;
  #pongTimer: Timer | undefined;
  #lastHeard = 0;

  readonly #pending = new Map<string, Pending>();
  readonly #sent = new Map<string, OutgoingRecord>();
  readonly #byMessageId = new Map<string, string>();
  readonly #early = new Map<string, OutgoingStatus>();
  readonly #peerRead = new Map<string, number>();
  readonly #seen: RecentIds;
  readonly #lastSeq = new Map<string, number>();
  readonly #readSent = new Map<string, number>();
  readonly #unsentReads = new Map<string, number>();
  #unsentReadIds: string[] = [];
  #acks: string[] = [];
  #ackFlushQueued = false;
  readonly #subscriptions = new Set<string>();
  readonly #presence = new Map<string, PresenceInfo>();

  /** @throws RelayError `invalid_option` */
  constructor(options: RelayClientOptions) {
    super();
    const WS =
      options?.WebSocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ??
      undefined;
    const o = parseOptions(optionsSchema, { ...options, WebSocket: WS }, "RelayClient");
    this.userId = o.userId;
    this.#url = o.url;
    this.#token = o.token;
    this.#WS = o.WebSocket;
    this.#protocols = o.protocols ?? tokenProtocols;
    this.#reconnect =
      o.reconnect === false
        ? false
        : ({ ...DEFAULT_RECONNECT, ...stripUndefined(o.reconnect ?? {}) } as ReconnectPolicy);
    this.#connectTimeout = o.connectTimeout;
    this.#ackTimeout = o.ackTimeout;
    this.#pingInterval = o.pingInterval;
    this.#activeInterval = o.activeInterval;
    this.#pongTimeout = o.pongTimeout;
    this.#autoDelivered = o.autoDelivered;
    this.#seen = new RecentIds(o.dedupeCapacity);
    this.#parser = new FrameParser(options.limits);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    // Not systemIds(): that one needs node:crypto at run time, which browsers lack.
    this.#ids = options.ids ?? randomIds(this.#random, 16);
  }

  /** Where the connection stands. */
  get state(): ClientState {
    return this.#state;
  }

  /** Starts connecting (and reconnecting after drops). Idempotent while not closed. */
  connect(): void {
    if (this.#state !== "idle" && this.#state !== "closed") return;
    this.#attempt = 0;
    this.#openSocket();
  }

  /** Closes the connection for good; unsent messages stay listed in {@link pendingMessages}. */
  close(): void {
    if (this.#state === "closed" || this.#state === "idle") return;
    const socket = this.#socket;
    this.#teardown();
    if (socket) closeQuietly(socket, 1000, "client closed");
    this.#state = "closed";
    this.emit("close", { code: 1000, reason: "client closed", reconnectIn: undefined });
  }

  /**
   * Sends a text message. It is written now if the socket is open, otherwise after the next
   * (re)connect, and resent with the same client id until the server's `sent` receipt comes.
   * @throws RelayError `invalid_field` when the frame would be refused (bad id, text too long).
   */
  send(
    to: ClientTarget,
    text: string,
    extra: Pick<SendFrame, "attachments" | "priority"> = {},
  ): OutgoingMessage {
    const target = typeof to === "string" ? { user: to } : to;
    const clientId = this.#ids.next("c");
    const raw: Record<string, unknown> = { type: "send", id: clientId, to: target, text };
    if (extra.attachments !== undefined) raw.attachments = extra.attachments;
    if (extra.priority !== undefined) raw.priority = extra.priority;
    const parsed = this.#parser.parseClient(raw);
    if (!parsed.ok) {
      throw new RelayError("invalid_field", parsed.error.message, {
        path: parsed.error.path ?? "",
      });
    }
    const record: OutgoingRecord = {
      clientId,
      to: target,
      text,
      status: "pending",
      id: undefined,
      conversation: undefined,
      seq: undefined,
      ts: undefined,
      reason: undefined,
    };
    const pending: Pending = { record, frame: parsed.frame as SendFrame, writtenAt: undefined };
    this.#pending.set(clientId, pending);
    if (this.#isOpen()) this.#writeSend(pending);
    return { ...record };
  }

  /**
   * Marks messages read: everything from the peer up to `upTo` in a conversation (a
   * watermark; `upTo` defaults to the last sequence number received there), or a list of
   * message ids. Sent now, or after the next (re)connect.
   */
  markRead(conversation: string, upTo?: number): void;
  markRead(ids: readonly string[]): void;
  markRead(what: string | readonly string[], upTo?: number): void {
    if (typeof what !== "string") {
      this.#unsentReadIds.push(...what);
      if (this.#isOpen()) this.#flushReads();
      return;
    }
    const mark = upTo ?? this.#lastSeq.get(what);
    if (mark === undefined || mark < 1) return;
    if ((this.#readSent.get(what) ?? 0) >= mark) return;
    this.#unsentReads.set(what, Math.max(mark, this.#unsentReads.get(what) ?? 0));
    if (this.#isOpen()) this.#flushReads();
  }

  /** Tells a peer we are typing (volatile: dropped when not connected). */
  typing(to: ClientTarget, state: "composing" | "paused" = "composing"): void {
    const target = typeof to === "string" ? { user: to } : to;
    if (this.#isOpen()) this.#write({ type: "typing", to: target, state });
  }

  /**
   * Tells the server the user is here (the app got focus, the user typed or scrolled): the
   * only thing besides sending, typing and reading that keeps the user online and moves
   * their last seen. Keepalive pings never do. Call it on every such event: it writes at
   * most one frame per `activeInterval`; dropped when not connected.
   */
  active(): void {
    if (!this.#isOpen()) return;
    const now = this.#clock.now();
    if (this.#activeAt !== undefined && now - this.#activeAt < this.#activeInterval) return;
    this.#activeAt = now;
    this.#write({ type: "active" });
  }

  /** Subscribes to users' presence; kept across reconnects. */
  subscribePresence(users: readonly string[]): void {
    const added = users.filter((u) => !this.#subscriptions.has(u));
    for (const u of added) this.#subscriptions.add(u);
    if (added.length > 0 && this.#isOpen()) this.#writeUsers("presence.subscribe", added);
  }

  /** Stops following users' presence. */
  unsubscribePresence(users: readonly string[]): void {
    const removed = users.filter((u) => this.#subscriptions.delete(u));
    for (const u of removed) this.#presence.delete(u);
    if (removed.length > 0 && this.#isOpen()) this.#writeUsers("presence.unsubscribe", removed);
  }

  /** The last known presence of a user we follow. */
  presenceOf(user: string): PresenceInfo | undefined {
    return this.#presence.get(user);
  }

  /** A sent message by client id, while it is tracked (until read or failed). */
  outgoing(clientId: string): OutgoingMessage | undefined {
    const r = this.#pending.get(clientId)?.record ?? this.#sent.get(clientId);
    return r ? { ...r } : undefined;
  }

  /** Messages not yet accepted by the server, in send order. */
  pendingMessages(): OutgoingMessage[] {
    return [...this.#pending.values()].map((p) => ({ ...p.record }));
  }

  // ---- connection ----

  #isOpen(): boolean {
    return this.#state === "open" && this.#socket?.readyState === SOCKET_OPEN;
  }

  #openSocket(): void {
    this.#state = this.#attempt === 0 ? "connecting" : "reconnecting";
    let socket: WebSocketLike;
    try {
      socket = new this.#WS(this.#url, this.#protocols(this.#token));
    } catch (cause) {
      this.emit(
        "error",
        new RelayError("invalid_option", "could not create the WebSocket", { cause }),
      );
      this.#lost(undefined, CLIENT_DROP, "socket construction failed");
      return;
    }
    this.#socket = socket;
    this.#connectTimer = this.#clock.setTimeout(
      () => this.#lost(socket, CLIENT_DROP, "connect timeout"),
      this.#connectTimeout,
    );
    socket.onopen = () => {
      if (this.#socket === socket) this.#onOpen();
    };
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#onData(event.data);
    };
    socket.onclose = (event) => {
      if (this.#socket === socket) this.#lost(socket, event.code, event.reason);
    };
    socket.onerror = () => {
      // A close event follows every error; that is where the client reacts.
    };
  }

  #onOpen(): void {
    this.#clock.clear(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#state = "open";
    this.#attempt = 0;
    this.#activeAt = undefined;
    this.#lastHeard = this.#clock.now();
    if (this.#subscriptions.size > 0) {
      this.#writeUsers("presence.subscribe", [...this.#subscriptions]);
    }
    for (const p of this.#pending.values()) {
      if (p.record.status === "pending") this.#writeSend(p);
    }
    this.#flushReads();
    this.#schedulePing();
    this.emit("open");
  }

  /** The socket is gone (closed, timed out or never made): clean up and maybe retry. */
  #lost(socket: WebSocketLike | undefined, code: number, reason: string): void {
    this.#teardown();
    if (socket) closeQuietly(socket, CLIENT_DROP, reason);
    if (this.#reconnect === false || FATAL_CLOSE_CODES.has(code)) {
      this.#state = "closed";
      this.emit("close", { code, reason, reconnectIn: undefined });
      return;
    }
    const delay = backoffDelay(this.#attempt++, this.#reconnect, this.#random);
    this.#state = "reconnecting";
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#openSocket();
    }, delay);
    this.emit("close", { code, reason, reconnectIn: delay });
  }

  /** Detaches the current socket and stops every timer. */
  #teardown(): void {
    const socket = this.#socket;
    if (socket) {
      socket.onopen = null;
      socket.onmessage = null;
      socket.onclose = null;
      socket.onerror = null;
    }
    this.#socket = undefined;
    for (const t of [
      this.#connectTimer,
      this.#reconnectTimer,
      this.#ackTimer,
      this.#pingTimer,
      this.#pongTimer,
    ]) {
      this.#clock.clear(t);
    }
    this.#connectTimer = this.#reconnectTimer = this.#ackTimer = undefined;
    this.#pingTimer = this.#pongTimer = undefined;
    for (const p of this.#pending.values()) p.writtenAt = undefined;
  }

  /** Pings after `delay` ms unless something arrives meanwhile; a ping unanswered for `pongTimeout` drops the connection. */
  #schedulePing(delay = this.#pingInterval): void {
    if (this.#pingInterval === 0) return;
    this.#clock.clear(this.#pingTimer);
    this.#pingTimer = this.#clock.setTimeout(() => {
      this.#pingTimer = undefined;
      if (!this.#isOpen()) return;
      const idle = this.#clock.now() - this.#lastHeard;
      if (idle < this.#pingInterval) {
        this.#schedulePing(this.#pingInterval - idle);
        return;
      }
      this.#write({ type: "ping", id: this.#ids.next("p") });
      const socket = this.#socket;
      this.#pongTimer ??= this.#clock.setTimeout(
        () => this.#lost(socket, CLIENT_DROP, "ping timeout"),
        this.#pongTimeout,
      );
      this.#schedulePing();
    }, delay);
  }

  // ---- writing ----

  #write(frame: ClientFrame): void {
    this.#socket?.send(JSON.stringify(frame));
  }

  #writeSend(p: Pending): void {
    this.#write(p.frame);
    p.writtenAt = this.#clock.now();
    this.#ackTimer ??= this.#clock.setTimeout(() => this.#checkAcks(), this.#ackTimeout);
  }

  /** Resends every send whose `sent` receipt is overdue, then waits for the next deadline. */
  #checkAcks(): void {
    this.#ackTimer = undefined;
    if (!this.#isOpen()) return;
    const now = this.#clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.#pending.values()) {
      if (p.writtenAt === undefined) continue;
      if (now - p.writtenAt >= this.#ackTimeout) {
        this.#write(p.frame);
        p.writtenAt = now;
      }
      next = Math.min(next, p.writtenAt + this.#ackTimeout);
    }
    if (next !== Number.POSITIVE_INFINITY) {
      this.#ackTimer = this.#clock.setTimeout(() => this.#checkAcks(), Math.max(1, next - now));
    }
  }

  #writeUsers(type: "presence.subscribe" | "presence.unsubscribe", users: readonly string[]): void {
    const max = this.#parser.limits.maxUsersPerSubscribe;
    for (let i = 0; i < users.length; i += max) {
      this.#write({ type, users: users.slice(i, i + max) });
    }
  }

  #writeReceipt(status: "delivered" | "read", ids: readonly string[]): void {
    const max = this.#parser.limits.maxIdsPerReceipt;
    for (let i = 0; i < ids.length; i += max) {
      this.#write({ type: "receipt", status, ids: ids.slice(i, i + max) });
    }
  }

  #flushReads(): void {
    // A read names messages this device has: its pending `delivered` acks go first (the
    // server clamps a read watermark to what a device of ours acked).
    if (this.#acks.length > 0 && this.#isOpen()) {
      const ids = this.#acks;
      this.#acks = [];
      this.#writeReceipt("delivered", ids);
    }
    for (const [conversation, upTo] of this.#unsentReads) {
      if ((this.#readSent.get(conversation) ?? 0) < upTo) {
        this.#write({ type: "receipt", status: "read", conversation, upTo });
        this.#readSent.set(conversation, upTo);
      }
    }
    this.#unsentReads.clear();
    if (this.#unsentReadIds.length > 0) {
      this.#writeReceipt("read", this.#unsentReadIds);
      this.#unsentReadIds = [];
    }
  }

  /** Delivered acks of one turn go out as one frame. Unsent acks are not kept: the server redelivers and we ack again. */
  #queueAck(id: string): void {
    this.#acks.push(id);
    if (this.#ackFlushQueued) return;
    this.#ackFlushQueued = true;
    queueMicrotask(() => {
      this.#ackFlushQueued = false;
      const ids = this.#acks;
      this.#acks = [];
      if (this.#isOpen() && ids.length > 0) this.#writeReceipt("delivered", ids);
    });
  }

  // ---- reading ----

  #onData(data: unknown): void {
    // Anything from the server proves the connection alive.
    this.#lastHeard = this.#clock.now();
    if (this.#pongTimer !== undefined) {
      this.#clock.clear(this.#pongTimer);
      this.#pongTimer = undefined;
    }
    const parsed = this.#parser.parseServer(data as RawFrame);
    if (!parsed.ok) {
      this.emit("error", parsed.error);
      return;
    }
    this.#handle(parsed.frame);
  }

  #handle(frame: ServerFrame): void {
    switch (frame.type) {
      case "message":
        this.#onMessage(frame);
        break;
      case "receipt":
        this.#onReceipt(frame);
        this.emit("receipt", frame);
        break;
      case "presence": {
        const info: PresenceInfo = {
          user: frame.user,
          status: frame.status,
          lastSeen: frame.lastSeen,
        };
        this.#presence.set(frame.user, info);
        this.emit("presence", info);
        break;
      }
      case "typing":
        this.emit("typing", frame);
        break;
      case "error":
        this.#onError(frame);
        break;
      case "pong":
        break;
    }
  }

  #onMessage(frame: MessageFrame): void {
    const fresh = this.#seen.add(frame.id);
    // A duplicate means our earlier ack was lost: ack again, but show it only once.
    if (this.#autoDelivered) this.#queueAck(frame.id);
    if (!fresh) return;
    const own = frame.from === this.userId;
    if (!own && frame.seq > (this.#lastSeq.get(frame.conversation) ?? 0)) {
      this.#lastSeq.set(frame.conversation, frame.seq);
    }
    this.emit("message", frame, { own });
  }

  #onReceipt(frame: ServerReceiptFrame): void {
    if (frame.status === "sent") {
      const p = this.#pending.get(frame.clientId);
      if (!p) return;
      this.#pending.delete(frame.clientId);
      const r = p.record;
      r.id = frame.id;
      r.conversation = frame.conversation;
      r.seq = frame.seq;
      r.ts = frame.ts;
      this.#sent.set(r.clientId, r);
      this.#byMessageId.set(frame.id, r.clientId);
      this.#advance(r, "sent");
      const early = this.#early.get(frame.id);
      if (early !== undefined) {
        this.#early.delete(frame.id);
        this.#advance(r, early);
      }
      if ((this.#peerRead.get(frame.conversation) ?? 0) >= frame.seq) this.#advance(r, "read");
      return;
    }
    if (frame.status === "failed") {
      const p = frame.clientId === undefined ? undefined : this.#pending.get(frame.clientId);
      if (p) {
        this.#pending.delete(p.record.clientId);
        this.#advance(p.record, "failed", frame.reason);
      }
      for (const id of frame.ids) this.#applyById(id, "failed", frame.reason);
      return;
    }
    // delivered / read: by us means a read sync from our other device, about incoming messages.
    if (frame.by === this.userId) return;
    if ("ids" in frame) {
      for (const id of frame.ids) this.#applyById(id, frame.status);
      return;
    }
    const c = frame.conversation;
    if (frame.upTo > (this.#peerRead.get(c) ?? 0)) this.#peerRead.set(c, frame.upTo);
    for (const r of [...this.#sent.values()]) {
      if (r.conversation === c && r.seq !== undefined && r.seq <= frame.upTo)
        this.#advance(r, "read");
    }
  }

  #applyById(id: string, status: OutgoingStatus, reason?: string): void {
    const clientId = this.#byMessageId.get(id);
    const r = clientId === undefined ? undefined : this.#sent.get(clientId);
    if (r) {
      this.#advance(r, status, reason);
      return;
    }
    // A receipt can overtake our own `sent` receipt after a resend; keep it for a while.
    if (status === "failed") return;
    this.#early.set(id, advanceStatus(this.#early.get(id) ?? "sent", status));
    if (this.#early.size > EARLY_CAPACITY) {
      const oldest = this.#early.keys().next().value;
      if (oldest !== undefined) this.#early.delete(oldest);
    }
  }

  #advance(r: OutgoingRecord, event: OutgoingStatus, reason?: string): void {
    const previous = r.status;
    const next = advanceStatus(previous, event);
    if (next === previous) return;
    r.status = next;
    if (next === "failed") r.reason = reason ?? "failed";
    if (next === "read" || next === "failed") {
      // Terminal for the UI: stop tracking.
      this.#sent.delete(r.clientId);
      if (r.id !== undefined) this.#byMessageId.delete(r.id);
    }
    this.emit("status", { ...r }, previous);
  }

  #onError(frame: ErrorFrame): void {
    const p = frame.ref === undefined ? undefined : this.#pending.get(frame.ref);
    if (p && !TRANSIENT_ERRORS.has(frame.code)) {
      // Refused for good (unknown recipient, forbidden...): resending cannot help.
      this.#pending.delete(p.record.clientId);
      this.#advance(p.record, "failed", frame.code);
    }
    this.emit("rejected", frame);
  }
}

/**
 * The default subprotocol list: `["relaykit.v1", "token.<percent-encoded token>"]`, what
 * `relaykit/ws` reads. Percent-encoding keeps any token a valid subprotocol name (`:` and `/`
 * are not); it mirrors `tokenSubprotocols` there without importing the server adapter.
 */
export function tokenProtocols(token: string): string[] {
  const encoded = encodeURIComponent(token).replace(
    /[()]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return ["relaykit.v1", `token.${encoded}`];
}

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    if (socket.readyState < 2) socket.close(code, reason.slice(0, 120));
  } catch {
    // Already closing or closed: nothing to do.
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o))
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
