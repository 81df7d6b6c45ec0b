import type {
  ClientMessageId,
  ConversationId,
  DeviceKey,
  Envelope,
  MessageId,
  UserId,
} from "../core/index.js";

/** One accepted message waiting for recipient devices, as the store keeps it. */
export interface QueuedMessage {
  readonly envelope: Envelope;
  /** When the queue accepted it (Clock time). */
  readonly enqueuedAt: number;
  /** When it fails with `ttl_expired` if still unacked (Clock time). */
  readonly expiresAt: number;
}

/** What a send was answered with, kept for the dedupe window so a retried send gets the same answer. */
export interface SentRecord {
  readonly messageId: MessageId;
  readonly conversation: ConversationId;
  readonly seq: number;
  readonly ts: number;
}

/** The outcome of {@link QueueStore.append}: all stored, or nothing stored and which devices are full. */
export type AppendResult =
  | { readonly ok: true; readonly added: number }
  | { readonly ok: false; readonly full: readonly DeviceKey[] }
  /** With `dedupeUntil`: another message already holds a live record for (from, clientId). */
  | { readonly ok: false; readonly duplicate: SentRecord };

/**
 * Where the delivery queue keeps its entries (one per message and recipient device) and its
 * dedupe records, so a restarted node loses nothing.
 * @remarks Small on purpose, so Redis fits (a sorted set or stream per device, the envelope
 * once in a hash, `SET NX PX` for dedupe). It does not schedule, retry, expire or order by
 * lane: the queue does that in memory and rebuilds it from {@link QueueStore.devices} and
 * {@link QueueStore.list} after a restart. It does not keep attempt counts.
 */
export interface QueueStore {
  /**
   * Adds one entry per recipient device, all or nothing: when any device would hold more
   * than `maxPerDevice` entries, nothing is stored and the full devices are listed.
   * Idempotent per (device, message id): appending an entry again adds nothing.
   * With `dedupeUntil`, the same atomic step also does {@link QueueStore.putSent} for the
   * envelope's (from, clientId) with {@link sentRecordOf}, until that time (`now` = `enqueuedAt`);
   * when a live record of *another* message holds that key (the same send accepted
   * concurrently elsewhere), nothing is stored and that record is returned as `duplicate`.
   */
  append(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
  ): Promise<AppendResult>;
  /** A device's entries in append order (FIFO). */
  list(device: DeviceKey): Promise<readonly QueuedMessage[]>;
  /** How many entries a device has. */
  count(device: DeviceKey): Promise<number>;
  /** Every device with at least one entry. */
  devices(): Promise<readonly DeviceKey[]>;
  /** Removes a device's entries by message id; unknown ids are ignored. Returns how many went. */
  remove(device: DeviceKey, ids: readonly MessageId[]): Promise<number>;
  /**
   * Keeps `record` for (sender, client id) until `expiresAt`, unless a live record is already
   * there: the first write wins. Returns the record in force.
   */
  putSent(
    sender: UserId,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): Promise<SentRecord>;
  /** The live record for (sender, client id) at `now`, if any. */
  getSent(sender: UserId, clientId: ClientMessageId, now: number): Promise<SentRecord | undefined>;
}

/** The sent record of an envelope: what a retried send with its client id is answered with. */
export function sentRecordOf(envelope: Envelope): SentRecord {
  return {
    messageId: envelope.id,
    conversation: envelope.conversation,
    seq: envelope.seq,
    ts: envelope.ts,
  };
}

interface SentSlot {
  readonly sender: UserId;
  readonly clientId: ClientMessageId;
  readonly record: SentRecord;
  readonly expiresAt: number;
}

/**
 * The in-memory {@link QueueStore}: one process, nothing survives it.
 * @remarks Entries of a device sit in an insertion-ordered Map, so append, remove and count
 * are O(1). Dedupe records are swept lazily, oldest first.
 */
export class MemoryQueueStore implements QueueStore {
  readonly #byDevice = new Map<DeviceKey, Map<MessageId, QueuedMessage>>();
  /** How many device maps are empty (kept for reuse). */
  #empty = 0;
  readonly #sent = new Map<UserId, Map<ClientMessageId, SentSlot>>();
  /** Every slot in insertion order, for the sweep. */
  #sentOrder: SentSlot[] = [];
  #sentHead = 0;
  #sweptAt = Number.NEGATIVE_INFINITY;

  async append(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
  ): Promise<AppendResult> {
    return this.appendSync(message, recipients, maxPerDevice, dedupeUntil);
  }

