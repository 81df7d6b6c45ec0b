import type { Clock, Timer } from "../core/clock.js";
import { ERROR_CODES, type ErrorCode, isRelayError, RelayError } from "../core/errors.js";
import { TypedEmitter } from "../core/events.js";
import {
  type ClientMessageId,
  type ConversationId,
  type DeviceId,
  type DeviceKey,
  deviceKey,
  directConversation,
  directPeers,
  type GroupId,
  groupConversation,
  type MessageId,
  type NodeId,
  type SessionId,
  splitDeviceKey,
  type UserId,
} from "../core/ids.js";
import {
  andThen,
  drive,
  driveAsync,
  isPromiseLike,
  type MaybePromise,
  type Steps,
} from "../core/maybe.js";
import type { IdSource } from "../core/random.js";
import { systemClock, systemIds } from "../core/system.js";
import type {
  Envelope,
  GroupReceiptPolicy,
  Priority,
  Session,
  SystemEvent,
  Target,
} from "../core/types.js";
import type {
  ClientFrameOf,
  ClientReceiptFrame,
  ErrorFrame,
  MessageFrame,
  SendFrame,
  ServerFrame,
  ServerFrameOf,
  ServerReceiptFrame,
} from "../protocol/schemas.js";
import type { EnqueueOptions, EnqueueResult, FailReason, SentRecord } from "../queue/index.js";
import { type AckResult, type FailedResult, ReceiptTracker } from "../receipts/index.js";
import { type DeviceRegistry, MemoryDeviceRegistry } from "./device-registry.js";
import type { MessageStore } from "./message-store.js";
import { type BusPacket, MemoryNodeBus, type NodeBus } from "./node-bus.js";
import { deliveryQueue, type Outbox, type OutboxFactory } from "./outbox.js";
import { MemorySequenceStore, type SequenceStore } from "./sequence-store.js";
import { MemorySessionDirectory, type SessionDirectory } from "./session-directory.js";
import { StaleDevices, type StaleDevicesOptions } from "./stale-devices.js";

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
   * It runs before the message takes its sequence number: `envelope.seq` is 0 here.
   */
  beforeSend?(
    envelope: Envelope,
    sender: Sender,
  ): Refusal | undefined | Promise<Refusal | undefined>;
}

/** Serves a node-to-node request: receives the body and the calling node, resolves to the reply body. */
export type ControlHandler = (body: unknown, from: NodeId) => Promise<unknown>;

const REPLY = "reply";
/** The control op asking a node to close sessions that stopped acking. */
const UNRESPONSIVE = "relaykit.unresponsive";

function asCode(code: string | undefined): ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code ?? "") ? (code as ErrorCode) : "internal";
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
  /**
   * Keeps accepted messages for history (a MessageStore in `history` mode). Without it the
   * router runs the seed's relay retention: a message lives only in the outbox, and is gone
   * once every recipient device has acked it. @default none (relay)
   */
  readonly messages?: MessageStore;
  /** Builds the outbox around the router's hooks. @default a DeliveryQueue on the router's clock */
  readonly outbox?: OutboxFactory;
  readonly clock?: Clock;
  /**
   * Unlinks devices not connected for a while (see {@link StaleDevices}); `false` turns it
   * off. The default keeps last-seen times in this process: give a shared `store` before
   * running it on several nodes. @default 30 days, swept hourly
   */
  readonly staleDevices?: StaleDevicesOptions | false;
  readonly ids?: IdSource;
  readonly hooks?: RouterHooks;
  /**
   * Refuse a 1:1 send to a user with no linked device with `recipient_unknown`. Off by
   * default: such a send is accepted (`sent` tick) like any other and never delivered, so an
   * answer never tells a stranger whether a user id exists (a blocked contact looks the same
   * on WhatsApp: one tick). Turn it on when user ids are public anyway. @default false
   */
  readonly revealUnknownRecipients?: boolean;
  /**
   * Receipt tracking (delivered / read ticks, read sync, group policies, failed receipts).
   * @default a ReceiptTracker on the router's clock
   */
  readonly receipts?: ReceiptTracker;
  /** Group membership, for group sends. Without it, group sends are refused (`group_not_found`). */
  readonly groups?: GroupMembership;
  /**
   * The lane of a message. The default puts 1:1 messages in `high`, groups up to 256 members
   * in `normal` and larger groups in `low`; a client may ask for a lower lane, never a higher one.
   */
  readonly priority?: (
    target: Target,
    recipientCount: number,
    asked: Priority | undefined,
  ) => Priority;
}

/**
 * What the router needs to know of groups: `GroupService` and `GroupDirectory` fit it.
 * @remarks Membership errors are thrown as RelayError (`group_not_found`, ...) and become error frames.
 */
export interface GroupMembership {
  /** The members of a group, now. */
  members(group: GroupId): Promise<readonly UserId[]>;
  /** Whether a user is a member of a group now. */
  isMember(group: GroupId, user: UserId): Promise<boolean>;
  /** The group's receipt policy; `none` when absent. */
  get?(group: GroupId): Promise<{ readonly receipts?: GroupReceiptPolicy }>;
  /**
   * True when {@link members} never lists a user twice (`GroupService` and `GroupDirectory`
   * over a store that passes the GroupStore conformance suite). Otherwise the router drops
   * repeats itself, which costs a set of the members per group message.
   */
  readonly distinctMembers?: boolean;
}

const LANE_RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

/** The default lane policy; see {@link RouterOptions.priority}. */
export function defaultPriority(
  target: Target,
  recipientCount: number,
  asked: Priority | undefined,
): Priority {
  const lane: Priority = "user" in target ? "high" : recipientCount <= 256 ? "normal" : "low";
  return asked !== undefined && LANE_RANK[asked] > LANE_RANK[lane] ? asked : lane;
}

