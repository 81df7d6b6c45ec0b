import { z } from "zod";
import {
  type Clock,
  type DeviceId,
  directConversation,
  groupConversation,
  parseOptions,
  RelayError,
  type SessionId,
  systemClock,
  type Target,
  type Timer,
  TypedEmitter,
  type UserId,
} from "../core/index.js";
import type { PresenceFrame, ServerFrameOf } from "../protocol/index.js";
import { DeadlineHeap } from "./deadline-heap.js";
import { applyVisibility, type PrivacyHook, visibleToEveryone } from "./privacy.js";
import { type DeviceRecord, NEVER_SEEN, type UserPresence } from "./status.js";

/** The server `typing` frame the tracker hands to the router. */
export type TypingFrame = ServerFrameOf<"typing">;

/**
 * A handle on one tracked device, returned by {@link PresenceTracker.connect}: keep it on the
 * connection and pass it to {@link PresenceTracker.touchDevice} to skip the id lookups.
 * Stays valid until the user is forgotten (a stale handle is ignored, never misattributed).
 */
export type PresenceHandle = number & { readonly __presenceHandle: true };

const SLOT_BITS = 24;
const SLOT_MASK = (1 << SLOT_BITS) - 1;

/** A typing state, as in the protocol. */
export type TypingState = "composing" | "paused";

/** A presence frame for one viewer: the router delivers it to that viewer's devices. */
export interface PresenceNotification {
  readonly viewer: UserId;
  readonly frame: PresenceFrame;
}

/**
 * A typing frame for the peer (`to.user`) or a group's members other than `frame.from`.
 * Volatile: deliver it to live sessions only; never store or queue it.
 */
export interface TypingNotification {
  readonly to: Target;
  readonly frame: TypingFrame;
}

/** Events of a {@link PresenceTracker}. */
export interface PresenceEvents {
  /** A presence frame to push to one subscribed viewer. */
  notify: (n: PresenceNotification) => void;
  /** A typing frame to route (volatile). */
  typing: (n: TypingNotification) => void;
  /** A user's own presence changed (before privacy and coalescing); for write-through and metrics. */
  change: (user: UserId, presence: UserPresence) => void;
}

const isClock = (v: unknown): v is Clock =>
  typeof v === "object" &&
  v !== null &&
  typeof (v as Clock).now === "function" &&
  typeof (v as Clock).setTimeout === "function" &&
  typeof (v as Clock).clear === "function";

const optionsSchema = z.object({
  clock: z.custom<Clock>(isClock, "a Clock").optional(),
  thresholdMs: z.number().int().min(1).default(10_000),
  graceMs: z.number().int().min(0).default(5_000),
  coalesceMs: z.number().int().min(0).default(1_000),
  typingTimeoutMs: z.number().int().min(1).default(5_000),
  privacy: z.custom<PrivacyHook>((v) => typeof v === "function", "a function").optional(),
  initialCapacity: z.number().int().min(1).default(1024),
});

/** Options of {@link PresenceTracker}. */
export interface PresenceTrackerOptions {
  /** Time source for activity stamps and every timer. @default systemClock */
  readonly clock?: Clock;
  /** A user is online while a connected device was active within this many ms. @default 10000 */
  readonly thresholdMs?: number;
  /** After an unclean disconnect the device still counts as connected this long. @default 5000 */
  readonly graceMs?: number;
  /** At most one update per subject per this many ms to its subscribers (0: no coalescing). @default 1000 */
  readonly coalesceMs?: number;
  /** A `composing` not refreshed within this many ms becomes `paused` by itself. @default 5000 */
  readonly typingTimeoutMs?: number;
  /** Decides what a viewer may see of a subject. @default visibleToEveryone */
  readonly privacy?: PrivacyHook;
  /** Device slots allocated up front (arrays grow by doubling). @default 1024 */
  readonly initialCapacity?: number;
}

// Per-slot flags. A slot is one device; the first device of a user is the user's head slot.
const CONNECTED = 1;
const IN_GRACE = 2;
const ONLINE = 4; // head only: the published status
const HEAD = 8;
const USED = 16;

interface SubjectEntry {
  /** Each viewer and what it was last shown (undefined until the first frame). */
  readonly viewers: Map<UserId, UserPresence | undefined>;
  lastFlush: number;
  timer: Timer | undefined;
}

interface TypingEntry {
  readonly to: Target;
  readonly conversation: TypingFrame["conversation"];
  timer: Timer | undefined;
}

