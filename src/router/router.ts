import type { Clock } from "../core/clock.js";
import { RelayError } from "../core/errors.js";
import { TypedEmitter } from "../core/events.js";
import {
  type ClientMessageId,
  type ConversationId,
  type DeviceId,
  type DeviceKey,
  deviceKey,
  directConversation,
  type MessageId,
  type NodeId,
  type SessionId,
  splitDeviceKey,
  type UserId,
} from "../core/ids.js";
import type { IdSource } from "../core/random.js";
import { systemClock, systemIds } from "../core/system.js";
import type { Envelope, Session } from "../core/types.js";
import type {
  ClientFrameOf,
  ClientReceiptFrame,
  ErrorFrame,
  MessageFrame,
  SendFrame,
  ServerFrame,
  ServerReceiptFrame,
} from "../protocol/schemas.js";
import { type DeviceRegistry, MemoryDeviceRegistry } from "./device-registry.js";
import { MemoryMessageStore, type MessageStore } from "./message-store.js";
import { type BusPacket, MemoryNodeBus, type NodeBus } from "./node-bus.js";
import {
  type FailReason,
  MemoryOutbox,
  type Outbox,
  type OutboxFactory,
  type SentInfo,
} from "./outbox.js";
import { MemorySequenceStore, type SequenceStore } from "./sequence-store.js";
import { MemorySessionDirectory, type SessionDirectory } from "./session-directory.js";

/** The authenticated origin of a frame: never a field the client wrote. */
export interface Sender {
  readonly userId: UserId;
  readonly deviceId: DeviceId;
  readonly sessionId: SessionId;
}

/** What a `beforeSend` hook may answer to refuse a message. */
export interface Refusal {
  readonly code: "forbidden_sender" | "rate_limited" | "recipient_unknown" | "invalid_field";
  readonly message: string;
}

/** Application hooks on the routing path. */
export interface RouterHooks {
  /**
   * Runs before a message is accepted (spam filters, blocks, rate limits). Return a
   * {@link Refusal} to refuse it with an error frame; the message is then never stored.
   */
  beforeSend?(envelope: Envelope, sender: Sender): Refusal | undefined | Promise<Refusal | undefined>;
}

/** Where a node's router hands frames for its local sessions (the gateway). */
export type LocalSink = (sessions: readonly SessionId[], frame: ServerFrame) => void;

/** Options of {@link Router}. Every port defaults to its in-memory implementation. */
export interface RouterOptions {
  /** This node's id. @default "node-1" */
  readonly nodeId?: NodeId;
  readonly directory?: SessionDirectory;
  readonly devices?: DeviceRegistry;
  readonly bus?: NodeBus;
  readonly sequences?: SequenceStore;
  readonly messages?: MessageStore;
  /** Builds the outbox around the router's hooks. @default a {@link MemoryOutbox} */
  readonly outbox?: OutboxFactory;
  readonly clock?: Clock;
  readonly ids?: IdSource;
  readonly hooks?: RouterHooks;
}

/** Events a {@link Router} emits, for observers (metrics, tests, the simulation kit). */
export interface RouterEvents {
  /** A message was accepted and got its `sent` tick. */
  accepted: (envelope: Envelope, recipients: readonly DeviceKey[]) => void;
  /** A delivery was given up and the sender told. */
  failed: (envelope: Envelope, device: DeviceKey, reason: FailReason) => void;
  /** A routing step failed on infrastructure (store or bus); the outbox will retry. */
  error: (error: RelayError) => void;
}

/**
 * The router: accepts messages from authenticated senders, gives each a per-conversation
 * sequence number, stores it in the outbox for every recipient device (and the sender's
 * other devices), and pushes it towards the nodes holding those devices, one packet per
 * node. Receipts from recipients are routed back to every device of the sender.
 */
export class Router extends TypedEmitter<RouterEvents> {
  /** This node's id. */
  readonly nodeId: NodeId;
  /** The session directory in use. */
  readonly directory: SessionDirectory;
  /** The device registry in use. */
  readonly devices: DeviceRegistry;
  /** The node bus in use. */
  readonly bus: NodeBus;
  /** The message store in use. */
  readonly messages: MessageStore;
  /** The outbox in use. */
  readonly outbox: Outbox;
  readonly #sequences: SequenceStore;
  readonly #clock: Clock;
  readonly #ids: IdSource;
  readonly #hooks: RouterHooks;
  readonly #inflight = new Map<string, Promise<ServerFrame>>();
  readonly #sinks = new Set<LocalSink>();
  #transmits: { device: DeviceKey; envelope: Envelope }[] = [];
  #flushScheduled = false;
  #unsubscribe: (() => Promise<void>) | undefined;
  #started: Promise<void> | undefined;

