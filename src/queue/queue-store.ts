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
   * `fresh` says the message's id was minted just now, so no device holds it yet: a store
   * may skip looking for it (an optimisation only; ignoring it is correct).
   */
  append(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
    fresh?: boolean,
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

/**
 * A {@link QueueStore} that can also answer in-process, before returning (the memory store).
 * The delivery queue then offers a synchronous fast path (`DeliveryQueue.sync`) that
 * costs no promise per call. Each method is its async namesake, answered at once.
 * @remarks A store doing I/O (Redis) does not implement it: the async methods stay the contract.
 */
export interface SyncQueueStore extends QueueStore {
  /** {@link QueueStore.append}, answered before returning. */
  appendSync(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
    fresh?: boolean,
  ): AppendResult;
  /** {@link QueueStore.remove}, answered before returning. */
  removeSync(device: DeviceKey, ids: readonly MessageId[]): number;
  /** {@link QueueStore.putSent}, answered before returning. */
  putSentSync(
    sender: UserId,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): SentRecord;
  /** {@link QueueStore.getSent}, answered before returning. */
  getSentSync(sender: UserId, clientId: ClientMessageId, now: number): SentRecord | undefined;
}

/** Whether `store` also answers synchronously (it has every {@link SyncQueueStore} method). */
export function isSyncQueueStore(store: QueueStore): store is SyncQueueStore {
  const s = store as Partial<SyncQueueStore>;
  return (
    typeof s.appendSync === "function" &&
    typeof s.removeSync === "function" &&
    typeof s.putSentSync === "function" &&
    typeof s.getSentSync === "function"
  );
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
 * A stored entry: the message and its id, one record per append that every device listed in
 * it shares (a 1,024-member group stores one record and 1,023 references to it).
 */
interface Held {
  readonly message: QueuedMessage;
  readonly id: MessageId;
}

/**
 * One device's entries in append order: an array while it is small, a Map once it grows.
 * Most devices hold one or two entries that come and go: a scan finds them at once, where a
 * Map that keeps filling and emptying pays a rehash each time it empties.
 */
type Slots = Held[] | Map<MessageId, Held>;

/** A device's entries become a Map above this many. */
const SLOTS_MAP_ABOVE = 16;

/** The answer to the common append (one new entry), shared: results are read-only. */
const ADDED_ONE: AppendResult = Object.freeze({ ok: true, added: 1 });

function sizeOf(slots: Slots): number {
  return Array.isArray(slots) ? slots.length : slots.size;
}

function holds(slots: Slots, id: MessageId): boolean {
  if (!Array.isArray(slots)) return slots.has(id);
  for (let i = 0; i < slots.length; i++) if (slots[i]!.id === id) return true;
  return false;
}

/**
 * The in-memory {@link QueueStore}: one process, nothing survives it.
 * @remarks Entries of a device sit in an array while few (acks come in order, so removal
 * takes the head) and in an insertion-ordered Map once many, so append, remove and count
 * stay O(1). The devices of one append share one record of the message. Dedupe records are
 * swept lazily, oldest first. It answers synchronously too ({@link SyncQueueStore}), which
 * gives the delivery queue its promise-free fast path.
 */
export class MemoryQueueStore implements SyncQueueStore {
  readonly #byDevice = new Map<DeviceKey, Slots>();
  /** How many devices have no entries (their slots kept for reuse). */
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
    fresh?: boolean,
  ): Promise<AppendResult> {
    return this.appendSync(message, recipients, maxPerDevice, dedupeUntil, fresh);
  }

  /** Synchronous {@link append}, for hot paths inside one process. */
  appendSync(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
    fresh = false,
  ): AppendResult {
    const env = message.envelope;
    const id = env.id;
    /** A live record of this very message: it stays (the first write wins). */
    let remembered = false;
    if (dedupeUntil !== undefined) {
      const slot = this.#sent.get(env.from)?.get(env.clientId);
      if (slot && slot.expiresAt > message.enqueuedAt) {
        if (slot.record.messageId !== id) return { ok: false, duplicate: slot.record };
        remembered = true;
      }
    }
    const added =
      recipients.length === 1
        ? this.#appendOne(message, recipients[0]!, maxPerDevice, fresh)
        : this.#appendAll(message, recipients, maxPerDevice, fresh);
    if (typeof added !== "number") return added;
    if (dedupeUntil !== undefined && !remembered) {
      this.#remember(env.from, env.clientId, sentRecordOf(env), dedupeUntil, message.enqueuedAt);
    }
    return added === 1 ? ADDED_ONE : { ok: true, added };
  }

  /** The common append: one recipient device (one lookup, no lists). */
  #appendOne(
    message: QueuedMessage,
    d: DeviceKey,
    maxPerDevice: number,
    fresh: boolean,
  ): number | AppendResult {
    const id = message.envelope.id;
    const slots = this.#byDevice.get(d);
    if (!slots) {
      if (maxPerDevice < 1) return { ok: false, full: [d] };
      this.#byDevice.set(d, [{ message, id }]);
      return 1;
    }
    const size = sizeOf(slots);
    if (!fresh && size > 0 && holds(slots, id)) return 0;
    if (size + 1 > maxPerDevice) return { ok: false, full: [d] };
    if (size === 0) this.#empty--;
    this.#add(d, slots, { message, id });
    return 1;
  }

  #appendAll(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    fresh: boolean,
  ): number | AppendResult {
    const id = message.envelope.id;
    const n = recipients.length;
    // Each device's entries, looked up once: `null` where the entry is there already.
    const found: (Slots | undefined | null)[] = new Array(n);
    let full: DeviceKey[] | undefined;
    for (let i = 0; i < n; i++) {
      const d = recipients[i]!;
      const slots = this.#byDevice.get(d);
      const size = slots ? sizeOf(slots) : 0;
      if (!fresh && size > 0 && holds(slots!, id)) {
        found[i] = null;
        continue;
      }
      found[i] = slots;
      if (size + 1 > maxPerDevice) {
        full ??= [];
        full.push(d);
      }
    }
    if (full) return { ok: false, full };
    const held: Held = { message, id };
    let added = 0;
    for (let i = 0; i < n; i++) {
      const slots = found[i];
      if (slots === null) continue;
      const d = recipients[i]!;
      // A device listed twice finds its own first append: skipped.
      if (slots === undefined) {
        if (this.#byDevice.has(d)) continue;
        this.#byDevice.set(d, [held]);
      } else if (Array.isArray(slots)) {
        // (An array that outgrew itself into a Map still ends with what was pushed last.)
        if (slots.length > 0 && slots[slots.length - 1] === held) continue;
        if (slots.length === 0) this.#empty--;
        this.#add(d, slots, held);
      } else {
        if (slots.get(id) === held) continue;
        this.#add(d, slots, held);
      }
      added++;
    }
    return added;
  }

  /** Appends to a device's entries, which become a Map when they outgrow an array. */
  #add(d: DeviceKey, slots: Slots, held: Held): void {
    if (!Array.isArray(slots)) {
      slots.set(held.id, held);
      return;
    }
    slots.push(held);
    if (slots.length > SLOTS_MAP_ABOVE) {
      this.#byDevice.set(d, new Map(slots.map((h) => [h.id, h])));
    }
  }

  #dropEmpty(): void {
    for (const [d, slots] of this.#byDevice) if (sizeOf(slots) === 0) this.#byDevice.delete(d);
    this.#empty = 0;
  }

  async list(device: DeviceKey): Promise<readonly QueuedMessage[]> {
    const slots = this.#byDevice.get(device);
    if (!slots) return [];
    const out: QueuedMessage[] = [];
    for (const h of slots.values()) out.push(h.message);
    return out;
  }

  async count(device: DeviceKey): Promise<number> {
    const slots = this.#byDevice.get(device);
    return slots ? sizeOf(slots) : 0;
  }

  async devices(): Promise<readonly DeviceKey[]> {
    const out: DeviceKey[] = [];
    for (const [d, slots] of this.#byDevice) if (sizeOf(slots) > 0) out.push(d);
    return out;
  }

  async remove(device: DeviceKey, ids: readonly MessageId[]): Promise<number> {
    return this.removeSync(device, ids);
  }

  /** Synchronous {@link remove}. */
  removeSync(device: DeviceKey, ids: readonly MessageId[]): number {
    const slots = this.#byDevice.get(device);
    if (!slots || sizeOf(slots) === 0) return 0;
    let n = 0;
    if (Array.isArray(slots)) {
      // Batched acks of the oldest entries, in order: one cut.
      let head = 0;
      while (head < ids.length && head < slots.length && slots[head]!.id === ids[head]) head++;
      if (head === 1) slots.shift();
      else if (head > 1) slots.splice(0, head);
      n = head;
      for (let k = head; k < ids.length; k++) {
        const id = ids[k]!;
        // Acks come mostly in order: the head.
        if (slots[0]?.id === id) {
          slots.shift();
          n++;
          continue;
        }
        for (let i = 1; i < slots.length; i++) {
          if (slots[i]!.id === id) {
            slots.splice(i, 1);
            n++;
            break;
          }
        }
      }
    } else {
      for (let k = 0; k < ids.length; k++) if (slots.delete(ids[k]!)) n++;
      // Drained: back to a (reused) array.
      if (slots.size === 0) this.#byDevice.set(device, []);
    }
    if (n > 0 && sizeOf(slots) === 0) {
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
    this.#remember(sender, clientId, record, expiresAt, now);
    return record;
  }

  /** Keeps `record` for (sender, client id): the caller found no live record there. */
  #remember(
    sender: UserId,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): void {
    this.#sweep(now);
    let bySender = this.#sent.get(sender);
    if (!bySender) {
      bySender = new Map();
      this.#sent.set(sender, bySender);
    }
    const slot: SentSlot = { sender, clientId, record, expiresAt };
    bySender.set(clientId, slot);
    this.#sentOrder.push(slot);
  }

  async getSent(
    sender: UserId,
    clientId: ClientMessageId,
    now: number,
  ): Promise<SentRecord | undefined> {
    return this.getSentSync(sender, clientId, now);
  }

  /** Synchronous {@link getSent}. */
  getSentSync(sender: UserId, clientId: ClientMessageId, now: number): SentRecord | undefined {
    const slot = this.#sent.get(sender)?.get(clientId);
    return slot && slot.expiresAt > now ? slot.record : undefined;
  }

  /** How many entries are stored, over all devices. */
  get size(): number {
    let n = 0;
    for (const slots of this.#byDevice.values()) n += sizeOf(slots);
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
