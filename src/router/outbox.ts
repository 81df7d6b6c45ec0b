import type { ClientMessageId, DeviceKey, MessageId, UserId } from "../core/ids.js";
import type { Envelope } from "../core/types.js";

/** What the router learns from an earlier accepted send with the same client id. */
export interface SentInfo {
  readonly id: MessageId;
  readonly seq: number;
  readonly ts: number;
}

/** Why a delivery was given up. */
export type FailReason = "ttl_expired" | "attempts_exhausted";

/** How an outbox reaches devices and reports failures: provided by the router. */
export interface OutboxHooks {
  /** Pushes a message towards a device's current session. It may be lost; only an ack clears it. */
  transmit(device: DeviceKey, envelope: Envelope, attempt: number): void;
  /** A delivery was given up: the router tells the sender. Called once per (message, device). */
  onFailed(envelope: Envelope, device: DeviceKey, reason: FailReason): void;
}

/** The outcome of {@link Outbox.enqueue}. */
export type EnqueueResult = { readonly ok: true } | { readonly ok: false; readonly code: "recipient_queue_full" };

/**
 * The seam between the router and delivery: every accepted message waits here per recipient
 * device until that device acks it. {@link MemoryOutbox} is the simple version;
 * `DeliveryQueue` adds retries, expiry, priority lanes and load shedding.
 * @remarks It decides when to transmit, not where: the router resolves sessions.
 */
export interface Outbox {
  /** Stores one entry per recipient device and transmits to those online. Refuses all-or-nothing. */
  enqueue(
    envelope: Envelope,
    recipients: readonly DeviceKey[],
    ctx: { online(device: DeviceKey): boolean },
  ): Promise<EnqueueResult>;
  /** The device has these messages: their entries go. */
  ack(device: DeviceKey, ids: readonly MessageId[]): Promise<void>;
  /** The device connected: send it everything it has not acked, in order. */
  deviceConnected(device: DeviceKey): Promise<void>;
  /** The device disconnected: hold its entries until it returns. */
  deviceDisconnected(device: DeviceKey): Promise<void>;
  /** The original send, if (sender, clientId) was accepted recently. */
  checkDuplicate(sender: UserId, clientId: ClientMessageId): Promise<SentInfo | undefined>;
  /** Remembers an accepted send for {@link checkDuplicate}. */
  remember(sender: UserId, clientId: ClientMessageId, info: SentInfo): Promise<void>;
  /** Stops timers. */
  close(): Promise<void>;
}

/** Builds an outbox around the router's hooks. */
export type OutboxFactory = (hooks: OutboxHooks) => Outbox;

/**
 * The simple in-memory {@link Outbox}: FIFO per device, transmit on enqueue and on connect,
 * drop on ack. No retries and no expiry (that is the DeliveryQueue's job); dedupe is kept
 * for the last `dedupeSize` sends.
 */
export class MemoryOutbox implements Outbox {
  readonly #hooks: OutboxHooks;
  readonly #pending = new Map<DeviceKey, Map<MessageId, Envelope>>();
  readonly #sent = new Map<string, SentInfo>();
  /** Eviction order as a ring: deleting a Map's first key over and over is O(n) in V8. */
  readonly #ring: (string | undefined)[];
  #ringAt = 0;

  constructor(hooks: OutboxHooks, opts: { dedupeSize?: number } = {}) {
    this.#hooks = hooks;
    this.#ring = new Array<string | undefined>(opts.dedupeSize ?? 100_000);
  }

  async enqueue(
    envelope: Envelope,
    recipients: readonly DeviceKey[],
    ctx: { online(device: DeviceKey): boolean },
  ): Promise<EnqueueResult> {
    for (const device of recipients) {
      let q = this.#pending.get(device);
      if (!q) this.#pending.set(device, (q = new Map()));
      q.set(envelope.id, envelope);
      if (ctx.online(device)) this.#hooks.transmit(device, envelope, 1);
    }
    return { ok: true };
  }

  async ack(device: DeviceKey, ids: readonly MessageId[]): Promise<void> {
    const q = this.#pending.get(device);
    if (!q) return;
    for (const id of ids) q.delete(id);
    if (q.size === 0) this.#pending.delete(device);
  }

  async deviceConnected(device: DeviceKey): Promise<void> {
    const q = this.#pending.get(device);
    if (!q) return;
    for (const envelope of q.values()) this.#hooks.transmit(device, envelope, 1);
  }

  async deviceDisconnected(_device: DeviceKey): Promise<void> {}

  async checkDuplicate(sender: UserId, clientId: ClientMessageId): Promise<SentInfo | undefined> {
    return this.#sent.get(`${sender}\u0000${clientId}`);
  }

  async remember(sender: UserId, clientId: ClientMessageId, info: SentInfo): Promise<void> {
    const key = `${sender}\u0000${clientId}`;
    if (this.#sent.has(key)) return;
    const evict = this.#ring[this.#ringAt];
    if (evict !== undefined) this.#sent.delete(evict);
    this.#ring[this.#ringAt] = key;
    this.#ringAt = (this.#ringAt + 1) % this.#ring.length;
    this.#sent.set(key, info);
  }

  /** Entries waiting for a device, oldest first. */
  pendingFor(device: DeviceKey): readonly Envelope[] {
    return [...(this.#pending.get(device)?.values() ?? [])];
  }

  async close(): Promise<void> {}
}