/**
 * Online / last seen for every user, from device connections and activity, pushed to
 * subscribers as `presence` frames; plus volatile typing indicators.
 *
 * @remarks Hot path: {@link touch} is a map lookup and an array write, allocation-free;
 * the threshold is checked lazily. Users go offline through one clock timer over a deadline
 * heap (one entry per online user, re-armed when it fires), never by polling every user.
 * State lives in typed arrays (struct of arrays), about 100 bytes per single-device user.
 * Output is data: `notify`, `typing` and `change` events for the router to deliver.
 * It is node-local; share state across nodes through a {@link PresenceStore}.
 */
export class PresenceTracker extends TypedEmitter<PresenceEvents> {
  readonly #clock: Clock;
  readonly #threshold: number;
  readonly #grace: number;
  readonly #coalesce: number;
  readonly #typingTimeout: number;
  readonly #privacy: PrivacyHook;

  // ---- device slots (struct of arrays) ----
  readonly #index = new Map<UserId, number>();
  readonly #userIds: (UserId | undefined)[] = [];
  readonly #deviceIds: (DeviceId | undefined)[] = [];
  readonly #sessions = new Map<number, SessionId>();
  #lastActive: Float64Array;
  #graceUntil: Float64Array;
  #armedAt: Float64Array; // head: due time of its live heap entry, NaN if none
  #pubLastSeen: Float64Array; // head: published lastSeen, NaN for null
  #next: Int32Array;
  #owner: Int32Array; // head slot of each device
  #gen: Uint8Array; // bumped when a slot is freed, so old handles go stale
  #flags: Uint8Array;
  #used = 0;
  readonly #free: number[] = [];

  // ---- deadlines ----
  readonly #heap = new DeadlineHeap();
  #timer: Timer | undefined;
  #timerDue = Number.POSITIVE_INFINITY;
  #firing = false;
  #closed = false;

  // ---- subscriptions and typing ----
  readonly #subjects = new Map<UserId, SubjectEntry>();
  readonly #viewing = new Map<UserId, Set<UserId>>();
  readonly #typing = new Map<UserId, Map<string, TypingEntry>>();

  // scratch results of #compute (no allocation)
  #cOnline = false;
  #cLastSeen = Number.NaN;
  #cUntil = 0;

  /** @throws RelayError `invalid_option` */
  constructor(options: PresenceTrackerOptions = {}) {
    super();
    const o = parseOptions(optionsSchema, options, "PresenceTracker");
    this.#clock = o.clock ?? systemClock;
    this.#threshold = o.thresholdMs;
    this.#grace = o.graceMs;
    this.#coalesce = o.coalesceMs;
    this.#typingTimeout = o.typingTimeoutMs;
    this.#privacy = o.privacy ?? visibleToEveryone;
    const n = o.initialCapacity;
    this.#lastActive = new Float64Array(n);
    this.#graceUntil = new Float64Array(n);
    this.#armedAt = new Float64Array(n);
    this.#pubLastSeen = new Float64Array(n);
    this.#next = new Int32Array(n);
    this.#owner = new Int32Array(n);
    this.#gen = new Uint8Array(n);
    this.#flags = new Uint8Array(n);
  }

  /** The presence threshold in ms. */
  get thresholdMs(): number {
    return this.#threshold;
  }

  /** How many users are tracked. */
  get size(): number {
    return this.#index.size;
  }

  // ------------------------------------------------------------------ devices

