import type { ManualClock } from "../core/clock.js";
import {
  type ClientMessageId,
  type ConversationId,
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type MessageId,
  type NodeId,
  type UserId,
} from "../core/ids.js";
import type { RandomSource } from "../core/random.js";
import type { Connection, Gateway, Transport } from "../gateway/index.js";
import type { ClientFrame, ServerFrame } from "../protocol/index.js";
import { type ResolvedFaults, sampleDelay } from "./faults.js";
import type { TraceBuffer } from "./trace.js";

/** The credentials a simulated client presents; the simulation's gateways trust them. */
export interface SimCredentials {
  readonly user: string;
  readonly device: string;
}

/** A message as the client application saw it, after dedupe by message id. */
export interface ReceivedMessage {
  readonly id: MessageId;
  readonly clientId: ClientMessageId;
  readonly from: UserId;
  readonly fromDevice: DeviceId;
  readonly conversation: ConversationId;
  readonly seq: number;
  /** Virtual time of arrival. */
  readonly at: number;
}

/** Where one of the client's own sends stands. */
export type OutgoingState = "pending" | "sent" | "refused" | "failed";

/** One send of this client, keyed by its client message id. */
export interface OutgoingRecord {
  readonly clientId: ClientMessageId;
  readonly to: UserId;
  readonly text: string;
  state: OutgoingState;
  /** The server's message id once `sent` arrived. */
  id: MessageId | undefined;
  seq: number | undefined;
  /** The router's accept time. */
  ts: number | undefined;
  /** The error code (refused) or failure reason (failed). */
  reason: string | undefined;
  /** How many times the frame went out (1 + resends after reconnects). */
  attempts: number;
}

/** A receipt frame as this client received it, in arrival order. */
export interface ReceiptRecord {
  readonly at: number;
  readonly status: "sent" | "delivered" | "read" | "failed";
  readonly ids: readonly string[];
  /** Who reached the state (delivered/read), and on which device. */
  readonly by?: string | undefined;
  readonly device?: string | undefined;
}

/** A presence frame as this client last saw it, per subject user. */
export interface ObservedPresence {
  readonly status: "online" | "offline";
  readonly lastSeen: number | null;
  readonly at: number;
}

/** Whether the client acks `delivered` by itself, or only when the test says so. */
export type AckMode = "auto" | "manual";

/** What a {@link SimClient} needs from its simulation. */
export interface ClientWorld {
  readonly clock: ManualClock;
  readonly random: RandomSource;
  readonly trace: TraceBuffer;
  /** Faults of client <-> gateway links now. */
  clientFaults(): ResolvedFaults;
  /** The gateway of a node, or `undefined` while the node is down. */
  gateway(node: NodeId): Gateway<SimCredentials> | undefined;
  /** Every node, in a fixed order (failover walks it). */
  nodeIds(): readonly NodeId[];
  /** How long a client waits before reconnecting. */
  reconnectDelay(): number;
  /** Marks network activity and tracks frames in flight (+1 on send, -1 on arrival). */
  flight(delta: 1 | -1): void;
}

interface Conn {
  readonly n: number;
  readonly node: NodeId;
  alive: boolean;
  /** The client saw the connection open. */
  open: boolean;
  server: Connection | undefined;
  lastUp: number;
  lastDown: number;
}

/** Options of a {@link SimClient}. */
export interface SimClientOptions {
  readonly user: UserId;
  readonly device: DeviceId;
  /** The node it prefers. */
  readonly node: NodeId;
  /** @default "auto" */
  readonly ack?: AckMode;
  /** Send a `read` receipt for every new message too. @default false */
  readonly autoRead?: boolean;
  /** Try other nodes when its node is down. @default true */
  readonly failover?: boolean;
}

const RETRYABLE = new Set(["store_unavailable", "internal", "timeout", "overloaded", "closed"]);