  constructor(options: RouterOptions = {}) {
    super();
    this.nodeId = options.nodeId ?? ("node-1" as NodeId);
    this.directory = options.directory ?? new MemorySessionDirectory();
    this.devices = options.devices ?? new MemoryDeviceRegistry();
    this.bus = options.bus ?? new MemoryNodeBus();
    this.messages = options.messages ?? new MemoryMessageStore();
    this.#sequences = options.sequences ?? new MemorySequenceStore();
    this.#clock = options.clock ?? systemClock;
    this.#ids = options.ids ?? systemIds();
    this.#hooks = options.hooks ?? {};
    const hooks = {
      transmit: (device: DeviceKey, envelope: Envelope) => this.#transmit(device, envelope),
      onFailed: (envelope: Envelope, device: DeviceKey, reason: FailReason) =>
        this.#onFailed(envelope, device, reason),
    };
    this.outbox = options.outbox ? options.outbox(hooks) : new MemoryOutbox(hooks);
  }

  /** Subscribes this node to the bus. Idempotent; the gateway calls it. */
  start(): Promise<void> {
    this.#started ??= this.bus
      .subscribe(this.nodeId, (packet) => this.#onPacket(packet))
      .then((unsubscribe) => {
        this.#unsubscribe = unsubscribe;
      });
    return this.#started;
  }

  /** Registers where this node's frames for local sessions go; returns a function that removes it. */
  attach(sink: LocalSink): () => void {
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }

  /** A device connected here: record the session, link the device, flush what waits for it. */
  async connect(session: Session): Promise<void> {
    await this.start();
    await this.devices.link(session.userId, session.deviceId);
    await this.directory.register(session);
    await this.outbox.deviceConnected(deviceKey(session.userId, session.deviceId));
  }

  /** A device disconnected: forget the session; its messages wait in the outbox. */
  async disconnect(sessionId: SessionId): Promise<Session | undefined> {
    const session = await this.directory.unregister(sessionId);
    if (session) {
      const others = await this.directory.lookup(session.userId);
      if (!others.some((s) => s.deviceId === session.deviceId)) {
        await this.outbox.deviceDisconnected(deviceKey(session.userId, session.deviceId));
      }
    }
    return session;
  }

  /** Links a device to a user before it ever connects, so messages wait for it. */
  linkDevice(userId: UserId, deviceId: DeviceId): Promise<void> {
    return this.devices.link(userId, deviceId);
  }

  /**
   * Accepts a `send` frame from an authenticated sender. Resolves to the `sent` receipt, or
   * to an error frame; never rejects for bad input. A retried send with the same client id
   * gets the original receipt and is not delivered twice.
   */
  send(sender: Sender, frame: SendFrame): Promise<ServerFrame> {
    if (frame.from !== undefined && frame.from !== sender.userId) {
      return Promise.resolve(
        errorFrame("forbidden_sender", "`from` must be the authenticated user", frame.id, "from"),
      );
    }
    const key = `${sender.userId}\u0000${frame.id}`;
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = this.#accept(sender, frame).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  async #accept(sender: Sender, frame: SendFrame): Promise<ServerFrame> {
    const clientId = frame.id as ClientMessageId;
    let conversation: ConversationId;
    let recipientUser: UserId;
    if ("user" in frame.to) {
      recipientUser = frame.to.user as UserId;
      conversation = directConversation(sender.userId, recipientUser);
    } else {
      return errorFrame("group_not_found", "this router has no group service", frame.id, "to.group");
    }
    const earlier = await this.outbox.checkDuplicate(sender.userId, clientId);
    if (earlier) return sentFrame(clientId, conversation, earlier);

    const [theirs, mine] = await Promise.all([
      this.devices.devices(recipientUser),
      recipientUser === sender.userId ? NO_DEVICES : this.devices.devices(sender.userId),
    ]);
    if (theirs.length === 0) {
      return errorFrame("recipient_unknown", `unknown recipient \`${recipientUser}\``, frame.id, "to.user");
    }
    const recipients: DeviceKey[] = [];
    for (const d of theirs) {
      if (recipientUser !== sender.userId || d !== sender.deviceId) {
        recipients.push(deviceKey(recipientUser, d));
      }
    }
    for (const d of mine) if (d !== sender.deviceId) recipients.push(deviceKey(sender.userId, d));

    const seq = await this.#sequences.next(conversation);
    const envelope: Envelope = {
      id: this.#ids.next("m") as MessageId,
      clientId,
      from: sender.userId,
      fromDevice: sender.deviceId,
      to: frame.to as Envelope["to"],
      conversation,
      seq,
      ts: this.#clock.now(),
      text: frame.text,
      attachments: frame.attachments,
      priority: frame.priority ?? "high",
    };
    const refusal = await this.#hooks.beforeSend?.(envelope, sender);
    if (refusal) return errorFrame(refusal.code, refusal.message, frame.id);

    const sessions = await this.directory.lookupMany(
      recipientUser === sender.userId ? [recipientUser] : [recipientUser, sender.userId],
    );
    const online = new Set<DeviceKey>();
    for (const list of sessions.values()) {
      for (const s of list) online.add(deviceKey(s.userId, s.deviceId));
    }
    await this.messages.put(envelope, recipients);
    const result = await this.outbox.enqueue(envelope, recipients, {
      online: (d) => online.has(d),
    });
    if (!result.ok) {
      return errorFrame(result.code, "a recipient device has too many undelivered messages", frame.id);
    }
    const info: SentInfo = { id: envelope.id, seq, ts: envelope.ts };
    await this.outbox.remember(sender.userId, clientId, info);
    this.emit("accepted", envelope, recipients);
    return sentFrame(clientId, conversation, info);
  }

  /**
   * Handles a `receipt` frame from a device: clears the acked entries from its outbox and
   * routes the receipt to every device of each original sender. Receipts for one's own
   * messages (copies on one's other devices) clear entries but are not routed.
   */
  async receipt(sender: Sender, frame: ClientReceiptFrame): Promise<ErrorFrame | undefined> {
    const now = this.#clock.now();
    const me = deviceKey(sender.userId, sender.deviceId);
    if (!("ids" in frame)) {
      const other = dmPeer(frame.conversation as ConversationId, sender.userId);
      if (!other) return errorFrame("invalid_field", "not a conversation of yours", undefined, "conversation");
      const out: ServerReceiptFrame = {
        type: "receipt",
        status: "read",
        conversation: frame.conversation,
        upTo: frame.upTo,
        by: sender.userId,
        device: sender.deviceId,
        ts: now,
      };
      await this.#toUser(other, out);
      await this.#toUser(sender.userId, out, sender.deviceId);
      return undefined;
    }
    const ids = frame.ids as MessageId[];
    await this.outbox.ack(me, ids);
    const envelopes = await this.messages.getMany(ids);
    for (const id of ids) await this.messages.delivered(id, me);
    const bySender = new Map<UserId, string[]>();
    for (const e of envelopes) {
      if (e.from === sender.userId) continue;
      if ("user" in e.to && e.to.user !== sender.userId) continue;
      let list = bySender.get(e.from);
      if (!list) bySender.set(e.from, (list = []));
      list.push(e.id);
    }
    for (const [author, list] of bySender) {
      const out: ServerReceiptFrame = {
        type: "receipt",
        status: frame.status,
        ids: list,
        by: sender.userId,
        device: sender.deviceId,
        ts: now,
      };
      await this.#toUser(author, out);
      if (frame.status === "read") await this.#toUser(sender.userId, out, sender.deviceId);
    }
    return undefined;
  }

  /** Routes a volatile `typing` frame to the peer's connected devices; never stored or queued. */
  async typing(sender: Sender, frame: ClientFrameOf<"typing">): Promise<ErrorFrame | undefined> {
    if (!("user" in frame.to)) return undefined;
    const peer = frame.to.user as UserId;
    await this.#toUser(peer, {
      type: "typing",
      from: sender.userId,
      to: frame.to,
      conversation: directConversation(sender.userId, peer),
      state: frame.state,
    });
    return undefined;
  }

  /** Sends a frame to every connected device of a user (optionally except one device). */
  async toUser(userId: UserId, frame: ServerFrame, exceptDevice?: DeviceId): Promise<void> {
    await this.#toUser(userId, frame, exceptDevice);
  }

  async #toUser(userId: UserId, frame: ServerFrame, exceptDevice?: DeviceId): Promise<void> {
    const sessions = await this.directory.lookup(userId);
    await this.#publishToSessions(
      exceptDevice === undefined ? sessions : sessions.filter((s) => s.deviceId !== exceptDevice),
      frame,
    );
  }

  async #publishToSessions(sessions: readonly Session[], frame: ServerFrame): Promise<void> {
    if (sessions.length === 0) return;
    const byNode = new Map<NodeId, SessionId[]>();
    for (const s of sessions) {
      let list = byNode.get(s.nodeId);
      if (!list) byNode.set(s.nodeId, (list = []));
      list.push(s.sessionId);
    }
    const sends: Promise<void>[] = [];
    for (const [node, to] of byNode) sends.push(this.#publish(node, { kind: "frames", to, frame }));
    await Promise.all(sends);
  }

  #publish(node: NodeId, packet: BusPacket): Promise<void> {
    if (node === this.nodeId) {
      this.#onPacket(packet);
      return Promise.resolve();
    }
    return this.bus.publish(node, packet).catch((cause: unknown) => {
      // The bus may lose packets; the outbox redelivers. Report, never throw at the caller.
      this.emit("error", new RelayError("store_unavailable", `publish to ${node} failed`, { cause }));
    });
  }

  #onPacket(packet: BusPacket): void {
    if (packet.kind !== "frames") return;
    for (const sink of this.#sinks) sink(packet.to, packet.frame);
  }

  #transmit(device: DeviceKey, envelope: Envelope): void {
    this.#transmits.push({ device, envelope });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushTransmits().catch((cause: unknown) =>
          this.emit("error", new RelayError("internal", "transmit failed", { cause })),
        );
      });
    }
  }

  /** Resolves the sessions of every pending transmit at once and sends one packet per (node, message). */
  async #flushTransmits(): Promise<void> {
    this.#flushScheduled = false;
    const batch = this.#transmits;
    this.#transmits = [];
    const users = new Set<UserId>();
    for (const t of batch) users.add(splitDeviceKey(t.device).userId);
    const sessions = await this.directory.lookupMany([...users]);
    const perMessage = new Map<Envelope, Session[]>();
    for (const { device, envelope } of batch) {
      const { userId: u, deviceId: d } = splitDeviceKey(device);
      for (const s of sessions.get(u) ?? NO_SESSIONS) {
        if (s.deviceId !== d) continue;
        let list = perMessage.get(envelope);
        if (!list) perMessage.set(envelope, (list = []));
        list.push(s);
      }
    }
    const sends: Promise<void>[] = [];
    for (const [envelope, list] of perMessage) {
      sends.push(this.#publishToSessions(list, messageFrame(envelope)));
    }
    await Promise.all(sends);
  }

  #onFailed(envelope: Envelope, device: DeviceKey, reason: FailReason): void {
    this.emit("failed", envelope, device, reason);
    void this.#toUser(envelope.from, {
      type: "receipt",
      status: "failed",
      ids: [envelope.id],
      clientId: envelope.clientId,
      reason,
      ts: this.#clock.now(),
    });
  }

  /** Unsubscribes from the bus and stops the outbox's timers. */
  async close(): Promise<void> {
    await this.#unsubscribe?.();
    await this.outbox.close();
  }
}