  /**
   * A device connected (counts as activity). `sessionId` lets a late {@link disconnect} of
   * an older session of the same device be ignored.
   */
  connect(userId: UserId, deviceId: DeviceId, sessionId?: SessionId): PresenceHandle {
    const now = this.#clock.now();
    const head = this.#index.get(userId) ?? this.#addUser(userId);
    const slot = this.#findDevice(head, deviceId) ?? this.#addDevice(head, deviceId);
    this.#flags[slot] = (this.#flags[slot]! | CONNECTED) & ~IN_GRACE;
    this.#lastActive[slot] = now;
    if (sessionId === undefined) this.#sessions.delete(slot);
    else this.#sessions.set(slot, sessionId);
    this.#refresh(head, now);
    return ((this.#gen[slot]! << SLOT_BITS) | slot) as PresenceHandle;
  }

  /**
   * A device's connection ended. `clean: false` (socket dropped, ping timeout) keeps it
   * counted as connected for the grace window; `lastSeen` stays its last activity either
   * way. When `sessionId` is given and the device has since reconnected with another
   * session, the call is ignored.
   */
  disconnect(
    userId: UserId,
    deviceId: DeviceId,
    options: { readonly clean: boolean; readonly sessionId?: SessionId },
  ): void {
    const head = this.#index.get(userId);
    if (head === undefined) return;
    const slot = this.#findDevice(head, deviceId);
    if (slot === undefined || (this.#flags[slot]! & CONNECTED) === 0) return;
    const current = this.#sessions.get(slot);
    if (options.sessionId !== undefined && current !== undefined && current !== options.sessionId) {
      return;
    }
    const now = this.#clock.now();
    this.#sessions.delete(slot);
    let f = this.#flags[slot]! & ~CONNECTED;
    if (!options.clean && this.#grace > 0) {
      f |= IN_GRACE;
      this.#graceUntil[slot] = now + this.#grace;
    } else {
      f &= ~IN_GRACE;
    }
    this.#flags[slot] = f;
    this.#refresh(head, now);
  }

  /**
   * User activity from a device (a send, typing, a read, an `active` frame; never a
   * keepalive). The hot path: allocation-free for a known device; an unknown device is
   * recorded as not connected (its activity still counts for last seen).
   */
  touch(userId: UserId, deviceId: DeviceId): void {
    const head = this.#index.get(userId);
    if (head !== undefined) {
      let s = head;
      while (this.#deviceIds[s] !== deviceId) {
        s = this.#next[s]!;
        if (s < 0) break;
      }
      if (s >= 0) {
        const now = this.#clock.now();
        this.#lastActive[s] = now;
        // Already online: activity cannot change that, and the armed deadline re-checks
        // lazily when it fires (later activity only moves the real deadline later).
        if ((this.#flags[head]! & ONLINE) !== 0) return;
        this.#refresh(head, now);
        return;
      }
    }
    const now = this.#clock.now();
    const h = head ?? this.#addUser(userId);
    const slot = this.#addDevice(h, deviceId);
    this.#lastActive[slot] = now;
    this.#refresh(h, now);
  }

  /**
   * {@link touch} through the handle {@link connect} returned: no map lookup, no string
   * compare, allocation-free. The fastest way for a gateway to report activity.
   */
  touchDevice(handle: PresenceHandle): void {
    const slot = handle & SLOT_MASK;
    if (this.#gen[slot] !== handle >>> SLOT_BITS || (this.#flags[slot]! & USED) === 0) return;
    const now = this.#clock.now();
    this.#lastActive[slot] = now;
    const head = this.#owner[slot]!;
    if ((this.#flags[head]! & ONLINE) !== 0) return;
    this.#refresh(head, now);
  }

  /** The user's presence now, exactly (the pure function over the device records). */
  status(userId: UserId): UserPresence {
    const head = this.#index.get(userId);
    if (head === undefined) return NEVER_SEEN;
    this.#compute(head, this.#clock.now());
    return this.#cOnline
      ? ONLINE_PRESENCE
      : { status: "offline", lastSeen: Number.isNaN(this.#cLastSeen) ? null : this.#cLastSeen };
  }

  /** A snapshot of the user's device records (for the pure function, a store, or a test). */
  devices(userId: UserId): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    const head = this.#index.get(userId);
    for (let s = head ?? -1; s >= 0; s = this.#next[s]!) {
      const f = this.#flags[s]!;
      out.push({
        deviceId: this.#deviceIds[s]!,
        connected: (f & CONNECTED) !== 0,
        lastActive: this.#lastActive[s]!,
        ...((f & IN_GRACE) !== 0 ? { graceUntil: this.#graceUntil[s]! } : {}),
      });
    }
    return out;
  }

  /** Forgets a user entirely (device records, last seen, typing). Subscriptions stay. */
  forget(userId: UserId): void {
    const head = this.#index.get(userId);
    if (head === undefined) return;
    this.#stopTyping(userId);
    this.#index.delete(userId);
    for (let s = head; s >= 0; ) {
      const n = this.#next[s]!;
      this.#flags[s] = 0;
      this.#armedAt[s] = Number.NaN;
      this.#userIds[s] = undefined;
      this.#deviceIds[s] = undefined;
      this.#sessions.delete(s);
      this.#gen[s] = (this.#gen[s]! + 1) & 0x7f;
      this.#free.push(s);
      s = n;
    }
  }

  // ------------------------------------------------------------ subscriptions

  /**
   * `viewer` watches `subjects` (its open chat, its contact list): it gets each subject's
   * current state now, then pushed changes, coalesced and filtered by privacy.
   */
  subscribe(viewer: UserId, subjects: readonly UserId[]): void {
    let watching = this.#viewing.get(viewer);
    if (!watching) {
      watching = new Set();
      this.#viewing.set(viewer, watching);
    }
    for (const subject of subjects) {
      let entry = this.#subjects.get(subject);
      if (!entry) {
        entry = { viewers: new Map(), lastFlush: Number.NEGATIVE_INFINITY, timer: undefined };
        this.#subjects.set(subject, entry);
      }
      watching.add(subject);
      entry.viewers.set(viewer, undefined);
      this.#sendTo(viewer, subject, entry, this.#published(subject), undefined);
    }
  }

  /** `viewer` stops watching `subjects`. */
  unsubscribe(viewer: UserId, subjects: readonly UserId[]): void {
    const watching = this.#viewing.get(viewer);
    if (!watching) return;
    for (const subject of subjects) {
      watching.delete(subject);
      const entry = this.#subjects.get(subject);
      if (!entry) continue;
      entry.viewers.delete(viewer);
      if (entry.viewers.size === 0) {
        this.#clock.clear(entry.timer);
        this.#subjects.delete(subject);
      }
    }
    if (watching.size === 0) this.#viewing.delete(viewer);
  }

  /** Drops every subscription of `viewer` (call it when the viewer's last session ends). */
  unsubscribeAll(viewer: UserId): void {
    const watching = this.#viewing.get(viewer);
    if (watching) this.unsubscribe(viewer, [...watching]);
  }

  /** The subjects `viewer` watches. */
  subscriptionsOf(viewer: UserId): UserId[] {
    return [...(this.#viewing.get(viewer) ?? [])];
  }

  /**
   * Re-applies privacy after `user` changed their settings or contacts: their subscribers,
   * and (for the reciprocal rule) what they see of others, get frames where the view changed.
   */
  privacyChanged(user: UserId): void {
    const entry = this.#subjects.get(user);
    if (entry) {
      const p = this.#published(user);
      for (const viewer of entry.viewers.keys()) this.#sendTo(viewer, user, entry, p, undefined);
    }
    for (const subject of this.#viewing.get(user) ?? []) {
      const e = this.#subjects.get(subject);
      if (e) this.#sendTo(user, subject, e, this.#published(subject), undefined);
    }
  }

  // ------------------------------------------------------------------- typing

  /**
   * `from` is composing (or paused) a message to `to` (a user, or a target). Produces a
   * volatile `typing` event for the router on each change; a `composing` not refreshed
   * within the typing timeout turns into `paused` by itself, and so does every typing of a
   * user who goes offline. Nothing is stored beyond the live timer.
   */
  typing(from: UserId, to: UserId | Target, state: TypingState): void {
    if (this.#closed) return;
    const target: Target = typeof to === "string" ? { user: to } : to;
    const key = "user" in target ? `u:${target.user}` : `g:${target.group}`;
    let mine = this.#typing.get(from);
    const entry = mine?.get(key);
    if (state === "paused") {
      if (entry) this.#endTyping(from, key, entry);
      return;
    }
    if (entry) {
      this.#clock.clear(entry.timer);
      entry.timer = this.#clock.setTimeout(
        () => this.#endTyping(from, key, entry),
        this.#typingTimeout,
      );
      return;
    }
    if (!mine) {
      mine = new Map();
      this.#typing.set(from, mine);
    }
    const created: TypingEntry = {
      to: target,
      conversation:
        "user" in target ? directConversation(from, target.user) : groupConversation(target.group),
      timer: undefined,
    };
    created.timer = this.#clock.setTimeout(
      () => this.#endTyping(from, key, created),
      this.#typingTimeout,
    );
    mine.set(key, created);
    this.#emitTyping(from, created, "composing");
  }

  /**
   * Stops every timer. The tracker keeps answering {@link status}, but schedules nothing
   * more: no deadlines, no coalesced flushes, no typing.
   */
  close(): void {
    this.#closed = true;
    this.#clock.clear(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Number.POSITIVE_INFINITY;
    this.#heap.clear();
    this.#armedAt.fill(Number.NaN);
    for (const e of this.#subjects.values()) {
      this.#clock.clear(e.timer);
      e.timer = undefined;
    }
    for (const m of this.#typing.values()) for (const e of m.values()) this.#clock.clear(e.timer);
    this.#typing.clear();
  }

  // ---------------------------------------------------------------- internals

  #addUser(userId: UserId): number {
    const head = this.#alloc();
    this.#flags[head] = HEAD | USED;
    this.#owner[head] = head;
    this.#userIds[head] = userId;
    this.#deviceIds[head] = undefined;
    this.#armedAt[head] = Number.NaN;
    this.#pubLastSeen[head] = Number.NaN;
    this.#next[head] = -2; // no device yet: #addDevice fills the head first
    this.#index.set(userId, head);
    return head;
  }

  #addDevice(head: number, deviceId: DeviceId): number {
    if (this.#next[head] === -2) {
      this.#next[head] = -1;
      this.#deviceIds[head] = deviceId;
      this.#lastActive[head] = Number.NEGATIVE_INFINITY;
      return head;
    }
    const slot = this.#alloc();
    this.#flags[slot] = USED;
    this.#owner[slot] = head;
    this.#deviceIds[slot] = deviceId;
    this.#userIds[slot] = undefined;
    this.#lastActive[slot] = Number.NEGATIVE_INFINITY;
    this.#armedAt[slot] = Number.NaN;
    this.#next[slot] = this.#next[head]!;
    this.#next[head] = slot;
    return slot;
  }

  #findDevice(head: number, deviceId: DeviceId): number | undefined {
    for (let s = head; s >= 0; s = this.#next[s]!) if (this.#deviceIds[s] === deviceId) return s;
    return undefined;
  }

  #alloc(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    if (this.#used > SLOT_MASK) {
      throw new RelayError("overloaded", `PresenceTracker: more than ${SLOT_MASK + 1} devices`);
    }
    const slot = this.#used++;
    if (slot === this.#flags.length) this.#grow();
    this.#userIds.push(undefined);
    this.#deviceIds.push(undefined);
    return slot;
  }

  #grow(): void {
    const n = this.#flags.length * 2;
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.#lastActive = f64(this.#lastActive);
    this.#graceUntil = f64(this.#graceUntil);
    this.#armedAt = f64(this.#armedAt);
    this.#pubLastSeen = f64(this.#pubLastSeen);
    const next = new Int32Array(n);
    next.set(this.#next);
    this.#next = next;
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.#owner = i32(this.#owner);
    const gen = new Uint8Array(n);
    gen.set(this.#gen);
    this.#gen = gen;
    const flags = new Uint8Array(n);
    flags.set(this.#flags);
    this.#flags = flags;
  }

  /** Computes the status of the user at `head` into the scratch fields. */
  #compute(head: number, now: number): void {
    const threshold = this.#threshold;
    let online = false;
    let newest = Number.NEGATIVE_INFINITY;
    let until = Number.NEGATIVE_INFINITY;
    let any = false;
    for (let s = this.#next[head] === -2 ? -1 : head; s >= 0; s = this.#next[s]!) {
      any = true;
      const f = this.#flags[s]!;
      const la = this.#lastActive[s]!;
      if (la > newest) newest = la;
      if (now - la >= threshold) continue;
      if ((f & CONNECTED) !== 0) {
        online = true;
        if (la + threshold > until) until = la + threshold;
      } else if ((f & IN_GRACE) !== 0 && now < this.#graceUntil[s]!) {
        online = true;
        const end = Math.min(la + threshold, this.#graceUntil[s]!);
        if (end > until) until = end;
      }
    }
    this.#cOnline = online;
    this.#cLastSeen = online || !any ? Number.NaN : newest;
    this.#cUntil = until;
  }

  /** Recomputes a user after an event or deadline; publishes and notifies real changes. */
  #refresh(head: number, now: number): void {
    this.#compute(head, now);
    const online = this.#cOnline;
    const lastSeen = this.#cLastSeen;
    if (online) this.#arm(head, this.#cUntil, now);
    const f = this.#flags[head]!;
    const was = (f & ONLINE) !== 0;
    const prev = this.#pubLastSeen[head]!;
    if (
      was === online &&
      (online || prev === lastSeen || (Number.isNaN(prev) && Number.isNaN(lastSeen)))
    ) {
      return;
    }
    this.#flags[head] = online ? f | ONLINE : f & ~ONLINE;
    this.#pubLastSeen[head] = lastSeen;
    const user = this.#userIds[head]!;
    if (!online) this.#stopTyping(user);
    if (this.listenerCount("change") > 0) this.emit("change", user, this.#publishedAt(head));
    this.#changed(user, now);
  }

  #arm(head: number, due: number, now: number): void {
    if (this.#armedAt[head]! <= due) return;
    this.#armedAt[head] = due;
    this.#heap.push(due, head);
    if (!this.#firing) this.#schedule(now);
  }

  #schedule(now: number): void {
    if (this.#closed) return;
    const due = this.#heap.peekDue();
    if (due >= this.#timerDue) return;
    this.#clock.clear(this.#timer);
    this.#timerDue = due;
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, due - now));
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerDue = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    const heap = this.#heap;
    this.#firing = true;
    try {
      while (heap.size > 0 && heap.peekDue() <= now) {
        const due = heap.peekDue();
        const slot = heap.peekSlot();
        heap.pop();
        if (this.#armedAt[slot] !== due) continue; // superseded by an earlier deadline
        this.#armedAt[slot] = Number.NaN;
        if ((this.#flags[slot]! & HEAD) !== 0) this.#refresh(slot, now);
      }
    } finally {
      this.#firing = false;
    }
    this.#schedule(now);
  };

  #publishedAt(head: number): UserPresence {
    if ((this.#flags[head]! & ONLINE) !== 0) return ONLINE_PRESENCE;
    const ls = this.#pubLastSeen[head]!;
    return Number.isNaN(ls) ? NEVER_SEEN : { status: "offline", lastSeen: ls };
  }

  #published(user: UserId): UserPresence {
    const head = this.#index.get(user);
    return head === undefined ? NEVER_SEEN : this.#publishedAt(head);
  }

  /** A subject's published state changed: flush now, or once the coalescing interval ends. */
  #changed(user: UserId, now: number): void {
    const entry = this.#subjects.get(user);
    if (!entry || entry.timer !== undefined || this.#closed) return;
    const wait = entry.lastFlush + this.#coalesce - now;
    if (wait <= 0) {
      this.#flush(user, entry, now);
      return;
    }
    entry.timer = this.#clock.setTimeout(() => {
      entry.timer = undefined;
      this.#flush(user, entry, this.#clock.now());
    }, wait);
  }

  #flush(user: UserId, entry: SubjectEntry, now: number): void {
    const p = this.#published(user);
    let frame: PresenceFrame | undefined;
    let sent = false;
    for (const viewer of entry.viewers.keys()) {
      const shown = applyVisibility(p, this.#privacy(viewer, user));
      if (shown === p) {
        frame ??= toFrame(user, p);
        sent = this.#sendTo(viewer, user, entry, p, frame) || sent;
      } else {
        sent = this.#sendTo(viewer, user, entry, shown, undefined) || sent;
      }
    }
    if (sent) entry.lastFlush = now;
  }

  /** Sends `viewer` what it may see of `p` unless that is what it last got. */
  #sendTo(
    viewer: UserId,
    subject: UserId,
    entry: SubjectEntry,
    p: UserPresence,
    frame: PresenceFrame | undefined,
  ): boolean {
    const shown = frame ? p : applyVisibility(p, this.#privacy(viewer, subject));
    const last = entry.viewers.get(viewer);
    if (last !== undefined && last.status === shown.status && last.lastSeen === shown.lastSeen) {
      return false;
    }
    entry.viewers.set(viewer, shown);
    this.emit("notify", { viewer, frame: frame ?? toFrame(subject, shown) });
    return true;
  }

  #endTyping(from: UserId, key: string, entry: TypingEntry): void {
    const mine = this.#typing.get(from);
    if (mine?.get(key) !== entry) return;
    this.#clock.clear(entry.timer);
    mine.delete(key);
    if (mine.size === 0) this.#typing.delete(from);
    this.#emitTyping(from, entry, "paused");
  }

  #stopTyping(user: UserId): void {
    const mine = this.#typing.get(user);
    if (!mine) return;
    for (const [key, entry] of [...mine]) this.#endTyping(user, key, entry);
  }

  #emitTyping(from: UserId, entry: TypingEntry, state: TypingState): void {
    this.emit("typing", {
      to: entry.to,
      frame: { type: "typing", from, to: entry.to, conversation: entry.conversation, state },
    });
  }
}

const ONLINE_PRESENCE: UserPresence = Object.freeze({ status: "online", lastSeen: null });

function toFrame(user: UserId, p: UserPresence): PresenceFrame {
  return { type: "presence", user, status: p.status, lastSeen: p.lastSeen };
}