/**
 * A simulated client device: connects to a node's gateway through a simulated link, sends
 * messages, acks them (automatically or by hand), dedupes by message id, resends unacked
 * sends with the same client id after every reconnect, and records everything it saw for
 * the invariant checkers.
 * @remarks Frames within one connection are reliable and ordered, as on a WebSocket; a
 * dropped frame is a broken connection, after which the client reconnects (to another node
 * if its own is down and `failover` is on).
 */
export class SimClient {
  /** The user this device belongs to. */
  readonly user: UserId;
  /** This device. */
  readonly device: DeviceId;
  /** `user/device`. */
  readonly key: DeviceKey;
  /** The node it connects to when it can. */
  node: NodeId;
  /** Auto or manual acks. */
  ack: AckMode;
  /** Auto-read on or off. */
  autoRead: boolean;
  /** New messages in arrival order (after dedupe). */
  readonly received: ReceivedMessage[] = [];
  /** Duplicates the dedupe dropped. */
  duplicates = 0;
  /** Its sends, oldest first. */
  readonly outgoing: OutgoingRecord[] = [];
  /** Every receipt frame it got, in arrival order. */
  readonly receipts: ReceiptRecord[] = [];
  /** The last presence it saw of each subject. */
  readonly presence = new Map<UserId, ObservedPresence>();
  /** Error frames it got (code, ref). */
  readonly errors: { readonly code: string; readonly ref: string | undefined }[] = [];
  /** How many connections it opened. */
  connects = 0;
  readonly #world: ClientWorld;
  readonly #failover: boolean;
  readonly #seen = new Set<string>();
  readonly #byClientId = new Map<string, OutgoingRecord>();
  readonly #unacked: MessageId[] = [];
  #ackBatch: string[] = [];
  #readBatch: string[] = [];
  #flushQueued = false;
  #want = false;
  #conn: Conn | undefined;
  #connSeq = 0;
  #sendSeq = 0;
  #reconnectAt = -1;

  constructor(world: ClientWorld, options: SimClientOptions) {
    this.#world = world;
    this.user = options.user;
    this.device = options.device;
    this.key = deviceKey(options.user, options.device);
    this.node = options.node;
    this.ack = options.ack ?? "auto";
    this.autoRead = options.autoRead ?? false;
    this.#failover = options.failover ?? true;
  }

  /** True while the client has an open connection it knows of. */
  get online(): boolean {
    return this.#conn?.open === true;
  }

  /** True while the client wants to be online (it reconnects on its own). */
  get wantsOnline(): boolean {
    return this.#want;
  }

  /** The node of the current connection, if any. */
  get connectedTo(): NodeId | undefined {
    return this.#conn?.open ? this.#conn.node : undefined;
  }

  /** Sends still waiting for their `sent` receipt. */
  get pendingSends(): number {
    let n = 0;
    for (const o of this.outgoing) if (o.state === "pending") n++;
    return n;
  }

  /** Messages received and not acked yet (manual mode). */
  get unacked(): readonly MessageId[] {
    return this.#unacked;
  }

