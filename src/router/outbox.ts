import type { ClientMessageId, DeviceKey, MessageId } from "../core/ids.js";
import type { Envelope } from "../core/types.js";
import {
  DeliveryQueue,
  type DeliveryQueueOptions,
  type EnqueueOptions,
  type EnqueueResult,
  type FailedFn,
  type FailReason,
  type SentRecord,
  type TransmitFn,
  type UnresponsiveFn,
} from "../queue/index.js";

/** How an outbox reaches devices and reports failures: provided by the router. */
export interface OutboxHooks {
  /** Pushes a message towards a device's current session. It may be lost; only an ack clears it. */
  readonly transmit: TransmitFn;
  /** A delivery was given up: the router tells the sender. Called once per (message, device). */
  readonly onFailed: FailedFn;
  /** A connected device stopped acking: the router has its connections closed. */
  readonly onUnresponsive?: UnresponsiveFn;
}

/**
 * The seam between the router and delivery: every accepted message waits here per recipient
 * device until that device acks it. The {@link DeliveryQueue} implements it (retries,
 * expiry, priority lanes, load shedding); an application may plug in its own.
 * @remarks It decides when to transmit, not where: the router resolves sessions.
 */
export interface Outbox {
  /**
   * Stores one entry per recipient device, all or nothing, records (sender, client id) for
   * {@link checkDuplicate}, and transmits to the devices that are online.
   */
  enqueue(
    envelope: Envelope,
    recipients: readonly DeviceKey[],
    options?: EnqueueOptions,
  ): Promise<EnqueueResult>;
  /** The device has these messages: their entries go. */
  ack(device: DeviceKey, ids: readonly MessageId[]): Promise<unknown>;
  /** The device connected: send it everything it has not acked, in order. */
  deviceConnected(device: DeviceKey): void | Promise<void>;
  /** The device disconnected: hold its entries until it returns. */
  deviceDisconnected(device: DeviceKey): void | Promise<void>;
  /** The original send, if (sender, clientId) was accepted recently. */
  /** Optional: fails a device's queued entries to their senders (the device was unlinked). */
  dropDevice?(device: DeviceKey, reason: FailReason): number | Promise<number>;
  checkDuplicate(sender: DeviceKey, clientId: ClientMessageId): Promise<SentRecord | undefined>;
  /** Stops timers. */
  close(): void | Promise<void>;
  /**
   * Present when every call can be answered synchronously (an in-memory store); the router
   * then skips the promises.
   */
  readonly sync?: SyncOutbox | undefined;
}

/** The synchronous face of an outbox whose store answers in-process (the memory store): the router's fast path. */
export interface SyncOutbox {
  /** {@link Outbox.enqueue}, answered before returning. */
  enqueueSync(
    envelope: Envelope,
    recipients: readonly DeviceKey[],
    options?: EnqueueOptions,
  ): EnqueueResult;
  /** {@link Outbox.ack}, answered before returning: how many entries were removed. */
  ackSync(device: DeviceKey, ids: readonly MessageId[]): number;
  /** {@link Outbox.checkDuplicate}, answered before returning. */
  checkDuplicateSync(sender: DeviceKey, clientId: ClientMessageId): SentRecord | undefined;
}

/** Builds an outbox around the router's hooks. */
export type OutboxFactory = (hooks: OutboxHooks) => Outbox;

/** An {@link OutboxFactory} for a {@link DeliveryQueue} with the given options. */
export function deliveryQueue(
  options: Omit<DeliveryQueueOptions, "transmit" | "onFailed" | "onUnresponsive"> = {},
): OutboxFactory {
  return (hooks) => new DeliveryQueue({ ...options, ...hooks });
}
