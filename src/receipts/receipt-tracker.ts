import { z } from "zod";
import {
  type Clock,
  type ConversationId,
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type Envelope,
  type GroupId,
  isPromiseLike,
  type MaybePromise,
  type MessageId,
  parseOptions,
  RelayError,
  splitDeviceKey,
  systemClock,
  type Timer,
  TypedEmitter,
  type UserId,
} from "../core/index.js";
import { andThen, drive, type Steps } from "../core/maybe.js";
import type { ServerReceiptFrame } from "../protocol/index.js";
import { MemoryReceiptStore } from "./memory-receipt-store.js";
import type {
  ReceiptMode,
  ReceiptRecord,
  ReceiptStore,
  ReceiptStoreSize,
  TrackedMessage,
  WatermarkAdvance,
} from "./receipt-store.js";
import { type ReceiptState, receiptRank, transition } from "./state.js";
import {
  effectiveState,
  groupStatus,
  recipientStatuses,
  userStatus,
  visibleStatus,
  type Watermark,
} from "./status.js";

/** How a group message's delivered/read ticks reach its sender. @default "none" */
export type { GroupReceiptPolicy } from "../core/types.js";

function closedError(): Promise<never> {
  return Promise.reject(new RelayError("closed", "ReceiptTracker is closed"));
}

/** Whether `reader`'s read receipts may be shown to `viewer`. */
type Show = (reader: UserId, viewer: UserId) => MaybePromise<boolean>;
const SHOW_ALL: Show = () => true;

import type { GroupReceiptPolicy } from "../core/types.js";

/** One recipient device, as the router resolved it at send time. */
export interface RecipientDevice {
  readonly userId: UserId;
  readonly deviceId: DeviceId;
}

/** Whether a user shares read receipts; may consult a settings store. */
export type ReadReceiptsSetting = (user: UserId) => boolean | Promise<boolean>;

/** Options of {@link ReceiptTracker}. */
export interface ReceiptTrackerOptions {
  /** @default systemClock */
  readonly clock?: Clock;
  /** @default a new MemoryReceiptStore */
  readonly store?: ReceiptStore;
  /** How long a receipt for a not-yet-tracked message waits for it, in ms. @default 5000 */
  readonly bufferMs?: number;
  /** Most buffered receipts; the oldest message's are dropped beyond. @default 10000 */
  readonly maxBuffered?: number;
  /** How long a message that never becomes final is tracked, in ms. @default 604800000 (7 days) */
  readonly retentionMs?: number;
  /** How often expired state is swept, in ms; 0 disables the timer (call `sweep`). @default 60000 */
  readonly sweepIntervalMs?: number;
  /** The group policy, global or per group. @default "none" */
  readonly groupPolicy?: GroupReceiptPolicy | ((group: GroupId) => GroupReceiptPolicy);
  /** Whether a user shares read receipts. @default every user does */
  readonly readReceipts?: ReadReceiptsSetting;
  /** WhatsApp's rule: a user who hides their read receipts does not see others' either. @default true */
  readonly reciprocal?: boolean;
  /**
   * Clamp a read watermark to the highest message one of the reader's devices has (delivered
   * or read), so it never covers a message accepted after it or not received. Turn it off
   * only where the caller clamps itself. @default true
   */
  readonly clampWatermarks?: boolean;
}

/** Per-message overrides for {@link ReceiptTracker.track}. */
export interface TrackOptions {
  /** The group policy for this message (groups only). */
  readonly policy?: GroupReceiptPolicy;
  /** Retention for this message, in ms. */
  readonly retentionMs?: number;
  /**
   * The recipients are distinct (the router's are): they are kept as given, neither
   * deduplicated nor interned. @default false
   */
  readonly distinct?: boolean;
}

/** A receipt frame the router must send to every device of `toUser` (except `exceptDevice`). */
export interface ReceiptNotice {
  readonly toUser: UserId;
  /** The device the receipt came from: read sync skips it. */
  readonly exceptDevice?: DeviceId;
  readonly frame: ServerReceiptFrame;
}

/**
 * Why an ack for one message id was ignored: a receipt for one's own message (`own_copy`: a
 * `delivered` from a sender's other device, which got a copy), from a device outside the
 * frozen recipient set, or for a message already final and released (a late duplicate,
 * recognised for `bufferMs` after the release).
 */
export type IgnoredReason = "own_message" | "own_copy" | "not_recipient" | "final";

/** What {@link ReceiptTracker.ack} did with each id. */
export interface AckResult {
  /** Applied (or already at least that far). */
  readonly applied: readonly MessageId[];
  /** Not tracked yet: held for `bufferMs`. */
  readonly buffered: readonly MessageId[];
  readonly ignored: readonly { readonly id: MessageId; readonly reason: IgnoredReason }[];
  /** The state machine refused it (`delivered`/`read` after `failed`). */
  readonly rejected: readonly { readonly id: MessageId; readonly code: "illegal_transition" }[];
}

/** What {@link ReceiptTracker.watermark} did. */
export interface WatermarkResult {
  /** False when `upTo` was not above the reader's pointer (ignored). */
  readonly advanced: boolean;
  /** The pointer after the call (0 when none). */
  readonly upTo: number;
}

/** What {@link ReceiptTracker.failed} did. */
export type FailedResult =
  | { readonly changed: boolean; readonly error?: undefined }
  | { readonly error: "illegal_transition" | "unknown_message" | "recipient_unknown" };

/** One recipient device in {@link MessageInfo}. */
export interface DeviceInfo {
  readonly deviceId: DeviceId;
  readonly state: ReceiptState;
  readonly deliveredAt?: number;
  readonly readAt?: number;
}