  /** Goes online (to `node`, or its current one). Already online to that node does nothing. */
  connect(node?: string): void {
    if (node !== undefined && node !== this.node) {
      this.node = node as NodeId;
      if (this.#conn) this.#closeClean("switch");
    }
    this.#want = true;
    if (!this.#conn) this.#dial();
  }

  /** Closes the connection cleanly and stays offline until {@link connect}. */
  disconnect(): void {
    this.#want = false;
    this.#reconnectAt = -1;
    if (this.#conn) this.#closeClean("offline");
  }

  /**
   * Sends a text message to a user; returns its client message id. While offline it waits
   * and goes out on the next connection.
   */
  send(to: UserId, text: string): ClientMessageId {
    const clientId =
      `${this.user}.${this.device}.${(++this.#sendSeq).toString(36)}` as ClientMessageId;
    const rec: OutgoingRecord = {
      clientId,
      to,
      text,
      state: "pending",
      id: undefined,
      seq: undefined,
      ts: undefined,
      reason: undefined,
      attempts: 0,
    };
    this.outgoing.push(rec);
    this.#byClientId.set(clientId, rec);
    if (this.#conn?.open) this.#transmitSend(rec);
    return clientId;
  }

  /** Manual mode: sends `delivered` for these ids (default: everything not acked yet). */
  ackNow(ids?: readonly MessageId[]): void {
    const list = ids ?? this.#unacked.splice(0);
    if (ids) {
      const drop = new Set<string>(ids);
      const keep = this.#unacked.filter((i) => !drop.has(i));
      this.#unacked.length = 0;
      this.#unacked.push(...keep);
    }
    for (const id of list) this.#ackBatch.push(id);
    this.#queueFlush();
  }

  /** Sends `read` for these message ids. */
  readNow(ids: readonly MessageId[]): void {
    for (const id of ids) this.#readBatch.push(id);
    this.#queueFlush();
  }

  /** Sends any client frame as is (presence subscriptions, typing, pings, or garbage). */
  sendFrame(frame: ClientFrame | Record<string, unknown>): void {
    const c = this.#conn;
    if (c?.open) this.#up(c, JSON.stringify(frame));
  }

  /** Users whose presence this device subscribed to (restored after every reconnect). */
  readonly subscriptions = new Set<UserId>();

  /** Subscribes to users' presence; the subscription is sent again after each reconnect. */
  subscribePresence(users: readonly string[]): void {
    for (const u of users) this.subscriptions.add(u as UserId);
    const c = this.#conn;
    if (c?.open && users.length > 0)
      this.#up(c, JSON.stringify({ type: "presence.subscribe", users }));
  }

  /** The record of one of its sends. */
  outgoingFor(clientId: ClientMessageId): OutgoingRecord | undefined {
    return this.#byClientId.get(clientId);
  }

  /** Called by the simulation when the node of the current connection crashed. */
  nodeCrashed(node: NodeId): void {
    const c = this.#conn;
    if (!c || c.node !== node) return;
    // The server side is gone without a close; the client notices after a link delay.
    c.server = undefined;
    this.#break(c, "node crashed", false);
  }

  // ---- connection lifecycle ---------------------------------------------------------

  #pickNode(): NodeId | undefined {
    const w = this.#world;
    if (w.gateway(this.node) || !this.#failover) return this.node;
    const all = w.nodeIds();
    const start = all.indexOf(this.node);
    for (let i = 1; i <= all.length; i++) {
      const n = all[(start + i) % all.length]!;
      if (w.gateway(n)) return n;
    }
    return this.node;
  }

  #dial(): void {
    const w = this.#world;
    const node = this.#pickNode()!;
    const c: Conn = {
      n: ++this.#connSeq,
      node,
      alive: true,
      open: false,
      server: undefined,
      lastUp: 0,
      lastDown: 0,
    };
    this.#conn = c;
    const delay = sampleDelay(w.clientFaults().delay, w.random);
    w.flight(1);
    w.clock.setTimeout(() => {
      w.flight(-1);
      if (!c.alive) return;
      const gw = w.gateway(node);
      if (!gw) {
        this.#break(c, "connection refused", false);
        return;
      }
      const transport = this.#transport(c);
      // Not counted in flight: if the node dies meanwhile, this never settles.
      gw.open(transport, { user: this.user, device: this.device }).then(
        (server) => {
          if (!server) return; // refused: the transport's close already reached us
          if (!c.alive) {
            // We gave up on it meanwhile: the server learns the socket is gone.
            void gw.closed(server, { clean: false });
            return;
          }
          c.server = server;
          this.#down(c, undefined);
        },
        () => {},
      );
    }, delay);
  }

  #transport(c: Conn): Transport {
    return {
      send: (data: string) => {
        if (c.alive) this.#down(c, data);
      },
      close: (code: number, reason: string) => {
        if (!c.alive) return;
        this.#world.trace.add(
          this.#world.clock.now(),
          "client",
          `${this.key} closed by server ${code} ${reason}`,
        );
        c.server = undefined;
        this.#break(c, `server closed ${code}`, false);
      },
      bufferedAmount: 0,
    };
  }

  /** Server -> client: FIFO on the connection; `undefined` data is the open notice. */
  #down(c: Conn, data: string | undefined): void {
    const w = this.#world;
    const f = w.clientFaults();
    if (data !== undefined && f.drop > 0 && w.random.next() < f.drop) {
      w.trace.add(w.clock.now(), "link", `${c.node}->${this.key} drop: connection lost`);
      this.#break(c, "link drop", true);
      return;
    }
    const now = w.clock.now();
    const at = Math.max(now + sampleDelay(f.delay, w.random), c.lastDown);
    c.lastDown = at;
    w.flight(1);
    w.clock.setTimeout(() => {
      w.flight(-1);
      if (!c.alive) return;
      if (data === undefined) this.#opened(c);
      else this.#onFrame(c, data);
    }, at - now);
  }

