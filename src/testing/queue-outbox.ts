import type { ClientMessageId, DeviceKey, MessageId, UserId } from "../core/ids.js";
import type { Envelope } from "../core/types.js";
import { DeliveryQueue, type DeliveryQueueOptions } from "../queue/index.js";
import type {
  EnqueueResult,
  Outbox,
  OutboxFactory,
  OutboxHooks,
  SentInfo,
} from "../router/index.js";

/** A {@link DeliveryQueue} seen through the router's {@link Outbox} seam. */
export interface QueueOutbox extends Outbox {
  /** The queue underneath (stats, `recover()`, load signal). */
  readonly queue: DeliveryQueue;
}

/** Options of {@link queueOutbox}: the queue's own, minus the callbacks the router provides. */
export type QueueOutboxOptions = Omit<DeliveryQueueOptions, "transmit" | "onFailed">;

/**
 * Adapts a {@link DeliveryQueue} to the router's {@link OutboxFactory}: the router's
 * `transmit` and `onFailed` hooks become the queue's callbacks.
 * @remarks The queue remembers (sender, client id) itself when it enqueues, so the
 * outbox's `remember` has nothing left to do.
 * @example new Router({ outbox: queueOutbox({ store: sharedStore, clock }) })
 */
export function queueOutbox(options: QueueOutboxOptions = {}): OutboxFactory {
  return (hooks: OutboxHooks) => wrapQueue(new DeliveryQueue({ ...options, ...queueHooks(hooks) }));
}

function queueHooks(hooks: OutboxHooks): Pick<DeliveryQueueOptions, "transmit" | "onFailed"> {
  return {
    transmit: (device, envelope, attempt) => hooks.transmit(device, envelope, attempt),
    onFailed: (envelope, device, reason) => hooks.onFailed(envelope, device, reason),
  };
}

/** Wraps an existing queue as an {@link Outbox}. */
export function wrapQueue(queue: DeliveryQueue): QueueOutbox {
  return {
    queue,
    async enqueue(
      envelope: Envelope,
      recipients: readonly DeviceKey[],
      ctx: { online(device: DeviceKey): boolean },
    ): Promise<EnqueueResult> {
      const r = await queue.enqueue(envelope, recipients, { online: (d) => ctx.online(d) });
      return r.ok ? { ok: true } : { ok: false, code: r.code };
    },
    async ack(device: DeviceKey, ids: readonly MessageId[]): Promise<void> {
      await queue.ack(device, ids);
    },
    async deviceConnected(device: DeviceKey): Promise<void> {
      queue.deviceConnected(device);
    },
    async deviceDisconnected(device: DeviceKey): Promise<void> {
      queue.deviceDisconnected(device);
    },
    async checkDuplicate(sender: UserId, clientId: ClientMessageId): Promise<SentInfo | undefined> {
      const r = await queue.checkDuplicate(sender, clientId);
      return r && { id: r.messageId, seq: r.seq, ts: r.ts };
    },
    async remember(): Promise<void> {
      // The queue remembered (sender, client id) with its conversation when it enqueued.
    },
    async close(): Promise<void> {
      queue.close();
    },
  };
}