/** Events a {@link Router} emits, for observers (metrics, tests, the simulation kit). */
export interface RouterEvents {
  /** A message was accepted and got its `sent` tick. */
  accepted: (envelope: Envelope, recipients: readonly DeviceKey[]) => void;
  /** A delivery was given up and the sender told. */
  failed: (envelope: Envelope, device: DeviceKey, reason: FailReason) => void;
  /** A routing step failed on infrastructure (store or bus); the outbox will retry. */
  error: (error: RelayError) => void;
  /**
   * These sessions of this node stopped acking their messages (see the outbox's
   * `onUnresponsive`): the gateway closes them, so their devices' next connections get the
   * redelivery.
   */
  unresponsive: (sessions: readonly SessionId[]) => void;
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
  /** Unlinks devices idle past the limit; its `sweep()` runs every `sweepMs`. */
  readonly stale: StaleDevices | undefined;
  /** The device registry in use. */
  readonly devices: DeviceRegistry;
  /** The node bus in use. */
  readonly bus: NodeBus;
  /** The message store in use. */
  readonly messages: MessageStore | undefined;
  /** The outbox in use. */
  readonly outbox: Outbox;
  /** The receipt tracker in use. */
  readonly receipts: ReceiptTracker;
  readonly #groups: GroupMembership | undefined;
  readonly #priority: NonNullable<RouterOptions["priority"]>;
  readonly #sequences: SequenceStore;
  readonly #clock: Clock;
  readonly #ids: IdSource;
  readonly #hooks: RouterHooks;
  readonly #revealUnknown: boolean;
  readonly #inflight = new Map<string, Promise<ServerFrame>>();
  readonly #sinks = new Set<LocalSink>();
  /** The device of each session connected through this router, and each device's pending connect/disconnect. */
  readonly #sessionDevice = new Map<SessionId, DeviceKey>();
  readonly #deviceOps = new Map<DeviceKey, Promise<unknown>>();
  /** Sessions of each online recipient device of the messages being accepted right now. */
  readonly #routes = new Map<MessageId, ReadonlyMap<DeviceKey, readonly Session[]>>();
  readonly #handlers = new Map<string, ControlHandler>();
  readonly #requests = new Map<
    string,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: Timer }
  >();
  /** The route of the one message being enqueued, and the online predicate reading it. */
  #current: ReadonlyMap<DeviceKey, unknown> = new Map();
  readonly #isRouted = (d: DeviceKey): boolean => this.#current.has(d);
  /** Sends between their directory lookup and their enqueue, by the epoch they started at. */
  readonly #open = new Map<number, number>();
  /** Devices whose connect or disconnect finished while a send was in that window, and when. */
  readonly #changed = new Map<DeviceKey, number>();
  #epoch = 0;
  /** Transmissions waiting for the flush, as runs of one envelope. */
  #runs: Run[] = [];
  #lastRun: Run | undefined;
  /** How many of the waiting transmissions need a directory lookup. */
  #unresolved = 0;
  /** The directory, when it answers per device at once (see SessionDirectory.lookupDeviceSync). */
  readonly #live: SessionDirectory | undefined;
  /** The outbox's online predicate over {@link #live}: a device with a connect or disconnect in progress keeps the queue's state. */
  readonly #liveOnline = (d: DeviceKey): boolean | undefined => {
    if (this.#deviceOps.size > 0 && this.#deviceOps.has(d)) return undefined;
    let sessions: readonly Session[];
    try {
      sessions = this.#live!.lookupDeviceSync!(d);
    } catch (cause) {
      // Asked after the message is stored: the device keeps the queue's state (its entry is
      // held and retried), and the send still gets its `sent`.
      this.#report(cause);
      return undefined;
    }
    if (sessions.length === 0) return false;
    // A synchronous outbox transmits to this device next, if at all, in the same step: its
    // transmissions reuse the answer. (An async one may await in between: read at the flush.)
    if (this.#reuseAsked) {
      this.#askedDevice = d;
      this.#askedSessions = sessions;
    }
    return true;
  };
  /** The enqueue options over {@link #live}: every envelope the router enqueues has a new id. */
  readonly #liveOptions: EnqueueOptions = { online: this.#liveOnline, fresh: true };
  /** Set while a synchronous outbox enqueues: transmissions may reuse {@link #liveOnline}'s answer. */
  #reuseAsked = false;
  /** The device {@link #liveOnline} asked about last, and the directory's (live) answer. */
  #askedDevice: DeviceKey | undefined;
  #askedSessions: readonly Session[] = NO_SESSIONS;
  /** Batches waiting for (or sending after) a directory lookup, in order. */
  #lookupChain: Promise<void> = Promise.resolve();
  /** Each busy group's recipient list (see {@link #groupRecipients}). */
  readonly #recipientCache = new Map<
    string,
    {
      readonly users: readonly UserId[];
      readonly own: DeviceKey;
      readonly revision: number;
      readonly recipients: readonly DeviceKey[];
    }
  >();
  #lookups = 0;
  #flushScheduled = false;
  #unsubscribe: (() => Promise<void>) | undefined;
  #started: Promise<void> | undefined;

  constructor(options: RouterOptions = {}) {
    super();
    this.nodeId = options.nodeId ?? ("node-1" as NodeId);
    this.directory = options.directory ?? new MemorySessionDirectory();
    this.#live = this.directory.lookupDeviceSync ? this.directory : undefined;
    this.devices = options.devices ?? new MemoryDeviceRegistry();
    this.bus = options.bus ?? new MemoryNodeBus();
    this.messages = options.messages;
    this.#sequences = options.sequences ?? new MemorySequenceStore();
    this.#clock = options.clock ?? systemClock;
    this.#ids = options.ids ?? systemIds();
    this.#hooks = options.hooks ?? {};
    this.#revealUnknown = options.revealUnknownRecipients === true;
    this.#groups = options.groups;
    this.#priority = options.priority ?? defaultPriority;
    this.receipts = options.receipts ?? new ReceiptTracker({ clock: this.#clock });
    this.receipts.on("notify", (n) => {
      this.#notify(n.toUser, n.frame, n.exceptDevice).catch((cause: unknown) =>
        this.#report(cause),
      );
    });
    const hooks = {
      transmit: (device: DeviceKey, envelope: Envelope) => this.#transmit(device, envelope),
      onFailed: (envelope: Envelope, device: DeviceKey, reason: FailReason) =>
        this.#onFailed(envelope, device, reason),
      onUnresponsive: (device: DeviceKey) => this.#onUnresponsive(device),
    };
    this.#handlers.set(UNRESPONSIVE, async (body) => {
      this.emit("unresponsive", (body as { sessions: SessionId[] }).sessions);
    });
    this.outbox = (options.outbox ?? deliveryQueue({ clock: this.#clock }))(hooks);
    this.stale =
      options.staleDevices === false
        ? undefined
        : new StaleDevices(
            this.#clock,
            {
              isLive: async (u, d) =>
                (await this.directory.lookup(u)).some((s) => s.deviceId === d),
              // In the device's connect/disconnect order, so a connect racing the sweep wins.
              unlink: (u, d) =>
                this.#serialDevice(deviceKey(u, d), async () => {
                  if ((await this.directory.lookup(u)).some((s) => s.deviceId === d)) return false;
                  await this.devices.unlink(u, d);
                  await this.outbox.dropDevice?.(deviceKey(u, d), "device_unlinked");
                  return true;
                }),
              report: (cause) => this.#report(cause),
            },
            options.staleDevices,
          );
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

  /**
   * A device connected here: record the session, link the device, flush what waits for it
   * (queued messages, and receipts held while none of the user's devices was connected).
   */
  connect(session: Session): Promise<void> {
    const key = deviceKey(session.userId, session.deviceId);
    this.#sessionDevice.set(session.sessionId, key);
    return this.#serialDevice(key, async () => {
      await this.start();
      await this.devices.link(session.userId, session.deviceId);
      await this.stale?.touch(session.userId, session.deviceId);
      this.stale?.start();
      await this.directory.register(session);
      await this.outbox.deviceConnected(key);
      const held = await this.receipts.takeHeld(session.userId);
      for (const frame of held) await this.#publishToSessions([session], frame);
    });
  }

  /**
   * Runs a device's connects and disconnects one at a time, in call order: a reconnect that
   * races the old socket's close must not end with the queue thinking the device is offline.
   */
  #serialDevice<T>(key: DeviceKey, fn: () => Promise<T>): Promise<T> {
    const next = (this.#deviceOps.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.#deviceOps.set(key, tail);
    void tail.then(() => {
      // Sends whose directory snapshot is older than this change must not apply it (kept in
      // epoch order, so what no open send needs is cut from the front).
      if (this.#open.size > 0) {
        this.#changed.delete(key);
        this.#changed.set(key, ++this.#epoch);
      }
      if (this.#deviceOps.get(key) === tail) this.#deviceOps.delete(key);
    });
    return next;
  }

  /**
   * Sends a receipt to a user's connected devices; when none is connected, the tracker holds
   * it for the user's return (read sync to one's own other devices is not held).
   */
  async #notify(user: UserId, frame: ServerReceiptFrame, exceptDevice?: DeviceId): Promise<void> {
    const sessions = await this.directory.lookup(user);
    if (sessions.length === 0) {
      if (exceptDevice === undefined) await this.receipts.hold(user, frame);
      return;
    }
    await this.#publishToSessions(
      exceptDevice === undefined ? sessions : sessions.filter((s) => s.deviceId !== exceptDevice),
      frame,
    );
  }

  /** A device disconnected: forget the session; its messages wait in the outbox. */
  disconnect(sessionId: SessionId): Promise<Session | undefined> {
    const run = async () => {
      const session = await this.directory.unregister(sessionId);
      if (session) {
        await this.stale?.touch(session.userId, session.deviceId);
        const others = await this.directory.lookup(session.userId);
        if (!others.some((s) => s.deviceId === session.deviceId)) {
          await this.outbox.deviceDisconnected(deviceKey(session.userId, session.deviceId));
        }
      }
      return session;
    };
    const key = this.#sessionDevice.get(sessionId);
    this.#sessionDevice.delete(sessionId);
    return key === undefined ? run() : this.#serialDevice(key, run);
  }

  /** Links a device to a user before it ever connects, so messages wait for it. */
  async linkDevice(userId: UserId, deviceId: DeviceId): Promise<void> {
    await this.devices.link(userId, deviceId);
  }

  /**
   * Accepts a `send` frame from an authenticated sender. Resolves to the `sent` receipt, or
   * to an error frame; never rejects for bad input. A retried send with the same client id
   * gets the original receipt and is not delivered twice.
   */
  send(sender: Sender, frame: SendFrame): Promise<ServerFrame> {
    return Promise.resolve(this.sendNow(sender, frame));
  }

  /**
   * {@link send}, answered before it returns when every port on the path answers at once
   * (the in-memory default), so the in-process path costs no promise; otherwise a promise.
   * Never throws: a failure is a rejected promise.
   */
  sendNow(sender: Sender, frame: SendFrame): MaybePromise<ServerFrame> {
    if (frame.from !== undefined && frame.from !== sender.userId) {
      return errorFrame(
        "forbidden_sender",
        "`from` must be the authenticated user",
        frame.id,
        "from",
      );
    }
    const key = `${sender.userId}\u0000${sender.deviceId}\u0000${frame.id}`;
    const running = this.#inflight.get(key);
    if (running) return running;
    let answer: MaybePromise<ServerFrame>;
    try {
      answer = drive(this.#accept(sender, frame));
    } catch (e) {
      return Promise.reject(e);
    }
    if (!isPromiseLike(answer)) return answer;
    // Still running: a retry of the same send meanwhile gets this answer, not a second message.
    const p = Promise.resolve(answer).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  /** The accept path, run by {@link drive}: each port's answer is yielded. */
  *#accept(sender: Sender, frame: SendFrame): Steps<ServerFrame> {
    const clientId = frame.id as ClientMessageId;
    const target = frame.to as Target;
    const conversation =
      "user" in target
        ? directConversation(sender.userId, target.user)
        : groupConversation(target.group);
    const sync = this.outbox.sync;
    // Dedupe is per sending device: another device of the user may use the same client id.
    const by = deviceKey(sender.userId, sender.deviceId);
    const earlier = sync
      ? sync.checkDuplicateSync(by, clientId)
      : ((yield this.outbox.checkDuplicate(by, clientId)) as SentRecord | undefined);
    if (earlier) return sentFrame(clientId, conversation, earlier);

    let users: readonly UserId[];
    let policy: GroupReceiptPolicy | undefined;
    if ("user" in target) {
      users = target.user === sender.userId ? [sender.userId] : [target.user, sender.userId];
    } else {
      const groups = this.#groups;
      if (!groups)
        return errorFrame(
          "group_not_found",
          "this router has no group service",
          frame.id,
          "to.group",
        );
      try {
        if (!((yield groups.isMember(target.group, sender.userId)) as boolean)) {
          // An unknown group throws `group_not_found` here (refusal path only).
          yield groups.members(target.group);
          return errorFrame(
            "not_group_member",
            "only members may post to a group",
            frame.id,
            "to.group",
          );
        }
        users = (yield groups.members(target.group)) as readonly UserId[];
        if (!groups.distinctMembers) {
          // One entry per member device whatever the membership port answers (a user listed
          // twice would be queued, tracked and stored twice).
          const once = new Set(users);
          if (once.size !== users.length) users = [...once];
        }
        policy = groups.get
          ? ((yield groups.get(target.group)) as { readonly receipts?: GroupReceiptPolicy })
              .receipts
          : undefined;
      } catch (e) {
        if (isRelayError(e)) return errorFrame(e.code, e.message, frame.id, "to.group");
        throw e;
      }
    }
    const recipients = (
      "group" in target
        ? yield this.#groupRecipients(target.group, users, sender)
        : yield this.#recipientDevices(users, sender)
    ) as readonly DeviceKey[];
    if (
      this.#revealUnknown &&
      "user" in target &&
      !recipients.some((d) => d.startsWith(`${target.user}/`))
    ) {
      if (target.user !== sender.userId) {
        return errorFrame(
          "recipient_unknown",
          `unknown recipient \`${target.user}\``,
          frame.id,
          "to.user",
        );
      }
    }

    const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = {
      id: this.#ids.next("m") as MessageId,
      clientId,
      from: sender.userId,
      fromDevice: sender.deviceId,
      to: target,
      conversation,
      seq: 0,
      ts: this.#clock.now(),
      text: frame.text,
      attachments: frame.attachments,
      priority: this.#priority(target, users.length, frame.priority),
    };
    // The hook runs before a number is taken: a refused send leaves no gap (`seq` is 0 there).
    const beforeSend = this.#hooks.beforeSend;
    const refusal = beforeSend
      ? ((yield beforeSend(envelope, sender)) as Refusal | undefined)
      : undefined;
    if (refusal) return errorFrame(refusal.code, refusal.message, frame.id);
    const seq = (yield this.#sequences.next(conversation)) as number;
    envelope.seq = seq;
    const result = yield* this.#store(envelope, users, recipients, policy);
    // A refused enqueue gives its number back when no later one was taken meanwhile.
    if (!result.ok && this.#sequences.release) yield this.#sequences.release(conversation, seq);
    if (!result.ok && result.code === "duplicate") {
      // The same send was accepted concurrently elsewhere: answer with that one.
      return sentFrame(clientId, conversation, result.record);
    }
    if (!result.ok) {
      return errorFrame(
        result.code,
        result.code === "quota_exceeded"
          ? "you have too many undelivered messages for a recipient device; retry later"
          : "a recipient device has too many undelivered messages; retry later",
        frame.id,
      );
    }
    return sentFrame(clientId, conversation, {
      messageId: envelope.id,
      conversation,
      seq,
      ts: envelope.ts,
    });
  }

  /** Whether a device is in a route: one function per router for the common one-route case. */
  #onlineIn(route: ReadonlyMap<DeviceKey, unknown>): (device: DeviceKey) => boolean {
    if (this.#routes.size === 1) {
      this.#current = route;
      return this.#isRouted;
    }
    return (d) => route.has(d);
  }

  #openSnapshot(): number {
    const since = this.#epoch;
    this.#open.set(since, (this.#open.get(since) ?? 0) + 1);
    return since;
  }

  #closeSnapshot(since: number): void {
    const left = (this.#open.get(since) ?? 1) - 1;
    if (left > 0) this.#open.set(since, left);
    else this.#open.delete(since);
    if (this.#open.size === 0) {
      this.#changed.clear();
      return;
    }
    // Changes at or before the oldest open snapshot concern no open send.
    const oldest = this.#open.keys().next().value ?? 0;
    for (const [key, epoch] of this.#changed) {
      if (epoch > oldest) break;
      this.#changed.delete(key);
    }
  }

  /**
   * {@link #recipientDevices} of a group's members, reused (frozen) while the members, the
   * sending device and the registry's revision are the same: a busy group's fan-out then
   * asks the registry nothing per message.
   */
  #groupRecipients(
    group: GroupId,
    users: readonly UserId[],
    sender: Sender,
  ): MaybePromise<readonly DeviceKey[]> {
    const registry = this.devices;
    const revision = registry.revision;
    if (revision === undefined || !registry.keys) return this.#recipientDevices(users, sender);
    const own = deviceKey(sender.userId, sender.deviceId);
    // One list per (group, sending device): a group's members take turns.
    const key = `${group}\u0000${own}`;
    const cached = this.#recipientCache.get(key);
    if (
      cached &&
      cached.revision === revision &&
      cached.own === own &&
      sameList(cached.users, users)
    ) {
      // Used now: to the back of the eviction order.
      this.#recipientCache.delete(key);
      this.#recipientCache.set(key, cached);
      return cached.recipients;
    }
    return andThen(this.#recipientDevices(users, sender), (list) => {
      // (Stored only if nothing changed while a remote registry answered.)
      if (registry.revision !== revision) return list;
      const recipients = Object.freeze(list);
      if (this.#recipientCache.size >= RECIPIENT_CACHE_MAX) {
        // The half used least lately (the front of the map) goes.
        let n = this.#recipientCache.size >> 1;
        for (const k of this.#recipientCache.keys()) {
          if (n-- === 0) break;
          this.#recipientCache.delete(k);
        }
      }
      // (A frozen member list, as the memory group store hands out, is kept as given: the
      // next message's list is then recognised at once.)
      const kept = Object.isFrozen(users) ? users : users.slice();
      this.#recipientCache.set(key, { users: kept, own, revision, recipients });
      return recipients;
    });
  }

  /** Every linked device of `users`, but the sending device: the frozen recipient set. */
  #recipientDevices(
    users: readonly UserId[],
    sender: Sender | undefined,
  ): MaybePromise<DeviceKey[]> {
    const registry = this.devices;
    if (registry.keys) {
      // The registry's own key strings: no key is built per recipient.
      const own = sender === undefined ? undefined : deviceKey(sender.userId, sender.deviceId);
      const lists = users.map((u) => registry.keys!(u));
      if (lists.some(isPromiseLike)) {
        return Promise.all(lists).then((ls) => joinKeys(users, ls, sender?.userId, own));
      }
      return joinKeys(users, lists as readonly (readonly DeviceKey[])[], sender?.userId, own);
    }
    const answers = users.map((u) => registry.devices(u));
    // Asked all at once: a remote registry answers a large group in one round trip's time.
    if (answers.some(isPromiseLike)) {
      return Promise.all(answers).then((lists) => recipientKeys(users, lists, sender));
    }
    return recipientKeys(users, answers as readonly (readonly DeviceId[])[], sender);
  }

  /** Stores an envelope, queues it for every recipient device, and starts tracking receipts. */
  *#store(
    envelope: Envelope,
    users: readonly UserId[],
    recipients: readonly DeviceKey[],
    policy: GroupReceiptPolicy | undefined,
  ): Steps<
    | { ok: true }
    | { ok: false; code: "recipient_queue_full" | "quota_exceeded" }
    | { ok: false; code: "duplicate"; record: SentRecord }
  > {
    let result: EnqueueResult;
    if (this.#live) {
      // The directory answers per device at once: the outbox asks it when it enqueues (a
      // device with a connect or disconnect in progress keeps the queue's state).
      const sync = this.outbox.sync;
      this.#reuseAsked = sync !== undefined;
      try {
        result = sync
          ? sync.enqueueSync(envelope, recipients, this.#liveOptions)
          : ((yield this.outbox.enqueue(envelope, recipients, this.#liveOptions)) as EnqueueResult);
      } finally {
        this.#reuseAsked = false;
        this.#askedDevice = undefined;
        this.#askedSessions = NO_SESSIONS;
      }
    } else {
      result = yield* this.#enqueueSnapshot(envelope, users, recipients);
    }
    if (!result.ok) return result;
    // History keeps what was accepted only (a refused or duplicate send never enters it).
    if (this.messages) yield this.messages.put(envelope, recipients);
    // The recipients are distinct (distinct members, each device once); when they are the
    // registry's own strings the tracker keeps them as given (nothing to intern).
    const shared = this.devices.keys !== undefined;
    yield this.receipts.track(
      envelope,
      recipients,
      policy === undefined
        ? shared
          ? TRACK_DISTINCT
          : NO_TRACK_OPTIONS
        : { policy, distinct: shared },
    );
    // Devices whose queues were full were left out: the sender sees them failed per device
    // (each device can tell from the gap in its seqs).
    if (result.skipped) {
      for (const d of result.skipped) this.#onFailed(envelope, d, "recipient_queue_full");
    }
    // The first transmissions go out now (tracked first, so even an ack that comes back at
    // once finds the message), with the sessions just looked up. When a step above had to
    // wait, the flush scheduled by the transmit has already sent them.
    this.#flushTransmits();
    if (this.listenerCount("accepted") > 0) this.emit("accepted", envelope, recipients);
    return { ok: true };
  }

  /**
   * Enqueues with a snapshot of the recipients' sessions (a directory that answers per user,
   * maybe late). From the lookup to the enqueue the snapshot may go stale: a device this node
   * connected or disconnected meanwhile keeps the queue's state.
   */
  *#enqueueSnapshot(
    envelope: Envelope,
    users: readonly UserId[],
    recipients: readonly DeviceKey[],
  ): Steps<EnqueueResult> {
    const since = this.#openSnapshot();
    let result: EnqueueResult;
    try {
      const sessions = (yield this.directory.lookupMany(users)) as ReadonlyMap<
        UserId,
        readonly Session[]
      >;
      // The sessions of each online recipient device: who is online for the queue, and where
      // its first transmission goes (the flush reuses them instead of looking them up again).
      const route = new Map<DeviceKey, Session[]>();
      for (const list of sessions.values()) {
        for (const s of list) {
          const key = deviceKey(s.userId, s.deviceId);
          const known = route.get(key);
          if (known) known.push(s);
          else route.set(key, [s]);
        }
      }
      this.#routes.set(envelope.id, route);
      const sync = this.outbox.sync;
      // A sync outbox asks at once: if nothing changed since the lookup, the route is right.
      // Otherwise the predicate asks live, when the outbox calls it.
      const online =
        sync && this.#deviceOps.size === 0 && this.#changed.size === 0
          ? this.#onlineIn(route)
          : (d: DeviceKey) =>
              this.#deviceOps.has(d) || (this.#changed.get(d) ?? -1) > since
                ? undefined
                : route.has(d);
      try {
        result = sync
          ? sync.enqueueSync(envelope, recipients, { online, fresh: true })
          : ((yield this.outbox.enqueue(envelope, recipients, {
              online,
              fresh: true,
            })) as EnqueueResult);
      } finally {
        this.#routes.delete(envelope.id);
      }
    } finally {
      this.#closeSnapshot(since);
    }
    return result;
  }

  /**
   * Posts a system message (a membership change) in a group's conversation, to every member
   * and to the members it removed. It is queued and acked like any message.
   */
  async postSystem(group: GroupId, event: SystemEvent): Promise<Envelope | undefined> {
    const groups = this.#groups;
    if (!groups) return undefined;
    const members = new Set(await groups.members(group));
    if (event.event === "member.removed" || event.event === "member.left") {
      for (const m of event.members) members.add(m);
    }
    const users = [...members];
    const recipients = await this.#recipientDevices(users, undefined);
    const conversation = groupConversation(group);
    const envelope: Envelope = {
      id: this.#ids.next("m") as MessageId,
      clientId: this.#ids.next("sys") as ClientMessageId,
      from: event.actor,
      fromDevice: "system" as DeviceId,
      to: { group },
      conversation,
      seq: await this.#sequences.next(conversation),
      ts: this.#clock.now(),
      text: "",
      priority: "normal",
      system: event,
    };
    // System messages bypass the per-device cap: a membership change is never refused.
    await drive(this.#store(envelope, users, recipients, "none"));
    return envelope;
  }

  /**
   * Handles a `receipt` frame from a device: clears the acked entries from its outbox and
   * hands the receipt to the tracker, which routes ticks to the senders and read sync to the
   * reader's other devices. Receipts for one's own messages clear entries but are not routed.
   */
  receipt(sender: Sender, frame: ClientReceiptFrame): Promise<ErrorFrame | undefined> {
    return driveAsync(this.#receipt(sender, frame));
  }

  /**
   * {@link receipt}, answered before it returns when every port on the path answers at once
   * (the in-memory default). Never throws: a failure is a rejected promise.
   */
  receiptNow(sender: Sender, frame: ClientReceiptFrame): MaybePromise<ErrorFrame | undefined> {
    try {
      return drive(this.#receipt(sender, frame));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  *#receipt(sender: Sender, frame: ClientReceiptFrame): Steps<ErrorFrame | undefined> {
    if (!("ids" in frame)) {
      const conversation = frame.conversation as ConversationId;
      if (!((yield this.#inConversation(conversation, sender.userId)) as boolean)) {
        return errorFrame(
          "not_recipient",
          "not a conversation of yours",
          undefined,
          "conversation",
        );
      }
      yield this.receipts.watermark(sender.userId, sender.deviceId, conversation, frame.upTo);
      return undefined;
    }
    const me = deviceKey(sender.userId, sender.deviceId);
    const ids = frame.ids as MessageId[];
    // The tick is routed even when clearing the queue fails: the device has the messages
    // (the entries stay stored and are redelivered; the client dedupes them).
    let cleared: Promise<unknown> | undefined;
    const sync = this.outbox.sync;
    if (sync) {
      try {
        sync.ackSync(me, ids);
      } catch (cause) {
        this.#report(cause);
      }
    } else {
      cleared = this.outbox.ack(me, ids).catch((cause: unknown) => this.#report(cause));
    }
    const acked = (yield this.receipts.ack(
      sender.userId,
      sender.deviceId,
      frame.status,
      ids,
    )) as AckResult;
    if (cleared) yield cleared;
    const messages = this.messages;
    if (messages) for (const id of ids) yield messages.delivered(id, me);
    // A receipt from someone the message was not for (a third user, the sender on its own
    // message) changed nothing: say so.
    const refused = acked.ignored.filter(
      (x) => x.reason === "not_recipient" || x.reason === "own_message",
    );
    if (refused.length > 0) {
      return errorFrame(
        "not_recipient",
        `not a recipient of ${refused.map((x) => x.id).join(", ")}`,
        undefined,
        "ids",
      );
    }
    return undefined;
  }

  #inConversation(conversation: ConversationId, user: UserId): MaybePromise<boolean> {
    if (conversation.startsWith("g:")) {
      return this.#inGroupConversation(conversation, user);
    }
    return dmPeer(conversation, user) !== undefined;
  }

  async #inGroupConversation(conversation: ConversationId, user: UserId): Promise<boolean> {
    const groups = this.#groups;
    if (!groups) return false;
    try {
      return await groups.isMember(conversation.slice(2) as GroupId, user);
    } catch {
      return false;
    }
  }

  /** Routes a volatile `typing` frame to the peer's (or group's) connected devices; never stored or queued. */
  async typing(sender: Sender, frame: ClientFrameOf<"typing">): Promise<ErrorFrame | undefined> {
    const target = frame.to as Target;
    if ("group" in target && !(await this.isMember(target.group, sender.userId))) {
      return errorFrame(
        "not_group_member",
        "only members may type in a group",
        undefined,
        "to.group",
      );
    }
    if ("user" in target && !(await this.sharesChat(sender.userId, target.user))) return undefined;
    await this.relayTyping({
      type: "typing",
      from: sender.userId,
      to: frame.to,
      conversation:
        "user" in target
          ? directConversation(sender.userId, target.user)
          : groupConversation(target.group),
      state: frame.state,
    });
    return undefined;
  }

  /** Sends a server `typing` frame to its target's connected devices (a group's: all but the typist). */
  async relayTyping(frame: ServerFrameOf<"typing">): Promise<void> {
    const target = frame.to as Target;
    if ("user" in target) {
      await this.#toUser(target.user, frame);
      return;
    }
    const members = (await this.#groups?.members(target.group).catch(() => [])) ?? [];
    const sessions = await this.directory.lookupMany(members.filter((u) => u !== frame.from));
    await this.#publishToSessions([...sessions.values()].flat(), frame);
  }

  /**
   * Whether two users share a 1:1 conversation: at least one message between them was
   * sequenced. Typing to a user outside one is dropped (no error: it tells nothing).
   */
  async sharesChat(a: UserId, b: UserId): Promise<boolean> {
    if (a === b) return true;
    return (await this.#sequences.current(directConversation(a, b))) > 0;
  }

  /** Whether a user is a member of a group (false without a group service or for an unknown group). */
  async isMember(group: GroupId, user: UserId): Promise<boolean> {
    return (await this.#groups?.isMember(group, user).catch(() => false)) ?? false;
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

  /** Sends `frame` to sessions, one packet per node; answers at once when every session is local. */
  #publishToSessions(sessions: readonly Session[], frame: ServerFrame): MaybePromise<void> {
    if (sessions.length === 0) return;
    const first = sessions[0]!.nodeId;
    if (first === this.nodeId && sessions.every((s) => s.nodeId === first)) {
      this.#onPacket({ kind: "frames", to: sessions.map((s) => s.sessionId), frame });
      return;
    }
    const byNode = new Map<NodeId, SessionId[]>();
    for (const s of sessions) {
      let list = byNode.get(s.nodeId);
      if (!list) {
        list = [];
        byNode.set(s.nodeId, list);
      }
      list.push(s.sessionId);
    }
    const sends: Promise<void>[] = [];
    for (const [node, to] of byNode) sends.push(this.#publish(node, { kind: "frames", to, frame }));
    return Promise.all(sends).then(() => undefined);
  }

  #publish(node: NodeId, packet: BusPacket): Promise<void> {
    if (node === this.nodeId) {
      this.#onPacket(packet);
      return Promise.resolve();
    }
    return this.bus.publish(node, packet).catch((cause: unknown) => {
      // The bus may lose packets; the outbox redelivers. Report, never throw at the caller.
      this.emit(
        "error",
        new RelayError("store_unavailable", `publish to ${node} failed`, { cause }),
      );
    });
  }

  #onPacket(packet: BusPacket): void {
    if (packet.kind === "frames") {
      for (const sink of this.#sinks) sink(packet.to, packet.frame);
      return;
    }
    const data = packet.data as {
      id?: string;
      ok?: boolean;
      body?: unknown;
      code?: string;
      message?: string;
    };
    if (packet.op === REPLY) {
      const waiting = data.id === undefined ? undefined : this.#requests.get(data.id);
      if (!waiting) return;
      this.#requests.delete(data.id!);
      this.#clock.clear(waiting.timer);
      if (data.ok) waiting.resolve(data.body);
      else
        waiting.reject(new RelayError(asCode(data.code), data.message ?? "remote request failed"));
      return;
    }
    const handler = this.#handlers.get(packet.op);
    if (!handler || data.id === undefined) return;
    const id = data.id;
    handler(data.body, packet.from)
      .then(
        (body) => ({ id, ok: true, body }),
        (e: unknown) => ({
          id,
          ok: false,
          code: isRelayError(e) ? e.code : "internal",
          message: e instanceof Error ? e.message : String(e),
        }),
      )
      .then((reply) =>
        this.#publish(packet.from, { kind: "control", from: this.nodeId, op: REPLY, data: reply }),
      );
  }

  /**
   * Serves a node-to-node request `op` (group forwarding, hand-over). The handler's result
   * (plain JSON data) goes back to the caller; a thrown RelayError keeps its code.
   */
  handle(op: string, handler: ControlHandler): void {
    if (op === REPLY) throw new RelayError("invalid_option", `Router: \`${op}\` is reserved`);
    this.#handlers.set(op, handler);
  }

  /**
   * Asks another node (or this one) to run `op` with `body`, over the NodeBus. Rejects with
   * `timeout` when no answer comes within `timeoutMs` (the bus may lose packets).
   */
  request(node: NodeId, op: string, body: unknown, timeoutMs = 5000): Promise<unknown> {
    if (node === this.nodeId) {
      const handler = this.#handlers.get(op);
      if (!handler) return Promise.reject(new RelayError("internal", `no handler for \`${op}\``));
      return handler(body, this.nodeId);
    }
    const id = this.#ids.next("rq");
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#requests.delete(id);
        reject(new RelayError("timeout", `no answer from ${node} to \`${op}\` in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#requests.set(id, { resolve, reject, timer });
      this.#publish(node, { kind: "control", from: this.nodeId, op, data: { id, body } });
    });
  }

  #transmit(device: DeviceKey, envelope: Envelope): void {
    // Consecutive transmissions of one envelope (a fan-out) share a run: one packet per node.
    let run = this.#lastRun;
    if (run === undefined || run.envelope !== envelope) {
      run = { envelope, byNode: new Map(), node: undefined, to: NO_SESSION_IDS, devices: [] };
      this.#runs.push(run);
      this.#lastRun = run;
    }
    if (this.#live) {
      // Just asked by the outbox (a message being accepted): the directory's live view of
      // the device's sessions. Otherwise read at the flush.
      if (device === this.#askedDevice) addSessions(run, this.#askedSessions);
      else run.devices.push(device);
    } else {
      // The first transmission of a message being accepted knows its sessions already.
      const route = this.#routes.get(envelope.id);
      if (route === undefined) {
        this.#unresolved++;
        run.devices.push(device);
      } else addSessions(run, route.get(device) ?? NO_SESSIONS);
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flushTransmits());
    }
  }

  /**
   * Sends every pending transmit, one packet per (node, run of one envelope), in the order
   * they came, so a session's messages never overtake each other. With a directory that
   * answers per device at once, the sessions are read now. Otherwise a batch whose transmits
   * all know their sessions goes out now; one with retries or reconnect sends (no route)
   * waits for one directory lookup, and every later batch waits behind it.
   */
  #flushTransmits(): void {
    this.#flushScheduled = false;
    const runs = this.#runs;
    if (runs.length === 0) return;
    this.#runs = [];
    this.#lastRun = undefined;
    this.#askedDevice = undefined;
    this.#askedSessions = NO_SESSIONS;
    const unresolved = this.#unresolved;
    this.#unresolved = 0;
    if (this.#lookups === 0 && unresolved === 0) {
      this.#sendRuns(runs, undefined);
      return;
    }
    this.#lookups++;
    const run = () => {
      const users = new Set<UserId>();
      for (const r of runs) {
        for (const d of r.devices) users.add(splitDeviceKey(d).userId);
      }
      if (users.size === 0) return this.#sendRuns(runs, undefined);
      return andThen(this.directory.lookupMany([...users]), (found) => this.#sendRuns(runs, found));
    };
    // `then` turns a port that throws at once into a rejection: reported, never thrown.
    this.#lookupChain = this.#lookupChain
      .then(run)
      .catch((cause: unknown) => this.#transmitFailed(cause))
      .finally(() => {
        this.#lookups--;
      });
  }

  /** Sends each run as one packet per node, its sessions read live, known, or found in `looked`. */
  #sendRuns(
    runs: readonly Run[],
    looked: ReadonlyMap<UserId, readonly Session[]> | undefined,
  ): void {
    const live = this.#live;
    for (const run of runs) {
      try {
        const devices = run.devices;
        for (let i = 0; i < devices.length; i++) {
          let found: readonly Session[];
          if (live) found = live.lookupDeviceSync!(devices[i]!);
          else if (looked) {
            const { userId: u, deviceId: d } = splitDeviceKey(devices[i]!);
            found = (looked.get(u) ?? NO_SESSIONS).filter((s) => s.deviceId === d);
          } else found = NO_SESSIONS;
          addSessions(run, found);
        }
        const byNode = run.byNode;
        if (byNode.size === 0) continue;
        const frame = messageFrame(run.envelope);
        for (const [n, list] of byNode) {
          void this.#publish(n, { kind: "frames", to: list, frame });
        }
      } catch (cause) {
        this.#transmitFailed(cause);
      }
    }
  }

  /** A transmission failed on the way (the outbox redelivers it): report it. */
  #transmitFailed(cause: unknown): void {
    this.emit("error", new RelayError("internal", "transmit failed", { cause }));
  }

  #onFailed(envelope: Envelope, device: DeviceKey, reason: FailReason): void {
    this.emit("failed", envelope, device, reason);
    // The tracker sends the sender one `failed` per message; when it no longer tracks the
    // message (released or never tracked) or its store fails, tell the sender directly:
    // nothing fails silently.
    const direct = () =>
      this.#notify(envelope.from, {
        type: "receipt",
        status: "failed",
        ids: [envelope.id],
        clientId: envelope.clientId,
        reason,
        ts: this.#clock.now(),
      });
    // A promise whatever the store: a synchronous throw becomes a rejection, handled below.
    // Not when the tracker knows better: a device that had it (`illegal_transition`) or a copy
    // on the sender's own device (`recipient_unknown`) fails nothing for the sender.
    const tell = (r: FailedResult) =>
      r.error === "unknown_message" ||
      (r.error === "recipient_unknown" && splitDeviceKey(device).userId !== envelope.from);
    new Promise<FailedResult>((resolve) =>
      resolve(this.receipts.failed(envelope.id, device, reason)),
    )
      .then(
        (r) => (tell(r) ? direct() : undefined),
        (cause: unknown) => {
          this.#report(cause);
          return direct();
        },
      )
      .catch((cause: unknown) => this.#report(cause));
  }

  /** A device stopped acking: its sessions' nodes are told to close them (see `unresponsive`). */
  #onUnresponsive(device: DeviceKey): void {
    const { userId, deviceId } = splitDeviceKey(device);
    Promise.resolve(this.directory.lookup(userId))
      .then((sessions) => {
        const byNode = new Map<NodeId, SessionId[]>();
        for (const s of sessions) {
          if (s.deviceId !== deviceId) continue;
          const list = byNode.get(s.nodeId);
          if (list) list.push(s.sessionId);
          else byNode.set(s.nodeId, [s.sessionId]);
        }
        for (const [node, list] of byNode) {
          if (node === this.nodeId) this.emit("unresponsive", list);
          // A lost request is asked again: the outbox repeats it while the device stays silent.
          else this.request(node, UNRESPONSIVE, { sessions: list }).catch(() => {});
        }
      })
      .catch((cause: unknown) => this.#report(cause));
  }

  #report(cause: unknown): void {
    this.emit(
      "error",
      isRelayError(cause) ? cause : new RelayError("internal", "routing step failed", { cause }),
    );
  }

  /** Unsubscribes from the bus and stops the outbox's and the tracker's timers. */
  async close(): Promise<void> {
    this.stale?.close();
    for (const [id, waiting] of this.#requests) {
      this.#clock.clear(waiting.timer);
      waiting.reject(new RelayError("closed", "the router closed before an answer came"));
      this.#requests.delete(id);
    }
    await this.#unsubscribe?.();
    await this.outbox.close();
    this.receipts.close();
  }
}

const NO_SESSIONS: readonly Session[] = Object.freeze([]);
/** A run's last list before it has one (never pushed to: the first session sets a list). */
const NO_SESSION_IDS: SessionId[] = [];
const TRACK_DISTINCT = Object.freeze({ distinct: true });
const NO_TRACK_OPTIONS = Object.freeze({});
/** (Group, sending device) pairs whose recipient list a router keeps at once (see `#groupRecipients`). */
const RECIPIENT_CACHE_MAX = 1024;

/** Adds a device's sessions to a run's per-node lists. */
function addSessions(run: Run, found: readonly Session[]): void {
  for (let j = 0; j < found.length; j++) {
    const s = found[j]!;
    if (s.nodeId !== run.node) {
      run.node = s.nodeId;
      let list = run.byNode.get(s.nodeId);
      if (!list) {
        list = [];
        run.byNode.set(s.nodeId, list);
      }
      run.to = list;
    }
    run.to.push(s.sessionId);
  }
}

/** Consecutive transmissions of one envelope, waiting for the flush. */
interface Run {
  readonly envelope: Envelope;
  /**
   * The sessions to send it to, by node: those known when it was transmitted (the route of a
   * message being accepted, or the directory's live view the outbox just asked for) at once,
   * the others at the flush.
   */
  readonly byNode: Map<NodeId, SessionId[]>;
  /** The node added to last, and its list (a fan-out's devices come in runs of one node). */
  node: NodeId | undefined;
  to: SessionId[];
  /** Devices whose sessions are read at the flush (a directory that answers per device) or looked up. */
  readonly devices: DeviceKey[];
}

/** The devices of `users` (their device lists, aligned), but the sending device. */
function recipientKeys(
  users: readonly UserId[],
  lists: readonly (readonly DeviceId[])[],
  sender: Sender | undefined,
): DeviceKey[] {
  const out: DeviceKey[] = [];
  for (let i = 0; i < users.length; i++) {
    const u = users[i]!;
    for (const d of lists[i]!) {
      if (sender && u === sender.userId && d === sender.deviceId) continue;
      out.push(deviceKey(u, d));
    }
  }
  return out;
}

/** The device keys of `users` (aligned lists), but `own` (the sending device of `sender`). */
/** Whether two lists hold the same items in the same order. */
function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function joinKeys(
  users: readonly UserId[],
  lists: readonly (readonly DeviceKey[])[],
  sender: UserId | undefined,
  own: DeviceKey | undefined,
): DeviceKey[] {
  const out: DeviceKey[] = [];
  for (let i = 0; i < users.length; i++) {
    const list = lists[i]!;
    if (users[i] === sender) {
      for (const k of list) if (k !== own) out.push(k);
    } else {
      for (let j = 0; j < list.length; j++) out.push(list[j]!);
    }
  }
  return out;
}

/** The other user of a 1:1 conversation id, if `me` is in it. */
function dmPeer(conversation: ConversationId, me: UserId): UserId | undefined {
  const pair = directPeers(conversation);
  if (pair === undefined) return undefined;
  if (pair[0] === me) return pair[1];
  if (pair[1] === me) return pair[0];
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

function sentFrame(
  clientId: ClientMessageId,
  conversation: ConversationId,
  info: SentRecord,
): ServerFrame {
  return {
    type: "receipt",
    status: "sent",
    clientId,
    id: info.messageId,
    conversation,
    seq: info.seq,
    ts: info.ts,
  };
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