/** One recipient user in {@link MessageInfo}: who has it, who read it, and when. */
export interface MemberInfo {
  readonly userId: UserId;
  readonly status: ReceiptState;
  readonly deliveredAt?: number;
  readonly readAt?: number;
  readonly devices: readonly DeviceInfo[];
}

/** The "message info" view of a tracked message, as its sender may see it. */
export interface MessageInfo {
  readonly id: MessageId;
  readonly from: UserId;
  readonly conversation: ConversationId;
  readonly seq: number;
  readonly group?: GroupId;
  readonly mode: ReceiptMode;
  /** The aggregate status over the frozen recipients. */
  readonly status: ReceiptState;
  readonly members: readonly MemberInfo[];
}

/** Sizes of the tracker's state, to prove it stays bounded. */
export interface ReceiptTrackerSize extends ReceiptStoreSize {
  /** Receipts waiting for their message. */
  readonly buffered: number;
  /** Ids recently released as final, remembered for `bufferMs` to ignore late duplicates. */
  readonly recent: number;
}

/** A buffered receipt that expired before its message was tracked. */
export interface DroppedReceipt {
  readonly id: MessageId;
  readonly by: UserId;
  readonly device: DeviceId;
  readonly status: "delivered" | "read";
}

/** Events of {@link ReceiptTracker}. */
export interface ReceiptTrackerEvents {
  /** A receipt frame the router must send. */
  notify: (notice: ReceiptNotice) => void;
  /** Messages no longer tracked: final for every recipient, or past retention. */
  released: (ids: readonly MessageId[], reason: "final" | "expired") => void;
  /** A buffered receipt whose message never arrived. */
  dropped: (receipt: DroppedReceipt) => void;
  /** A background sweep failed (the store rejected). */
  error: (error: RelayError) => void;
}

const isClock = (v: unknown): v is Clock =>
  typeof v === "object" &&
  v !== null &&
  typeof (v as Clock).now === "function" &&
  typeof (v as Clock).setTimeout === "function";
const isStore = (v: unknown): v is ReceiptStore =>
  typeof v === "object" && v !== null && typeof (v as ReceiptStore).load === "function";
const isFunction = (v: unknown): v is (...args: never[]) => unknown => typeof v === "function";
const policy = z.enum(["none", "aggregate", "per-member"]);

const optionsSchema = z.object({
  clock: z.custom<Clock>(isClock, "a Clock").optional(),
  store: z.custom<ReceiptStore>(isStore, "a ReceiptStore").optional(),
  bufferMs: z.number().int().min(0).default(5000),
  maxBuffered: z.number().int().min(1).default(10_000),
  retentionMs: z
    .number()
    .int()
    .min(1)
    .default(7 * 24 * 60 * 60 * 1000),
  sweepIntervalMs: z.number().int().min(0).default(60_000),
  groupPolicy: z
    .union([policy, z.custom<(group: GroupId) => GroupReceiptPolicy>(isFunction, "a function")])
    .default("none"),
  readReceipts: z.custom<ReadReceiptsSetting>(isFunction, "a function").optional(),
  reciprocal: z.boolean().default(true),
  clampWatermarks: z.boolean().default(true),
});

const trackSchema = z.object({
  policy: policy.optional(),
  retentionMs: z.number().int().min(1).optional(),
  distinct: z.boolean().optional(),
});
const DISTINCT: z.output<typeof trackSchema> = Object.freeze({ distinct: true });

interface Pending {
  readonly by: UserId;
  readonly device: DeviceId;
  readonly status: "delivered" | "read";
  readonly at: number;
}

/** What caused a change: who (per user, which device), when, and whether a watermark. */
interface Cause {
  readonly at: number;
  readonly devices: ReadonlyMap<UserId, DeviceId>;
  readonly watermark?: { readonly reader: UserId; readonly upTo: number };
}

/** Collects the frames of one operation, merging ids that go to the same place. */
class Outbox {
  readonly #byKey = new Map<string, ReceiptNotice>();

  ids(
    toUser: UserId,
    status: "delivered" | "read",
    by: string,
    device: DeviceId | undefined,
    ts: number,
    id: MessageId,
    exceptDevice?: DeviceId,
  ): void {
    const key = `i|${toUser}|${status}|${by}|${device ?? ""}|${exceptDevice ?? ""}`;
    const found = this.#byKey.get(key);
    if (found) {
      const ids = (found.frame as { ids: string[] }).ids;
      if (!ids.includes(id)) ids.push(id);
      return;
    }
    const frame: ServerReceiptFrame =
      device === undefined
        ? { type: "receipt", status, ids: [id], by, ts }
        : { type: "receipt", status, ids: [id], by, device, ts };
    this.#byKey.set(key, notice(toUser, frame, exceptDevice));
  }

  watermark(
    toUser: UserId,
    conversation: ConversationId,
    upTo: number,
    by: UserId,
    device: DeviceId | undefined,
    ts: number,
    exceptDevice?: DeviceId,
  ): void {
    const key = `w|${toUser}|${conversation}|${by}|${exceptDevice ?? ""}`;
    if (this.#byKey.has(key)) return;
    const frame: ServerReceiptFrame =
      device === undefined
        ? { type: "receipt", status: "read", conversation, upTo, by, ts }
        : { type: "receipt", status: "read", conversation, upTo, by, device, ts };
    this.#byKey.set(key, notice(toUser, frame, exceptDevice));
  }

  failed(m: TrackedMessage, reason: string, ts: number): void {
    this.#byKey.set(`f|${m.id}`, {
      toUser: m.from,
      frame: { type: "receipt", status: "failed", ids: [m.id], clientId: m.clientId, reason, ts },
    });
  }

  flush(emit: (n: ReceiptNotice) => void): void {
    for (const n of this.#byKey.values()) emit(n);
  }
}