  /** Client -> server: FIFO on the connection. */
  #up(c: Conn, data: string): void {
    const w = this.#world;
    const f = w.clientFaults();
    if (f.drop > 0 && w.random.next() < f.drop) {
      w.trace.add(w.clock.now(), "link", `${this.key}->${c.node} drop: connection lost`);
      this.#break(c, "link drop", true);
      return;
    }
    const now = w.clock.now();
    const at = Math.max(now + sampleDelay(f.delay, w.random), c.lastUp);
    c.lastUp = at;
    w.flight(1);
    w.clock.setTimeout(() => {
      w.flight(-1);
      const server = c.server;
      if (!c.alive || !server) return;
      const gw = w.gateway(c.node);
      if (gw) void gw.receive(server, data);
    }, at - now);
  }

  #opened(c: Conn): void {
    const w = this.#world;
    c.open = true;
    this.connects++;
    w.trace.add(w.clock.now(), "client", `${this.key} open on ${c.node}`);
    if (this.subscriptions.size > 0) {
      this.#up(c, JSON.stringify({ type: "presence.subscribe", users: [...this.subscriptions] }));
    }
    for (const rec of this.outgoing) if (rec.state === "pending") this.#transmitSend(rec);
  }

  /**
   * The connection is gone. `serverNotices`: the gateway learns of it (after a delay) and
   * unregisters the session, as when a TCP connection resets.
   */
  #break(c: Conn, why: string, serverNotices: boolean): void {
    if (!c.alive) return;
    const w = this.#world;
    c.alive = false;
    c.open = false;
    if (this.#conn === c) this.#conn = undefined;
    w.trace.add(w.clock.now(), "client", `${this.key} lost ${c.node} (${why})`);
    const server = c.server;
    c.server = undefined;
    const delay = sampleDelay(w.clientFaults().delay, w.random);
    if (serverNotices && server) {
      w.flight(1);
      w.clock.setTimeout(() => {
        w.flight(-1);
        const gw = w.gateway(c.node);
        if (gw) void gw.closed(server, { clean: false });
      }, delay);
    }
    this.#scheduleReconnect(delay + w.reconnectDelay());
  }

  #closeClean(why: string): void {
    const c = this.#conn;
    if (!c) return;
    const w = this.#world;
    c.alive = false;
    c.open = false;
    this.#conn = undefined;
    w.trace.add(w.clock.now(), "client", `${this.key} close ${c.node} (${why})`);
    const server = c.server;
    c.server = undefined;
    if (server) {
      const delay = Math.max(
        sampleDelay(w.clientFaults().delay, w.random),
        c.lastUp - w.clock.now(),
      );
      w.flight(1);
      w.clock.setTimeout(() => {
        w.flight(-1);
        const gw = w.gateway(c.node);
        if (gw) void gw.closed(server, { clean: true });
      }, delay);
    }
  }

  #scheduleReconnect(ms: number): void {
    if (!this.#want) return;
    const w = this.#world;
    const at = w.clock.now() + ms;
    if (this.#reconnectAt >= w.clock.now()) return;
    this.#reconnectAt = at;
    w.flight(1);
    w.clock.setTimeout(() => {
      w.flight(-1);
      this.#reconnectAt = -1;
      if (this.#want && !this.#conn) this.#dial();
    }, ms);
  }

  // ---- frames -----------------------------------------------------------------------

  #transmitSend(rec: OutgoingRecord): void {
    const c = this.#conn;
    if (!c?.open) return;
    rec.attempts++;
    this.#up(
      c,
      JSON.stringify({ type: "send", id: rec.clientId, to: { user: rec.to }, text: rec.text }),
    );
  }

  #onFrame(_c: Conn, data: string): void {
    const frame = JSON.parse(data) as ServerFrame;
    const now = this.#world.clock.now();
    switch (frame.type) {
      case "message": {
        const id = frame.id as MessageId;
        this.#world.trace.add(
          now,
          "recv",
          `${this.key} ${this.#seen.has(id) ? "dup " : ""}${id} ${frame.from}#${frame.seq}`,
        );
        if (this.#seen.has(id)) {
          this.duplicates++;
        } else {
          this.#seen.add(id);
          this.received.push({
            id,
            clientId: frame.clientId as ClientMessageId,
            from: frame.from as UserId,
            fromDevice: frame.fromDevice as DeviceId,
            conversation: frame.conversation as ConversationId,
            seq: frame.seq,
            at: now,
          });
          if (this.autoRead) this.#readBatch.push(id);
        }
        // Duplicates are acked again: the server redelivered because it missed our ack.
        if (this.ack === "auto") {
          this.#ackBatch.push(id);
          this.#queueFlush();
        } else if (!this.#unacked.includes(id)) {
          this.#unacked.push(id);
        }
        if (this.autoRead) this.#queueFlush();
        break;
      }
      case "receipt": {
        if (frame.status === "sent") {
          const rec = this.#byClientId.get(frame.clientId);
          if (rec) {
            rec.id = frame.id as MessageId;
            rec.seq = frame.seq;
            rec.ts = frame.ts;
            if (rec.state === "pending") rec.state = "sent";
          }
          this.receipts.push({ at: now, status: "sent", ids: [frame.id] });
        } else if (frame.status === "failed") {
          const rec =
            frame.clientId === undefined ? undefined : this.#byClientId.get(frame.clientId);
          if (rec && rec.state !== "refused") {
            rec.state = "failed";
            rec.reason = frame.reason;
            rec.id ??= frame.ids[0] as MessageId;
          }
          this.receipts.push({ at: now, status: "failed", ids: frame.ids });
        } else if ("ids" in frame) {
          this.receipts.push({
            at: now,
            status: frame.status,
            ids: frame.ids,
            by: frame.by,
            device: frame.device,
          });
        }
        break;
      }
      case "presence":
        this.presence.set(frame.user as UserId, {
          status: frame.status,
          lastSeen: frame.lastSeen,
          at: now,
        });
        break;
      case "error": {
        this.errors.push({ code: frame.code, ref: frame.ref });
        const rec = frame.ref === undefined ? undefined : this.#byClientId.get(frame.ref);
        if (rec && rec.state === "pending" && !RETRYABLE.has(frame.code)) {
          rec.state = "refused";
          rec.reason = frame.code;
        }
        break;
      }
      default:
        break;
    }
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      const c = this.#conn;
      if (!c?.open) {
        // Offline: nothing to say; the server redelivers what we never acked.
        this.#ackBatch = [];
        this.#readBatch = [];
        return;
      }
      if (this.#ackBatch.length > 0) {
        const ids = this.#ackBatch;
        this.#ackBatch = [];
        for (let i = 0; i < ids.length; i += 256) {
          this.#up(
            c,
            JSON.stringify({ type: "receipt", status: "delivered", ids: ids.slice(i, i + 256) }),
          );
        }
      }
      if (this.#readBatch.length > 0 && c.alive) {
        const ids = this.#readBatch;
        this.#readBatch = [];
        for (let i = 0; i < ids.length; i += 256) {
          this.#up(
            c,
            JSON.stringify({ type: "receipt", status: "read", ids: ids.slice(i, i + 256) }),
          );
        }
      }
    });
  }
}
