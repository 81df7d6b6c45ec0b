import type { ClientMessageId, DeviceKey, MessageId } from "../../core/index.js";
import type { AppendResult, QueuedMessage, QueueStore, SentRecord } from "../../queue/index.js";

/**
 * A RedisNode's view of the shared queue store: every call goes to the store, plus two
 * shortcuts that let the node relay an accepted message to the node holding its recipient
 * without that node reading it back from Redis.
 * - {@link appended}: the entry an append of this node just stored (for the bus packet).
 * - {@link primed}: entries a bus packet carried, returned instead of a read by a `list` of
 *   that device made synchronously inside `fn` (the start of a `recover` of it), so it holds
 *   them at once. Any later `list` reads the store, which stays the truth; anything a packet
 *   missed is loaded by the node's resync.
 */
export class RelayQueueStore implements QueueStore {
  readonly #inner: QueueStore;
  readonly #appended = new Map<MessageId, QueuedMessage>();
  readonly #primed = new Map<DeviceKey, QueuedMessage[]>();

  constructor(inner: QueueStore) {
    this.#inner = inner;
  }

  /** Takes the entry stored for `id` by an append through this view (once). */
  appended(id: MessageId): QueuedMessage | undefined {
    const m = this.#appended.get(id);
    this.#appended.delete(id);
    return m;
  }

  /**
   * Runs `fn`; a `list(device)` it makes before returning (synchronously) gets `messages`
   * without reading the store. Once `fn` returns, `list` reads the store again.
   */
  primed<T>(device: DeviceKey, messages: readonly QueuedMessage[], fn: () => T): T {
    this.#primed.set(device, [...messages]);
    try {
      return fn();
    } finally {
      this.#primed.delete(device);
    }
  }

  async append(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    dedupeUntil?: number,
    fresh?: boolean,
  ): Promise<AppendResult> {
    const r = await this.#inner.append(message, recipients, maxPerDevice, dedupeUntil, fresh);
    if (r.ok) this.#appended.set(message.envelope.id, message);
    return r;
  }

  list(device: DeviceKey): Promise<readonly QueuedMessage[]> {
    const primed = this.#primed.get(device);
    if (primed) {
      this.#primed.delete(device);
      return Promise.resolve(primed);
    }
    return this.#inner.list(device);
  }

  count(device: DeviceKey): Promise<number> {
    return this.#inner.count(device);
  }

  devices(): Promise<readonly DeviceKey[]> {
    return this.#inner.devices();
  }

  remove(device: DeviceKey, ids: readonly MessageId[]): Promise<number> {
    return this.#inner.remove(device, ids);
  }

  putSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): Promise<SentRecord> {
    return this.#inner.putSent(sender, clientId, record, expiresAt, now);
  }

  getSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    now: number,
  ): Promise<SentRecord | undefined> {
    return this.#inner.getSent(sender, clientId, now);
  }
}