function notice(toUser: UserId, frame: ServerReceiptFrame, exceptDevice?: DeviceId): ReceiptNotice {
  return exceptDevice === undefined ? { toUser, frame } : { toUser, exceptDevice, frame };
}

/** Nothing can change a read; a failure can still move up (a late delivery), so it is not final. */
const isFinal = (s: ReceiptState): boolean => s === "read";

/** An interned device key, with the stamp of the last track call that listed it. */
interface Interned {
  readonly key: DeviceKey;
  stamp: number;
}

/** Interned keys are forgotten (all at once) past this many. */
const INTERNED_MAX = 200_000;

/**
 * Tracks sent / delivered / read per (message, recipient device) and tells the router which
 * receipt frames to send, as `notify` events. Call `track` when the router accepts a message,
 * `ack`/`watermark` when a device sends a receipt, `failed` when the queue gives up on a device.
 * @remarks It sends nothing itself and never answers a receipt with a receipt. Operations run
 * one at a time (a promise chain), so concurrent acks cannot interleave their read-modify-write.
 * The `sent` tick is the router's (it has the client id at accept time); tracking starts at `sent`.
 * @example
 * const tracker = new ReceiptTracker({ clock, groupPolicy: "aggregate" });
 * tracker.on("notify", ({ toUser, exceptDevice, frame }) => router.sendToUser(toUser, frame, exceptDevice));
 */
export class ReceiptTracker extends TypedEmitter<ReceiptTrackerEvents> {
  readonly #clock: Clock;
  readonly #store: ReceiptStore;
  readonly #opts: z.output<typeof optionsSchema>;
  readonly #readReceipts: ReadReceiptsSetting | undefined;
  readonly #buffer = new Map<
    MessageId,
    { entries: Pending[]; timer: Timer | undefined; final: Timer | undefined }
  >();
  #buffered = 0;
  // Ids released as final, with when to forget them: late duplicates are ignored, not
  // buffered. A FIFO (arrays + head) beside the map, because deleting a Map's first keys
  // one by one is O(n) in V8 (its iterator walks the deleted slots).
  readonly #recent = new Map<MessageId, number>();
  readonly #recentIds: MessageId[] = [];
  readonly #recentUntil: number[] = [];
  #recentHead = 0;
  #chain: Promise<unknown> = Promise.resolve();
  /** Operations queued or running asynchronously on {@link #chain}. */
  #running = 0;
  // Interned device keys: every tracked message of a device shares one string.
  readonly #keys = new Map<UserId, Map<DeviceId, DeviceKey>>();
  readonly #interned = new Map<DeviceKey, Interned>();
  /** {@link #keysAsGiven} of frozen recipient lists, by list. */
  readonly #givenKeys = new WeakMap<
    object,
    { readonly from: UserId; readonly keys: readonly DeviceKey[] }
  >();
  /** Stamps one {@link #track} call's keys (see {@link Interned}). */
  #stamp = 0;
  #sweeper: Timer | undefined;
  #closed = false;

  /** @throws RelayError `invalid_option` */
  constructor(options: ReceiptTrackerOptions = {}) {
    super();
    this.#opts = parseOptions(optionsSchema, options, "ReceiptTracker");
    this.#clock = this.#opts.clock ?? systemClock;
    this.#store = this.#opts.store ?? new MemoryReceiptStore();
    this.#readReceipts = this.#opts.readReceipts;
    if (this.#opts.sweepIntervalMs > 0) {
      this.#sweeper = this.#clock.setInterval(() => {
        this.sweep().catch((e: unknown) => this.#fail(e));
      }, this.#opts.sweepIntervalMs);
    }
  }

  /**
   * Starts tracking an accepted message for its recipient devices, frozen now (for a group:
   * the members' devices at send time), as `{ userId, deviceId }` or {@link DeviceKey}s. The
   * sender's own devices are left out. Applies
   * receipts that overtook the message. Returns false when already tracked or no recipient.
   * @throws RelayError `invalid_option` for bad `opts`, `closed` after {@link close}
   */
  track(
    envelope: Envelope,
    recipients: readonly (RecipientDevice | DeviceKey)[],
    opts: TrackOptions = {},
  ): MaybePromise<boolean> {
    // Skip zod on the hot path when there is nothing to check.
    const o: z.output<typeof trackSchema> =
      opts.policy === undefined && opts.retentionMs === undefined
        ? opts.distinct === true
          ? DISTINCT
          : {}
        : parseOptions(trackSchema, opts, "ReceiptTracker.track");
    return this.#run(this.#track(envelope, recipients, o));
  }