  /** Synchronous {@link append}, for hot paths inside one process. */
  appendSync(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
  ): AppendResult {
    const id = message.envelope.id;
    if (dedupeUntil !== undefined) {
      const env = message.envelope;
      const slot = this.#sent.get(env.from)?.get(env.clientId);
      if (slot && slot.expiresAt > message.enqueuedAt && slot.record.messageId !== id) {
        return { ok: false, duplicate: slot.record };
      }
    }
    let full: DeviceKey[] | undefined;
    for (const d of recipients) {
      const m = this.#byDevice.get(d);
      const size = m ? (m.has(id) ? 0 : m.size + 1) : 1;
      if (size > maxPerDevice) {
        full ??= [];
        full.push(d);
      }
    }
    if (full) return { ok: false, full };
    let added = 0;
    for (const d of recipients) {
      let m = this.#byDevice.get(d);
      if (!m) {
        m = new Map();
        this.#byDevice.set(d, m);
      } else if (m.size === 0) {
        this.#empty--;
      }
      if (m.has(id)) continue;
      m.set(id, message);
      added++;
    }
    if (dedupeUntil !== undefined) {
      const env = message.envelope;
      this.putSentSync(env.from, env.clientId, sentRecordOf(env), dedupeUntil, message.enqueuedAt);
    }
    return { ok: true, added };
  }

  #dropEmpty(): void {
    for (const [d, m] of this.#byDevice) if (m.size === 0) this.#byDevice.delete(d);
    this.#empty = 0;
  }

  async list(device: DeviceKey): Promise<readonly QueuedMessage[]> {
    return [...(this.#byDevice.get(device)?.values() ?? [])];
  }

  async count(device: DeviceKey): Promise<number> {
    return this.#byDevice.get(device)?.size ?? 0;
  }

  async devices(): Promise<readonly DeviceKey[]> {
    const out: DeviceKey[] = [];
    for (const [d, m] of this.#byDevice) if (m.size > 0) out.push(d);
    return out;
  }

  async remove(device: DeviceKey, ids: readonly MessageId[]): Promise<number> {
    return this.removeSync(device, ids);
  }

  /** Synchronous {@link remove}. */
  removeSync(device: DeviceKey, ids: readonly MessageId[]): number {
    const m = this.#byDevice.get(device);
    if (!m) return 0;
    let n = 0;
    for (const id of ids) if (m.delete(id)) n++;
    if (n > 0 && m.size === 0) {
      // Kept for reuse (an online device empties and refills constantly); swept in bulk.
      this.#empty++;
      if (this.#empty > 1024 && this.#empty * 2 > this.#byDevice.size) this.#dropEmpty();
    }
    return n;
  }

  async putSent(
    sender: UserId,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): Promise<SentRecord> {
    return this.putSentSync(sender, clientId, record, expiresAt, now);
  }

  /** Synchronous {@link putSent}. */
  putSentSync(
    sender: UserId,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): SentRecord {
    const live = this.#sent.get(sender)?.get(clientId);
    if (live && live.expiresAt > now) return live.record;
    this.#sweep(now);
    let bySender = this.#sent.get(sender);
    if (!bySender) {
      bySender = new Map();
      this.#sent.set(sender, bySender);
    }
    const slot: SentSlot = { sender, clientId, record, expiresAt };
    bySender.set(clientId, slot);
    this.#sentOrder.push(slot);
    return record;
  }

  async getSent(
    sender: UserId,
    clientId: ClientMessageId,
    now: number,
  ): Promise<SentRecord | undefined> {
    const slot = this.#sent.get(sender)?.get(clientId);
    return slot && slot.expiresAt > now ? slot.record : undefined;
  }

  /** How many entries are stored, over all devices. */
  get size(): number {
    let n = 0;
    for (const m of this.#byDevice.values()) n += m.size;
    return n;
  }

  #sweep(now: number): void {
    // At most once per second of store time; oldest first, stopping at the first live one
    // (the queue's dedupe window is constant, so insertion order is expiry order).
    if (now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    const order = this.#sentOrder;
    let i = this.#sentHead;
    for (; i < order.length; i++) {
      const slot = order[i]!;
      if (slot.expiresAt > now) break;
      const bySender = this.#sent.get(slot.sender);
      if (bySender?.get(slot.clientId) === slot) {
        bySender.delete(slot.clientId);
        if (bySender.size === 0) this.#sent.delete(slot.sender);
      }
    }
    this.#sentHead = i;
    if (i > 1024 && i * 2 > order.length) {
      this.#sentOrder = order.slice(i);
      this.#sentHead = 0;
    }
  }
}