const NO_DEVICES: readonly DeviceId[] = Object.freeze([]);
const NO_SESSIONS: readonly Session[] = Object.freeze([]);

/** The other user of a 1:1 conversation id, if `me` is in it. */
function dmPeer(conversation: ConversationId, me: UserId): UserId | undefined {
  if (!conversation.startsWith("dm:")) return undefined;
  const rest = conversation.slice(3);
  const mid = rest.indexOf(":");
  if (mid < 0) return undefined;
  const a = rest.slice(0, mid) as UserId;
  const b = rest.slice(mid + 1) as UserId;
  if (a === me) return b;
  if (b === me) return a;
  return undefined;
}

/** The `message` frame a recipient device gets for an envelope. */
export function messageFrame(e: Envelope): MessageFrame {
  const f: { -readonly [K in keyof MessageFrame]: MessageFrame[K] } = {
    type: "message",
    id: e.id,
    clientId: e.clientId,
    from: e.from,
    fromDevice: e.fromDevice,
    to: e.to,
    conversation: e.conversation,
    seq: e.seq,
    ts: e.ts,
    text: e.text,
    priority: e.priority,
  };
  if (e.attachments) f.attachments = e.attachments.map((a) => ({ ...a }));
  if (e.system) f.system = { ...e.system, members: [...e.system.members] };
  return f;
}

function sentFrame(clientId: ClientMessageId, conversation: ConversationId, info: SentInfo): ServerFrame {
  return { type: "receipt", status: "sent", clientId, id: info.id, conversation, seq: info.seq, ts: info.ts };
}

/** Builds an `error` frame. */
export function errorFrame(
  code: ErrorFrame["code"],
  message: string,
  ref?: string,
  path?: string,
): ErrorFrame {
  const f: { -readonly [K in keyof ErrorFrame]: ErrorFrame[K] } = { type: "error", code, message };
  if (ref !== undefined) f.ref = ref;
  if (path !== undefined) f.path = path;
  return f;
}