  *#track(
    envelope: Envelope,
    recipients: readonly (RecipientDevice | DeviceKey)[],
    o: z.output<typeof trackSchema>,
  ): Steps<boolean> {
    const at = this.#clock.now();
    const keys = o.distinct
      ? this.#keysAsGiven(recipients, envelope.from)
      : this.#distinctKeys(recipients, envelope.from);
    const pending = this.#takeBuffered(envelope.id);
    if (keys.length === 0) return false;
    const group = "group" in envelope.to ? envelope.to.group : undefined;
    const mode: ReceiptMode = group === undefined ? "direct" : (o.policy ?? this.#policyFor(group));
    const base = {
      id: envelope.id,
      clientId: envelope.clientId,
      from: envelope.from,
      fromDevice: envelope.fromDevice,
      conversation: envelope.conversation,
      seq: envelope.seq,
      mode,
      expiresAt: at + (o.retentionMs ?? this.#opts.retentionMs),
      recipients: keys,
    };
    const m: TrackedMessage = group === undefined ? base : { ...base, group };
    if (!((yield this.#store.track(m, "sent")) as boolean)) {
      // A retried track: apply what overtook it like any ack.
      for (const p of pending) yield* this.#ackNow(p.by, p.device, p.status, [m.id], p.at);
      return false;
    }
    const wms = (yield this.#store.watermarks(m.conversation)) as ReadonlyMap<UserId, Watermark>;
    const covered = [...wms.values()].some((w) => w.upTo >= m.seq);
    if (pending.length === 0 && !covered) return true;

    const initial = new Array<ReceiptState>(keys.length).fill("sent");
    const states = initial.slice();
    const devices = new Map<UserId, DeviceId>();
    const readers = new Map<UserId, DeviceId>();
    for (const p of pending) {
      if (p.by === m.from) continue;
      const i = keys.indexOf(deviceKey(p.by, p.device));
      if (i < 0) continue;
      const r = transition(states[i]!, p.status);
      if (r.error !== undefined || !r.changed) continue;
      states[i] = r.state;
      devices.set(p.by, p.device);
      if (p.status === "read") readers.set(p.by, p.device);
      yield this.#store.setState(m.id, i, r.state, p.at);
    }
    const before = recipientStatuses(keys, initial, m.seq, new Map());
    const after = recipientStatuses(keys, states, m.seq, wms);
    const out = new Outbox();
    yield* this.#evaluate(m, before, after, { at, devices }, out, this.#privacy());
    for (const [u, d] of readers) {
      if (after.get(u) === "read") out.ids(u, "read", u, d, at, m.id, d);
    }
    yield* this.#finish(out, isDone(after) ? [m.id] : [], unsettled(states));
    return true;
  }

  /**
   * A device says it has (`delivered`) or has read (`read`) messages. Ids not tracked yet are
   * buffered for `bufferMs`; receipts for one's own messages are ignored.
   */
  ack(
    byUser: UserId,
    byDevice: DeviceId,
    status: "delivered" | "read",
    messageIds: readonly MessageId[],
  ): MaybePromise<AckResult> {
    return this.#run(this.#ackNow(byUser, byDevice, status, messageIds, this.#clock.now()));
  }

  /**
   * A device says its user read everything up to `upTo` in `conversation`, clamped to the
   * highest message one of the user's devices has (delivered or read; a message released as
   * final is not looked at). One pointer per (reader, conversation): a watermark not above it
   * is ignored; one store write covers every
   * message it reaches. Tells the reader's other devices (read sync) and the senders.
   */
  watermark(
    byUser: UserId,
    byDevice: DeviceId,
    conversation: ConversationId,
    upTo: number,
  ): MaybePromise<WatermarkResult> {
    return this.#serial(function* () {
      if (!Number.isSafeInteger(upTo) || upTo < 1) {
        const w = (
          (yield this.#store.watermarks(conversation)) as ReadonlyMap<UserId, Watermark>
        ).get(byUser);
        return { advanced: false, upTo: w?.upTo ?? 0 };
      }
      // Clamped to what reached one of the reader's devices: a pointer names a message the
      // reader received (XEP-0333, Matrix m.read), never one accepted after it.
      const from =
        ((yield this.#store.watermarks(conversation)) as ReadonlyMap<UserId, Watermark>).get(byUser)
          ?.upTo ?? 0;
      if (upTo > from && this.#opts.clampWatermarks) {
        upTo = yield* this.#receivedUpTo(byUser, conversation, from, upTo);
      }
      if (upTo <= from) return { advanced: false, upTo: from };
      const at = this.#clock.now();
      const adv = (yield this.#store.advanceWatermark(
        byUser,
        conversation,
        upTo,
        at,
        at + this.#opts.retentionMs,
      )) as WatermarkAdvance;
      if (!adv.advanced) return { advanced: false, upTo: adv.previous?.upTo ?? 0 };
      const out = new Outbox();
      out.watermark(byUser, conversation, upTo, byUser, byDevice, at, byDevice);
      const release: MessageId[] = [];
      const waiting: MessageId[] = [];
      const ids = (yield this.#store.inRange(
        conversation,
        adv.previous?.upTo ?? 0,
        upTo,
      )) as readonly MessageId[];
      if (ids.length > 0) {
        const wmsAfter = (yield this.#store.watermarks(conversation)) as ReadonlyMap<
          UserId,
          Watermark
        >;
        const wmsBefore = new Map(wmsAfter);
        if (adv.previous) wmsBefore.set(byUser, adv.previous);
        else wmsBefore.delete(byUser);
        const cause: Cause = {
          at,
          devices: new Map([[byUser, byDevice]]),
          watermark: { reader: byUser, upTo },
        };
        const show = this.#privacy();
        for (const id of ids) {
          const rec = (yield this.#store.load(id)) as ReceiptRecord | undefined;
          if (!rec || rec.message.from === byUser) continue;
          const m = rec.message;
          const before = recipientStatuses(m.recipients, rec.states, m.seq, wmsBefore);
          if (!before.has(byUser)) continue;
          const after = recipientStatuses(m.recipients, rec.states, m.seq, wmsAfter);
          yield* this.#evaluate(m, before, after, cause, out, show);
          if (isDone(after)) release.push(id);
          if (isDone(after) && unsettled(rec.states)) waiting.push(id);
        }
      }
      yield* this.#finish(out, release, waiting);
      return { advanced: true, upTo };
    });
  }

  /** The highest seq in `(after, upTo]` of `conversation` some device of `reader` has (delivered or read); `after` when none. */
  *#receivedUpTo(
    reader: UserId,
    conversation: ConversationId,
    after: number,
    upTo: number,
  ): Steps<number> {
    const ids = (yield this.#store.inRange(conversation, after, upTo)) as readonly MessageId[];
    const own = `${reader}/`;
    let best = after;
    // In seq order: the last one received wins, so scan from the end.
    for (let k = ids.length - 1; k >= 0; k--) {
      const rec = (yield this.#store.load(ids[k]!)) as ReceiptRecord | undefined;
      if (!rec || rec.message.from === reader || rec.message.seq <= best) continue;
      const m = rec.message;
      for (let i = 0; i < m.recipients.length; i++) {
        if (m.recipients[i]!.startsWith(own) && receiptRank(rec.states[i]!) >= 2) {
          best = m.seq;
          break;
        }
      }
      if (best > after) break;
    }
    return best;
  }

  /**
   * The delivery queue gave up on one recipient device. The sender's status for a recipient
   * user is the maximum over that user's devices (Signal's MessageSendState): the sender gets
   * `failed` only when no device of a recipient user got it, once per message; a later
   * `delivered` or `read` from any device moves it up again. `failed` after `delivered` is
   * refused; a message released as final (read) lately is already settled (`changed: false`).
   */
  failed(messageId: MessageId, device: DeviceKey, reason: string): MaybePromise<FailedResult> {
    return this.#serial(function* () {
      const rec = (yield this.#store.load(messageId)) as ReceiptRecord | undefined;
      if (!rec) {
        return this.#isRecent(messageId)
          ? { changed: false }
          : { error: "unknown_message" as const };
      }
      const m = rec.message;
      const i = m.recipients.indexOf(device);
      if (i < 0) return { error: "recipient_unknown" as const };
      const r = transition(rec.states[i]!, "failed");
      if (r.error !== undefined) return { error: r.error };
      if (!r.changed) return { changed: false };
      const at = this.#clock.now();
      const states = Array.from(rec.states);
      const wms = (yield this.#store.watermarks(m.conversation)) as ReadonlyMap<UserId, Watermark>;
      const before = recipientStatuses(m.recipients, states, m.seq, wms);
      states[i] = "failed";
      yield this.#store.setState(m.id, i, "failed", at);
      const after = recipientStatuses(m.recipients, states, m.seq, wms);
      const out = new Outbox();
      // Told once per message, when a first recipient user has it on no device.
      const user = splitDeviceKey(device).userId;
      let told = false;
      for (const st of before.values()) if (st === "failed") told = true;
      if (!told && after.get(user) === "failed") out.failed(m, reason, at);
      yield* this.#evaluate(m, before, after, { at, devices: new Map() }, out, this.#privacy());
      yield* this.#finish(out, isDone(after) ? [m.id] : [], unsettled(states));
      return { changed: true };
    });
  }

  /**
   * "Message info": each frozen recipient's status and devices, with times, as the sender may
   * see them (read hidden where privacy says so). For messages read through a watermark,
   * `readAt` is the time the reader's pointer last moved. `undefined` when not tracked.
   */
  info(messageId: MessageId): Promise<MessageInfo | undefined> {
    return this.#promise(function* () {
      const rec = (yield this.#store.load(messageId)) as ReceiptRecord | undefined;
      if (!rec) return undefined;
      const m = rec.message;
      const wms = (yield this.#store.watermarks(m.conversation)) as ReadonlyMap<UserId, Watermark>;
      const show = this.#privacy();
      const members = new Map<UserId, DeviceInfo[]>();
      for (let i = 0; i < m.recipients.length; i++) {
        const { userId, deviceId } = splitDeviceKey(m.recipients[i]!);
        const wm = wms.get(userId);
        const state = effectiveState(rec.states[i]!, m.seq, wm);
        let readAt = time(rec.readAt[i]!);
        if (state === "read" && readAt === undefined) readAt = wm?.at;
        let deliveredAt = time(rec.deliveredAt[i]!);
        if (receiptRank(state) >= 2 && deliveredAt === undefined) deliveredAt = readAt;
        const d: DeviceInfo = {
          deviceId,
          state,
          ...opt("deliveredAt", deliveredAt),
          ...opt("readAt", readAt),
        };
        const list = members.get(userId);
        if (list) list.push(d);
        else members.set(userId, [d]);
      }
      const out: MemberInfo[] = [];
      for (const [userId, raw] of members) {
        const showRead = (yield show(userId, m.from)) as boolean;
        const devices = raw.map((d) =>
          showRead || d.state !== "read"
            ? d
            : {
                deviceId: d.deviceId,
                state: "delivered" as const,
                ...opt("deliveredAt", d.deliveredAt),
              },
        );
        const status = userStatus(devices.map((d) => d.state));
        out.push({
          userId,
          status,
          ...opt("deliveredAt", earliest(devices.map((d) => d.deliveredAt))),
          ...opt("readAt", earliest(devices.map((d) => d.readAt))),
          devices,
        });
      }
      return {
        id: m.id,
        from: m.from,
        conversation: m.conversation,
        seq: m.seq,
        ...(m.group === undefined ? {} : { group: m.group }),
        mode: m.mode,
        status: groupStatus(out.map((x) => x.status)),
        members: out,
      };
    });
  }

  /** Forgets messages and pointers past retention now (the sweep timer calls it). */
  sweep(): Promise<readonly MessageId[]> {
    return this.#promise(function* () {
      const ids = (yield this.#store.expire(this.#clock.now())) as readonly MessageId[];
      if (ids.length > 0) this.emit("released", ids, "expired");
      return ids;
    });
  }

  /** What the tracker holds: tracked messages, entries, pointers and buffered receipts. */
  async size(): Promise<ReceiptTrackerSize> {
    this.#pruneRecent();
    return { ...(await this.#store.size()), buffered: this.#buffered, recent: this.#recent.size };
  }

  /**
   * Keeps a receipt frame for a user with no connected device (the router calls it when a
   * notice finds nobody), for the retention time and at most 1,000 per user, so a sender who
   * was offline gets its ticks, and its `failed`, when a device returns.
   */
  hold(user: UserId, frame: ServerReceiptFrame): MaybePromise<void> {
    return this.#store.hold(user, frame, this.#clock.now() + this.#opts.retentionMs, 1000);
  }

  /** Takes the frames held for a user (see {@link hold}), oldest first. */
  takeHeld(user: UserId): MaybePromise<readonly ServerReceiptFrame[]> {
    return this.#store.takeHeld(user, this.#clock.now());
  }

  /** Stops the timers and drops buffered receipts; later calls reject with `closed`. */
  close(): void {
    this.#closed = true;
    this.#clock.clear(this.#sweeper);
    for (const b of this.#buffer.values()) {
      this.#clock.clear(b.timer);
      this.#clock.clear(b.final);
    }
    this.#buffer.clear();
    this.#buffered = 0;
    this.#recent.clear();
    this.#recentIds.length = 0;
    this.#recentUntil.length = 0;
    this.#recentHead = 0;
  }

  // ---- internals ----

  /**
   * Runs operations one at a time, in call order. When none is running the steps run now and,
   * on an in-memory store, finish before this returns; a failure is always a rejected promise.
   */
  #serial<T>(steps: (this: ReceiptTracker) => Steps<T>): MaybePromise<T> {
    return this.#run(steps.call(this));
  }

  /** {@link #serial} for steps already made (a generator's body runs only when driven). */
  #run<T>(steps: Steps<T>): MaybePromise<T> {
    if (this.#closed) return closedError();
    if (this.#running === 0) {
      let r: MaybePromise<T>;
      try {
        r = drive(steps);
      } catch (e) {
        return Promise.reject(e);
      }
      return isPromiseLike(r) ? this.#queue(Promise.resolve(r)) : r;
    }
    // Queued behind others: if the tracker closed meanwhile, it does not run (no timers after close).
    return this.#queue(this.#chain.then(() => (this.#closed ? closedError() : drive(steps))));
  }

  /** {@link #serial}, always as a promise. */
  #promise<T>(steps: (this: ReceiptTracker) => Steps<T>): Promise<T> {
    return Promise.resolve(this.#serial(steps));
  }

  #queue<T>(p: Promise<T>): Promise<T> {
    this.#running++;
    const done = () => {
      this.#running--;
    };
    this.#chain = p.then(done, done);
    return p;
  }

  #fail(e: unknown): void {
    const err =
      e instanceof RelayError
        ? e
        : new RelayError("store_unavailable", "receipt sweep failed", { cause: e });
    this.emit("error", err);
  }

  /** The one shared {@link DeviceKey} string of a device (bounded: reset past 100k users). */
  /** The one shared string of a device key given as a string. */
  /** The recipients' keys but `from`'s own devices, as given (the caller's are distinct). */
  #keysAsGiven(
    recipients: readonly (RecipientDevice | DeviceKey)[],
    from: UserId,
  ): readonly DeviceKey[] {
    // A frozen list (a router's cached group recipients) gives the same answer every time.
    const frozen = Object.isFrozen(recipients);
    if (frozen) {
      const memo = this.#givenKeys.get(recipients);
      if (memo?.from === from) return memo.keys;
    }
    const keys: DeviceKey[] = [];
    const own = `${from}/`;
    for (const raw of recipients) {
      if (typeof raw === "string") {
        if (!raw.startsWith(own)) keys.push(raw);
      } else if (raw.userId !== from) keys.push(this.#key(raw.userId, raw.deviceId));
    }
    if (frozen) this.#givenKeys.set(recipients, { from, keys: Object.freeze(keys) });
    return keys;
  }

  /** The recipients' keys but `from`'s own devices, each once, interned. */
  #distinctKeys(recipients: readonly (RecipientDevice | DeviceKey)[], from: UserId): DeviceKey[] {
    const keys: DeviceKey[] = [];
    const own = `${from}/`;
    // Interning marks each key with this call's stamp: a key seen twice is seen at once.
    if (this.#interned.size + recipients.length > INTERNED_MAX) this.#interned.clear();
    const stamp = ++this.#stamp;
    for (const raw of recipients) {
      let slot: Interned;
      if (typeof raw === "string") {
        if (raw.startsWith(own)) continue;
        slot = this.#intern(raw);
      } else {
        if (raw.userId === from) continue;
        slot = this.#intern(this.#key(raw.userId, raw.deviceId));
      }
      if (slot.stamp === stamp) continue;
      slot.stamp = stamp;
      keys.push(slot.key);
    }
    return keys;
  }

  /** One shared string (and dedupe stamp) per device key, so a million entries share their keys. */
  #intern(key: DeviceKey): Interned {
    let slot = this.#interned.get(key);
    if (slot === undefined) {
      slot = { key, stamp: 0 };
      this.#interned.set(key, slot);
    }
    return slot;
  }

  #key(user: UserId, device: DeviceId): DeviceKey {
    let byDevice = this.#keys.get(user);
    if (!byDevice) {
      if (this.#keys.size >= 100_000) this.#keys.clear();
      byDevice = new Map();
      this.#keys.set(user, byDevice);
    }
    let k = byDevice.get(device);
    if (k === undefined) {
      k = deviceKey(user, device);
      byDevice.set(device, k);
    }
    return k;
  }

  #policyFor(group: GroupId): GroupReceiptPolicy {
    const p = this.#opts.groupPolicy;
    return typeof p === "function" ? p(group) : p;
  }

  /** Whether `reader`'s read receipts may be shown to `viewer`, cached for one operation. */
  #privacy(): Show {
    const setting = this.#readReceipts;
    if (!setting) return SHOW_ALL;
    const cache = new Map<UserId, boolean>();
    const on = (u: UserId): MaybePromise<boolean> => {
      const known = cache.get(u);
      if (known !== undefined) return known;
      return andThen(setting(u), (v) => {
        cache.set(u, v !== false);
        return v !== false;
      });
    };
    const reciprocal = this.#opts.reciprocal;
    return (reader, viewer) => andThen(on(reader), (r) => (r && reciprocal ? on(viewer) : r));
  }

  *#ackNow(
    byUser: UserId,
    byDevice: DeviceId,
    status: "delivered" | "read",
    messageIds: readonly MessageId[],
    at: number,
  ): Steps<AckResult> {
    const applied: MessageId[] = [];
    const buffered: MessageId[] = [];
    const ignored: { id: MessageId; reason: IgnoredReason }[] = [];
    const rejected: { id: MessageId; code: "illegal_transition" }[] = [];
    const key = deviceKey(byUser, byDevice);
    const out = new Outbox();
    const release: MessageId[] = [];
    const waiting: MessageId[] = [];
    const show = this.#privacy();
    const cause: Cause = { at, devices: new Map([[byUser, byDevice]]) };
    for (const id of new Set(messageIds)) {
      const rec = (yield this.#store.load(id)) as ReceiptRecord | undefined;
      if (!rec && this.#isRecent(id)) {
        ignored.push({ id, reason: "final" });
        continue;
      }
      if (!rec) {
        this.#bufferReceipt(id, { by: byUser, device: byDevice, status, at });
        buffered.push(id);
        continue;
      }
      const m = rec.message;
      if (m.from === byUser) {
        // A copy on the sender's other device acks its delivery (clearing its queue entry);
        // anything else on one's own message is not a receipt at all.
        const copy = status === "delivered" && byDevice !== m.fromDevice;
        ignored.push({ id, reason: copy ? "own_copy" : "own_message" });
        continue;
      }
      const i = m.recipients.indexOf(key);
      if (i < 0) {
        ignored.push({ id, reason: "not_recipient" });
        continue;
      }
      const r = transition(rec.states[i]!, status);
      if (r.error !== undefined) {
        rejected.push({ id, code: r.error });
        continue;
      }
      applied.push(id);
      if (!r.changed) continue;
      if (m.mode === "none" && status === "delivered") {
        // Nothing to tell (no group ticks, no read sync) and a `delivered` cannot make the
        // message final: skip the O(recipients) status pass, which made a large group's
        // acks quadratic (1,023 acks x 1,023 recipients per message).
        yield this.#store.setState(id, i, r.state, at);
        continue;
      }
      const states = Array.from(rec.states);
      const wms = (yield this.#store.watermarks(m.conversation)) as ReadonlyMap<UserId, Watermark>;
      const before = recipientStatuses(m.recipients, states, m.seq, wms);
      states[i] = r.state;
      yield this.#store.setState(id, i, r.state, at);
      const after = recipientStatuses(m.recipients, states, m.seq, wms);
      yield* this.#evaluate(m, before, after, cause, out, show);
      // Read sync: the reader's other devices clear their unread state.
      if (status === "read" && before.get(byUser) !== "read" && after.get(byUser) === "read") {
        out.ids(byUser, "read", byUser, byDevice, at, id, byDevice);
      }
      if (isDone(after)) release.push(id);
      if (isDone(after) && unsettled(states)) waiting.push(id);
    }
    yield* this.#finish(out, release, waiting);
    return { applied, buffered, ignored, rejected };
  }

  /** Adds the sender's frames for a change of recipient statuses, per the message's mode. */
  *#evaluate(
    m: TrackedMessage,
    before: ReadonlyMap<UserId, ReceiptState>,
    after: ReadonlyMap<UserId, ReceiptState>,
    cause: Cause,
    out: Outbox,
    show: Show,
  ): Steps<void> {
    if (m.mode === "none") return;
    if (m.mode === "aggregate") {
      const gb = groupStatus(before.values());
      const ga = groupStatus(after.values());
      if (receiptRank(ga) <= receiptRank(gb) || receiptRank(ga) < 2) return;
      let showRead = true;
      if (ga === "read") {
        for (const u of after.keys()) {
          if (!((yield show(u, m.from)) as boolean)) {
            showRead = false;
            break;
          }
        }
      }
      const vb = visibleStatus(gb, showRead);
      const va = visibleStatus(ga, showRead) as "delivered" | "read";
      if (receiptRank(va) > receiptRank(vb))
        out.ids(m.from, va, m.group ?? m.from, undefined, cause.at, m.id);
      return;
    }
    for (const [u, a] of after) {
      const b = before.get(u) ?? "sent";
      if (a === b || receiptRank(a) < 2) continue;
      const showRead = (yield show(u, m.from)) as boolean;
      const vb = visibleStatus(b, showRead);
      const va = visibleStatus(a, showRead) as "delivered" | "read";
      if (receiptRank(va) <= receiptRank(vb)) continue;
      const device = cause.devices.get(u);
      if (va === "read" && cause.watermark?.reader === u) {
        out.watermark(m.from, m.conversation, cause.watermark.upTo, u, device, cause.at);
      } else {
        out.ids(m.from, va, u, device, cause.at, m.id);
      }
    }
  }

  /**
   * Releases final messages and sends the collected frames. A released id is remembered for
   * `bufferMs` (late duplicate acks are ignored), or for `retentionMs` when a device still
   * waits (`waiting`: its failure must not tell the sender `failed` after the read); at most
   * `maxBuffered` ids are remembered, the oldest forgotten first.
   */
  *#finish(
    out: Outbox,
    release: readonly MessageId[],
    waiting: boolean | readonly MessageId[] = false,
  ): Steps<void> {
    if (release.length > 0) {
      yield this.#store.release(release);
      const now = this.#clock.now();
      for (const id of release) {
        const long = waiting === true || (waiting !== false && waiting.includes(id));
        const until = now + (long ? this.#opts.retentionMs : this.#opts.bufferMs);
        this.#recent.set(id, until);
        this.#recentIds.push(id);
        this.#recentUntil.push(until);
      }
      this.#pruneRecent();
    }
    out.flush((n) => this.emit("notify", n));
    if (release.length > 0) this.emit("released", release, "final");
  }

  /** True when `id` was released as final less than `bufferMs` ago; prunes older entries. */
  #isRecent(id: MessageId): boolean {
    this.#pruneRecent();
    // (Pruning stops at the oldest live entry: a shorter-lived one behind it is checked here.)
    const until = this.#recent.get(id);
    return until !== undefined && until > this.#clock.now();
  }

  /** Forgets recently-final ids older than `bufferMs` or beyond `maxBuffered`, oldest first. */
  #pruneRecent(): void {
    const now = this.#clock.now();
    const ids = this.#recentIds;
    const until = this.#recentUntil;
    let h = this.#recentHead;
    while (h < ids.length && (until[h]! <= now || ids.length - h > this.#opts.maxBuffered)) {
      const id = ids[h]!;
      // Only the latest entry of an id counts (an id can be released again after a re-track).
      if (this.#recent.get(id) === until[h]) this.#recent.delete(id);
      h++;
    }
    if (h > 1024 && h * 2 > ids.length) {
      ids.splice(0, h);
      until.splice(0, h);
      h = 0;
    }
    this.#recentHead = h;
  }

  #bufferReceipt(id: MessageId, p: Pending): void {
    // Closed (an operation that was running when close came): keep nothing, arm nothing.
    if (this.#opts.bufferMs === 0 || this.#closed) {
      this.emit("dropped", { id, by: p.by, device: p.device, status: p.status });
      return;
    }
    let b = this.#buffer.get(id);
    if (!b) {
      // Halfway and at the deadline, look for the message in the store: with a shared store
      // another node's tracker may have tracked it (the receipt overtook it across nodes).
      const half = Math.max(1, Math.floor(this.#opts.bufferMs / 2));
      const timer = this.#clock.setTimeout(() => this.#recheckBuffered(id, false), half);
      const final = this.#clock.setTimeout(
        () => this.#recheckBuffered(id, true),
        this.#opts.bufferMs,
      );
      b = { entries: [], timer, final };
      this.#buffer.set(id, b);
    }
    b.entries.push(p);
    this.#buffered++;
    while (this.#buffered > this.#opts.maxBuffered) {
      const oldest = this.#buffer.keys().next().value;
      if (oldest === undefined) break;
      this.#expireBuffered(oldest);
    }
  }

  /** Applies a message's buffered receipts if the store now tracks it; drops them at the deadline. */
  #recheckBuffered(id: MessageId, last: boolean): void {
    const b = this.#buffer.get(id);
    if (!b) return;
    this.#promise(function* () {
      if (this.#buffer.get(id) !== b) return;
      if (!((yield this.#store.load(id)) as ReceiptRecord | undefined)) {
        if (last) this.#expireBuffered(id);
        return;
      }
      for (const p of this.#takeBuffered(id)) {
        yield* this.#ackNow(p.by, p.device, p.status, [id], p.at);
      }
    }).catch((e: unknown) => this.#fail(e));
  }

  #expireBuffered(id: MessageId): void {
    const b = this.#buffer.get(id);
    if (!b) return;
    this.#clock.clear(b.timer);
    this.#clock.clear(b.final);
    this.#buffer.delete(id);
    this.#buffered -= b.entries.length;
    for (const p of b.entries)
      this.emit("dropped", { id, by: p.by, device: p.device, status: p.status });
  }

  #takeBuffered(id: MessageId): readonly Pending[] {
    const b = this.#buffer.get(id);
    if (!b) return [];
    this.#clock.clear(b.timer);
    this.#clock.clear(b.final);
    this.#buffer.delete(id);
    this.#buffered -= b.entries.length;
    return b.entries;
  }
}

/** Final for every recipient user: read. (A failed one stays tracked, until retention, for a late delivery.) */
function isDone(statuses: ReadonlyMap<UserId, ReceiptState>): boolean {
  for (const s of statuses.values()) if (!isFinal(s)) return false;
  return true;
}

/** Whether a device of the message is still waiting (it may yet fail in the queue). */
function unsettled(states: ArrayLike<ReceiptState>): boolean {
  for (let i = 0; i < states.length; i++) {
    if (states[i] === "sent" || states[i] === "accepted") return true;
  }
  return false;
}

function time(t: number): number | undefined {
  return Number.isNaN(t) ? undefined : t;
}

function earliest(ts: readonly (number | undefined)[]): number | undefined {
  let out: number | undefined;
  for (const t of ts) if (t !== undefined && (out === undefined || t < out)) out = t;
  return out;
}

/** `{ [k]: v }` when `v` is defined, `{}` otherwise (exactOptionalPropertyTypes). */
function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}
