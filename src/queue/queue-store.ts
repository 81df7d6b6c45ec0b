import {
  type ClientMessageId,
  type ConversationId,
  type DeviceKey,
  deviceKey,
  type Envelope,
  type GroupId,
  type MessageId,
} from "../core/index.js";
import { matchRoster } from "./roster-match.js";

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
   * Keeps `record` for (sending device, client id) until `expiresAt`, unless a live record is already
   * there: the first write wins. Returns the record in force.
   */
  putSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): Promise<SentRecord>;
  /** The live record for (sender, client id) at `now`, if any. */
  getSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    now: number,
  ): Promise<SentRecord | undefined>;
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
    sender: DeviceKey,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): SentRecord;
  /** {@link QueueStore.getSent}, answered before returning. */
  getSentSync(sender: DeviceKey, clientId: ClientMessageId, now: number): SentRecord | undefined;
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

/**
 * Whose client ids an envelope's dedupe record is under: its sending device. Dedupe is per
 * (user, device, client id), so two devices of one user never collide on a client id.
 */
export function sentBy(envelope: Envelope): DeviceKey {
  return deviceKey(envelope.from, envelope.fromDevice);
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
  readonly sender: DeviceKey;
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
 * One device's own entries in append order: an array while it is small, a Map once it grows.
 * Most devices hold one or two entries that come and go: a scan finds them at once, where a
 * Map that keeps filling and emptying pays a rehash each time it empties.
 */
type Slots = Held[] | Map<MessageId, Held>;

/**
 * Where one device's entries are. Either its own `slots`, or (attached to a `roster` while it
 * has none of its own) the roster's log entries from `from` to the log's end, read from there.
 */
interface Box {
  slots: Slots;
  /** Attached: its entries are `roster`'s log entries [`from`, end), and `slots` is empty. */
  roster: Roster | undefined;
  /** Absolute index in `roster`'s log of its first entry (the log's end when it has none). */
  from: number;
  /** Dropped from the store while empty: a roster still pointing here looks it up again. */
  dropped: boolean;
  /** Stamp of the last roster append that reached it (a device listed twice gets one entry). */
  mark: number;
}

/** One message in a roster's log, and how many attached devices hold it through the log. */
interface LogEntry {
  readonly id: MessageId;
  readonly held: Held;
  holders: number;
}

/**
 * A recipient list that recurs (a group's devices): the appends to it are kept once, in its
 * log, and each device attached to it reads them from its cursor on ("fan-out on read"), so
 * appending or acking costs a counter per device instead of a Map lookup and a push.
 * A group's roster also serves its messages to all its devices but one (the sender's): that
 * device's cursor moves past the message, or it holds its entries itself first.
 */
class Roster {
  /** Its own copy of the recipient list, as appended (a device may be listed twice). */
  readonly keys: readonly DeviceKey[];
  /** The group whose current roster it is (found by group, not by content), if any. */
  readonly group: GroupId | undefined;
  /** Each key's box, parallel to `keys`, looked up once (again after a drop, see `epoch`). */
  readonly boxes: Box[];
  /** Some device is listed twice. */
  readonly twice: boolean;
  /** How many distinct devices it lists. */
  readonly distinct: number;
  /** How many of them are attached to it (all: an append touches none of them). */
  attached = 0;
  /** Its appends in order; `log[i]` has absolute index `base + i`, the live ones from `head`. */
  log: LogEntry[] = [];
  head = 0;
  base = 0;
  /** Absolute index one past the last entry (`base + log.length`). */
  end = 0;
  /** The store's drop count when `boxes` were last looked up. */
  epoch: number;
  /** Still findable in the store's cache; devices may stay attached with no entries. */
  cached = true;
  /** Appended to since the cache last considered evicting it (a second chance). */
  used = true;
  /**
   * A hint for a roster listing each device once: the indices (ascending) of the devices its
   * last append left not attached. An append trusts it only when `attached` shows that every
   * device outside it is attached, and then visits only these (see `#appendLoose`).
   */
  loose: number[] = [];

  constructor(
    keys: readonly DeviceKey[],
    group: GroupId | undefined,
    boxes: Box[],
    distinct: number,
    epoch: number,
  ) {
    this.keys = keys;
    this.group = group;
    this.boxes = boxes;
    this.twice = distinct < keys.length;
    this.distinct = distinct;
    this.epoch = epoch;
  }
}

/** What a frozen recipient list was last found to be: `roster`'s list, without `skip` (or -1). */
interface Given {
  roster: Roster;
  skip: number;
}

/** A device's entries become a Map above this many. */
const SLOTS_MAP_ABOVE = 16;

/** Appends of a fresh message to more devices than this go through a roster. */
const ROSTER_ABOVE = 8;

/** The roster cache keeps at most this many keys over all its rosters (about 1 MB). */
const ROSTER_KEYS_MAX = 1 << 16;

/** A roster's log drops its dead head once it is this long and most of the log. */
const LOG_COMPACT_AT = 64;

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

/** How many entries a box holds, its own or through its roster. */
function countOf(box: Box): number {
  const r = box.roster;
  return r === undefined ? sizeOf(box.slots) : r.end - box.from;
}

function newBox(slots: Held[]): Box {
  return { slots, roster: undefined, from: 0, dropped: false, mark: 0 };
}

/** Whether any of `ids` from `k` on is in `r`'s log from absolute index `from` on. */
function inLog(r: Roster, from: number, ids: readonly MessageId[], k: number): boolean {
  const log = r.log;
  for (let j = k; j < ids.length; j++) {
    const id = ids[j]!;
    for (let p = from - r.base; p < log.length; p++) if (log[p]!.id === id) return true;
  }
  return false;
}

/**
 * The in-memory {@link QueueStore}: one process, nothing survives it.
 * @remarks Entries of a device sit in an array while few (acks come in order, so removal
 * takes the head) and in an insertion-ordered Map once many, so append, remove and count
 * stay O(1). The devices of one append share one record of the message. A fresh message to
 * many devices whose list recurs (a group) is kept once, in that list's roster log: a device
 * holding nothing of its own attaches and reads the log from its cursor, so a fan-out costs a
 * counter per device, not a lookup and a push; an operation that needs the device's own list
 * (another append, an ack out of order) copies its log entries into it first. A group's
 * messages (to its devices but the sender's, a list per sender) share the group's one current
 * roster: the sender's device is skipped, its cursor moved past the message. Dedupe records
 * are swept lazily, oldest first. It answers synchronously too ({@link SyncQueueStore}), which
 * gives the delivery queue its promise-free fast path.
 */
export class MemoryQueueStore implements SyncQueueStore {
  readonly #byDevice = new Map<DeviceKey, Box>();
  /** How many devices have no entries and no roster (their boxes kept for reuse). */
  #empty = 0;
  /** Bumped by each {@link #dropEmpty}: a roster looked up before it looks its boxes up again. */
  #epoch = 0;
  /** Stamps a roster append, for a device listed twice. */
  #stamp = 0;
  /** Rosters of non-group lists by their first key (found by content, not identity). */
  readonly #rosters = new Map<DeviceKey, Roster[]>();
  /** Each group's current roster: its messages' lists are matched against it (one per group). */
  readonly #byGroup = new Map<GroupId, Roster>();
  /**
   * Frozen recipient lists appended to before (a router's cached lists, one per group and
   * sending device), and what they were found to be: valid while that roster is cached (for
   * a group's roster: while it is the group's current one), so they are not compared again.
   */
  readonly #given = new WeakMap<readonly DeviceKey[], Given>();
  /** Set by {@link #roster}: the index in the roster of the device that is not a recipient, or -1. */
  #skip = -1;
  /** The cached rosters (of groups and not), oldest first, for eviction. */
  #rosterOrder: Roster[] = [];
  #rosterKeys = 0;
  readonly #sent = new Map<DeviceKey, Map<ClientMessageId, SentSlot>>();
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
      const slot = this.#sent.get(sentBy(env))?.get(env.clientId);
      if (slot && slot.expiresAt > message.enqueuedAt) {
        if (slot.record.messageId !== id) return { ok: false, duplicate: slot.record };
        remembered = true;
      }
    }
    const added =
      recipients.length === 1
        ? this.#appendOne(message, recipients[0]!, maxPerDevice, fresh)
        : fresh && recipients.length > ROSTER_ABOVE
          ? this.#appendToRoster(
              message,
              this.#roster(recipients, (env.to as { readonly group?: GroupId }).group),
              maxPerDevice,
              this.#skip,
            )
          : this.#appendAll(message, recipients, maxPerDevice, fresh);
    if (typeof added !== "number") return added;
    if (dedupeUntil !== undefined && !remembered) {
      this.#remember(sentBy(env), env.clientId, sentRecordOf(env), dedupeUntil, message.enqueuedAt);
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
    const box = this.#byDevice.get(d);
    if (!box) {
      if (maxPerDevice < 1) return { ok: false, full: [d] };
      this.#byDevice.set(d, newBox([{ message, id }]));
      return 1;
    }
    if (box.roster !== undefined) this.#detach(box);
    const slots = box.slots;
    const size = sizeOf(slots);
    if (!fresh && size > 0 && holds(slots, id)) return 0;
    if (size + 1 > maxPerDevice) return { ok: false, full: [d] };
    if (size === 0) this.#empty--;
    this.#add(box, { message, id });
    return 1;
  }

  /** Any append, one device at a time (each device's entries its own). */
  #appendAll(
    message: QueuedMessage,
    recipients: readonly DeviceKey[],
    maxPerDevice: number,
    fresh: boolean,
  ): number | AppendResult {
    const id = message.envelope.id;
    const n = recipients.length;
    // Each device's box, looked up once: `null` where the entry is there already.
    const found: (Box | undefined | null)[] = new Array(n);
    let full: DeviceKey[] | undefined;
    for (let i = 0; i < n; i++) {
      const d = recipients[i]!;
      const box = this.#byDevice.get(d);
      if (box?.roster !== undefined) this.#detach(box!);
      const size = box ? sizeOf(box.slots) : 0;
      if (!fresh && size > 0 && holds(box!.slots, id)) {
        found[i] = null;
        continue;
      }
      found[i] = box;
      if (size + 1 > maxPerDevice) {
        full ??= [];
        full.push(d);
      }
    }
    if (full) return { ok: false, full };
    const held: Held = { message, id };
    let added = 0;
    for (let i = 0; i < n; i++) {
      const box = found[i];
      if (box === null) continue;
      const d = recipients[i]!;
      // A device listed twice finds its own first append: skipped.
      if (box === undefined) {
        if (this.#byDevice.has(d)) continue;
        this.#byDevice.set(d, newBox([held]));
      } else {
        const slots = box.slots;
        if (Array.isArray(slots)) {
          if (slots.length > 0 && slots[slots.length - 1] === held) continue;
          if (slots.length === 0) this.#empty--;
        } else if (slots.get(id) === held) continue;
        this.#add(box, held);
      }
      added++;
    }
    return added;
  }

  /**
   * A fresh message to a roster's devices, but the one at index `skip` (if not -1, in a
   * roster listing each device once: a group message's sender): a device attached to it, or
   * holding nothing, takes the message through the log (a counter); any other gets its own
   * entry. The device at `skip` gets nothing: attached with no entries, its cursor moves past
   * the message; attached with entries, they become its own first (the log message is not
   * in its range, and a cursor cannot jump over it).
   */
  #appendToRoster(
    message: QueuedMessage,
    r: Roster,
    maxPerDevice: number,
    skip: number,
  ): number | AppendResult {
    /** The device at `skip`, attached with no entries: its cursor goes to the new end. */
    let skipped: Box | undefined;
    if (skip >= 0) {
      const box = r.boxes[skip]!;
      if (box.roster === r) {
        if (box.from === r.end) skipped = box;
        else this.#detach(box);
      }
    }
    // Every device attached (the steady state of a group): the longest of their lists is the
    // live log (its head is held by someone), and the append is one log entry.
    const room = r.end - r.base - r.head + 1 <= maxPerDevice;
    if (r.attached === r.distinct && room) {
      const id = message.envelope.id;
      // (All attached: the device at `skip`, if any, is `skipped`.)
      const holders = skipped === undefined ? r.distinct : r.distinct - 1;
      r.log.push({ id, held: { message, id }, holders });
      r.end++;
      if (skipped !== undefined) skipped.from = r.end;
      return holders;
    }
    const boxes = r.boxes;
    const n = boxes.length;
    // All attached but a few, known: only they are visited (a group whose senders rotate,
    // each holding its entries itself for a while after sending).
    if (room && !r.twice && r.loose.length * 8 <= n) {
      const done = this.#appendLoose(message, r, maxPerDevice, skip, skipped);
      if (done !== undefined) return done;
    }
    /** The devices not attached after this append (a roster listing each device once). */
    const loose: number[] | undefined = r.twice ? undefined : [];
    let full: DeviceKey[] | undefined;
    for (let i = 0; i < n; i++) {
      if (i === skip) continue;
      if (countOf(boxes[i]!) + 1 > maxPerDevice) {
        full ??= [];
        full.push(r.keys[i]!);
      }
    }
    if (full) return { ok: false, full };
    const held: Held = { message, id: message.envelope.id };
    const stamp = r.twice ? ++this.#stamp : 0;
    const end = r.end;
    let holders = 0;
    let added = 0;
    for (let i = 0; i < n; i++) {
      if (i === skip) {
        if (skipped === undefined) loose?.push(i);
        continue;
      }
      const box = boxes[i]!;
      if (stamp !== 0) {
        if (box.mark === stamp) continue;
        box.mark = stamp;
      }
      added++;
      if (this.#take(box, r, held, end)) holders++;
      else loose?.push(i);
    }
    this.#logged(r, held, holders, skipped);
    if (loose !== undefined) r.loose = loose;
    return added;
  }

  /**
   * A roster device takes an appended message: through the log (attached already, or
   * attached now that it holds nothing: `true`) or as an entry of its own (`false`).
   */
  #take(box: Box, r: Roster, held: Held, end: number): boolean {
    const at = box.roster;
    if (at === r) return true;
    if (at !== undefined) this.#detach(box);
    if (sizeOf(box.slots) === 0) {
      box.roster = r;
      box.from = end;
      r.attached++;
      this.#empty--;
      return true;
    }
    this.#add(box, held);
    return false;
  }

  /** The appended message joins the log if a device holds it there; the skipped device's cursor passes it. */
  #logged(r: Roster, held: Held, holders: number, skipped: Box | undefined): void {
    if (holders > 0) {
      r.log.push({ id: held.id, held, holders });
      r.end++;
    }
    if (skipped !== undefined) skipped.from = r.end;
  }

  /**
   * {@link #appendToRoster} to a roster listing each device once whose live log has room,
   * visiting only the devices in its `loose` hint and the one at `skip`; `undefined` (nothing
   * done) unless every other device is attached. Those hold at most the live log, so none is
   * full, and each takes the message through the log.
   */
  #appendLoose(
    message: QueuedMessage,
    r: Roster,
    maxPerDevice: number,
    skip: number,
    skipped: Box | undefined,
  ): number | AppendResult | undefined {
    const boxes = r.boxes;
    const loose = r.loose;
    // The hint holds when the devices attached outside it are all outside it (a count).
    let few = loose.length;
    let attached = 0;
    let skipIn = false;
    for (let k = 0; k < loose.length; k++) {
      const i = loose[k]!;
      if (i === skip) skipIn = true;
      if (boxes[i]!.roster === r) attached++;
    }
    if (skip >= 0 && !skipIn) {
      few++;
      if (skipped !== undefined) attached++;
    }
    if (r.attached - attached !== r.distinct - few) return undefined;
    let full: DeviceKey[] | undefined;
    for (let k = 0; k < loose.length; k++) {
      const i = loose[k]!;
      if (i !== skip && countOf(boxes[i]!) + 1 > maxPerDevice) {
        full ??= [];
        full.push(r.keys[i]!);
      }
    }
    if (full) return { ok: false, full };
    const held: Held = { message, id: message.envelope.id };
    const end = r.end;
    // Every device outside the few is attached and takes it.
    let holders = r.distinct - few;
    let added = holders;
    const next: number[] = [];
    for (let k = 0; k < loose.length; k++) {
      const i = loose[k]!;
      if (i === skip) continue;
      const box = boxes[i]!;
      added++;
      if (this.#take(box, r, held, end)) holders++;
      else next.push(i);
    }
    this.#logged(r, held, holders, skipped);
    if (skipped === undefined && skip >= 0) {
      // Not attached: in the hint, in index order.
      let k = next.length;
      while (k > 0 && next[k - 1]! > skip) k--;
      next.splice(k, 0, skip);
    }
    r.loose = next;
    return added;
  }

  /**
   * The roster of this recipient list, made if none; sets {@link #skip}. A group's list is
   * its current roster's list, or that list without one device (the sender's: `#skip`);
   * another list makes a new current roster (see {@link #groupRoster}). Any other list is a
   * cached roster's list (same devices, same order).
   */
  #roster(recipients: readonly DeviceKey[], group: GroupId | undefined): Roster {
    // A frozen list seen before (a router's cached group recipients) cannot have changed.
    const frozen = Object.isFrozen(recipients);
    let given: Given | undefined;
    if (frozen) {
      given = this.#given.get(recipients);
      if (given !== undefined) {
        const r = given.roster;
        if (r.cached && r.group === group) {
          this.#skip = given.skip;
          return this.#found(r);
        }
      }
    }
    this.#skip = -1;
    const r =
      group === undefined ? this.#findRoster(recipients) : this.#groupRoster(group, recipients);
    if (given !== undefined) {
      given.roster = r;
      given.skip = this.#skip;
    } else if (frozen) {
      this.#given.set(recipients, { roster: r, skip: this.#skip });
    }
    return r;
  }

  /** A cached roster found again. */
  #found(r: Roster): Roster {
    r.used = true;
    if (r.epoch !== this.#epoch) this.#lookUpAgain(r);
    return r;
  }

  #findRoster(recipients: readonly DeviceKey[]): Roster {
    const first = recipients[0]!;
    const n = recipients.length;
    const bucket = this.#rosters.get(first);
    if (bucket) {
      next: for (const r of bucket) {
        const keys = r.keys;
        if (keys.length !== n) continue;
        for (let i = 1; i < n; i++) if (keys[i] !== recipients[i]) continue next;
        return this.#found(r);
      }
    }
    return this.#newRoster(recipients.slice(), undefined);
  }

  /**
   * A group's roster for `recipients` (see {@link matchRoster}): its current roster when they
   * are its list, or its list without one device (`#skip`); a new current roster of its list
   * with one device added when they are that without another (`#skip`: a member joined, or a
   * sender after a new list); else a new current roster of `recipients`. Only a roster
   * listing each device once serves a list without one device.
   */
  #groupRoster(group: GroupId, recipients: readonly DeviceKey[]): Roster {
    const current = this.#byGroup.get(group);
    if (current !== undefined) {
      const match = matchRoster(current.keys, recipients);
      if (match?.kind === "same") return this.#found(current);
      if (match !== undefined && !current.twice) {
        if (match.kind === "skip") {
          this.#skip = match.skip;
          return this.#found(current);
        }
        // The union is the current list and one more device: distinct unless that one is
        // listed already (the recipients list a device twice).
        const keys = match.keys;
        let p = 0;
        while (p < current.keys.length && keys[p] === current.keys[p]) p++;
        if (!current.keys.includes(keys[p]!)) {
          const r = this.#newRoster(keys, group);
          this.#skip = match.skip;
          return r;
        }
      }
    }
    return this.#newRoster(recipients.slice(), group);
  }

  /**
   * A new cached roster of `keys` (its own array), of `group` (which it becomes the current
   * roster of) or of none (found by its first key).
   */
  #newRoster(keys: readonly DeviceKey[], group: GroupId | undefined): Roster {
    const n = keys.length;
    if (group !== undefined) {
      const old = this.#byGroup.get(group);
      if (old !== undefined) {
        // Replaced: found no more, so no longer cached (its devices with entries drain).
        const order = this.#rosterOrder;
        order.splice(order.lastIndexOf(old), 1);
        this.#uncache(old);
      }
    }
    this.#evictRosters(n);
    const boxes = new Array<Box>(n);
    const stamp = ++this.#stamp;
    let distinct = 0;
    for (let i = 0; i < n; i++) {
      const box = this.#boxOf(keys[i]!);
      if (box.mark !== stamp) distinct++;
      box.mark = stamp;
      boxes[i] = box;
    }
    const r = new Roster(keys, group, boxes, distinct, this.#epoch);
    if (group !== undefined) {
      this.#byGroup.set(group, r);
    } else {
      // (Looked up after the eviction, which may have dropped the bucket.)
      const first = keys[0]!;
      const bucket = this.#rosters.get(first);
      if (bucket) bucket.push(r);
      else this.#rosters.set(first, [r]);
    }
    this.#rosterOrder.push(r);
    this.#rosterKeys += n;
    return r;
  }

  /** Makes room for a roster of `n` keys: the oldest rosters not appended to lately go. */
  #evictRosters(n: number): void {
    const order = this.#rosterOrder;
    while (this.#rosterKeys + n > ROSTER_KEYS_MAX && order.length > 0) {
      const r = order.shift()!;
      if (r.used) {
        r.used = false;
        order.push(r);
        continue;
      }
      this.#uncache(r);
    }
  }

  /** A roster leaves the cache (the caller took it out of `#rosterOrder`): no longer found. */
  #uncache(r: Roster): void {
    this.#rosterKeys -= r.keys.length;
    r.cached = false;
    if (r.group !== undefined) {
      if (this.#byGroup.get(r.group) === r) this.#byGroup.delete(r.group);
    } else {
      const first = r.keys[0]!;
      const bucket = this.#rosters.get(first)!;
      if (bucket.length === 1) this.#rosters.delete(first);
      else bucket.splice(bucket.indexOf(r), 1);
    }
    // Its devices with no entries left leave it (the ones with entries leave as they drain).
    for (const box of r.boxes) {
      if (box.roster === r && box.from === r.end) {
        box.roster = undefined;
        r.attached--;
        this.#empty++;
      }
    }
  }

  /** A device's box, made (empty) if it has none. */
  #boxOf(d: DeviceKey): Box {
    let box = this.#byDevice.get(d);
    if (!box) {
      box = newBox([]);
      this.#byDevice.set(d, box);
      this.#empty++;
    }
    return box;
  }

  /** A roster's boxes dropped since it last looked them up are looked up again. */
  #lookUpAgain(r: Roster): void {
    const boxes = r.boxes;
    for (let i = 0; i < boxes.length; i++) {
      if (boxes[i]!.dropped) boxes[i] = this.#boxOf(r.keys[i]!);
    }
    r.epoch = this.#epoch;
  }

  /**
   * Detaches a device from its roster: its log entries become its own (in order). A device
   * with none becomes a plain empty one.
   */
  #detach(box: Box): void {
    const r = box.roster!;
    box.roster = undefined;
    r.attached--;
    if (box.from === r.end) {
      this.#empty++;
      return;
    }
    const log = r.log;
    for (let p = box.from - r.base; p < log.length; p++) {
      const e = log[p]!;
      e.holders--;
      this.#add(box, e.held);
    }
    this.#trim(r);
  }

  /** Drops a roster log's head while no device holds it; compacts now and then (amortised O(1)). */
  #trim(r: Roster): void {
    const log = r.log;
    let h = r.head;
    while (h < log.length && log[h]!.holders === 0) h++;
    if (h === r.head) return;
    if (h === log.length) {
      r.base = r.end;
      r.log = [];
      r.head = 0;
    } else if (h >= LOG_COMPACT_AT && h * 2 >= log.length) {
      r.log = log.slice(h);
      r.base += h;
      r.head = 0;
    } else {
      r.head = h;
    }
  }

  /** Appends to a device's own entries, which become a Map when they outgrow an array. */
  #add(box: Box, held: Held): void {
    const slots = box.slots;
    if (!Array.isArray(slots)) {
      slots.set(held.id, held);
      return;
    }
    slots.push(held);
    if (slots.length > SLOTS_MAP_ABOVE) box.slots = new Map(slots.map((h) => [h.id, h]));
  }

  /** A device was left with no entries and no roster. */
  #emptied(): void {
    // Kept for reuse (an online device empties and refills constantly); swept in bulk.
    this.#empty++;
    if (this.#empty > 1024 && this.#empty * 2 > this.#byDevice.size) this.#dropEmpty();
  }

  #dropEmpty(): void {
    // A device attached to a (cached) roster stays, even with no entries: it is about to get some.
    for (const [d, box] of this.#byDevice) {
      if (box.roster === undefined && sizeOf(box.slots) === 0) {
        this.#byDevice.delete(d);
        box.dropped = true;
      }
    }
    this.#empty = 0;
    this.#epoch++;
  }

  async list(device: DeviceKey): Promise<readonly QueuedMessage[]> {
    const box = this.#byDevice.get(device);
    if (!box) return [];
    const out: QueuedMessage[] = [];
    const r = box.roster;
    if (r !== undefined) {
      const log = r.log;
      for (let p = box.from - r.base; p < log.length; p++) out.push(log[p]!.held.message);
    } else {
      for (const h of box.slots.values()) out.push(h.message);
    }
    return out;
  }

  async count(device: DeviceKey): Promise<number> {
    const box = this.#byDevice.get(device);
    return box ? countOf(box) : 0;
  }

  async devices(): Promise<readonly DeviceKey[]> {
    const out: DeviceKey[] = [];
    for (const [d, box] of this.#byDevice) if (countOf(box) > 0) out.push(d);
    return out;
  }

  async remove(device: DeviceKey, ids: readonly MessageId[]): Promise<number> {
    return this.removeSync(device, ids);
  }

  /** Synchronous {@link remove}. */
  removeSync(device: DeviceKey, ids: readonly MessageId[]): number {
    const box = this.#byDevice.get(device);
    if (!box) return 0;
    if (box.roster !== undefined) return this.#removeAttached(box, box.roster, ids);
    const slots = box.slots;
    if (Array.isArray(slots)) {
      if (slots.length === 0) return 0;
      // One ack of the oldest entry (an online device's steady state).
      if (ids.length === 1 && slots[0]!.id === ids[0]) {
        slots.shift();
        if (slots.length === 0) this.#emptied();
        return 1;
      }
    }
    const n = this.#removeOwn(box, ids, 0);
    if (n > 0 && sizeOf(box.slots) === 0) this.#emptied();
    return n;
  }

  /** {@link removeSync} for a device attached to roster `r`. */
  #removeAttached(box: Box, r: Roster, ids: readonly MessageId[]): number {
    // Acks of its log entries in order (the common case) move the cursor.
    const end = r.end;
    let p = box.from;
    if (p === end) return 0;
    const log = r.log;
    const base = r.base;
    let n = 0;
    while (n < ids.length && p < end) {
      const e = log[p - base]!;
      if (e.id !== ids[n]) break;
      e.holders--;
      p++;
      n++;
    }
    box.from = p;
    if (n > 0) this.#trim(r);
    if (n === ids.length || p === end || !inLog(r, p, ids, n)) {
      if (n > 0 && p === end && !r.cached) {
        // Drained from a roster no longer cached: a plain empty device.
        box.roster = undefined;
        r.attached--;
        this.#emptied();
      }
      return n;
    }
    // An ack out of order: its entries become its own, then go as any device's do.
    this.#detach(box);
    n += this.#removeOwn(box, ids, n);
    if (sizeOf(box.slots) === 0) this.#emptied();
    return n;
  }

  /** Removes `ids` from `k` on from a device's own entries; returns how many went. */
  #removeOwn(box: Box, ids: readonly MessageId[], k: number): number {
    const slots = box.slots;
    let n = 0;
    if (Array.isArray(slots)) {
      // Batched acks of the oldest entries, in order: one cut.
      let head = 0;
      while (k + head < ids.length && head < slots.length && slots[head]!.id === ids[k + head]) {
        head++;
      }
      if (head === 1) slots.shift();
      else if (head > 1) slots.splice(0, head);
      n = head;
      for (let j = k + head; j < ids.length; j++) {
        const id = ids[j]!;
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
      for (let j = k; j < ids.length; j++) if (slots.delete(ids[j]!)) n++;
      // Drained: back to a (reused) array.
      if (slots.size === 0) box.slots = [];
    }
    return n;
  }

  async putSent(
    sender: DeviceKey,
    clientId: ClientMessageId,
    record: SentRecord,
    expiresAt: number,
    now: number,
  ): Promise<SentRecord> {
    return this.putSentSync(sender, clientId, record, expiresAt, now);
  }

  /** Synchronous {@link putSent}. */
  putSentSync(
    sender: DeviceKey,
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

  /** Keeps `record` for (sending device, client id): the caller found no live record there. */
  #remember(
    sender: DeviceKey,
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
    sender: DeviceKey,
    clientId: ClientMessageId,
    now: number,
  ): Promise<SentRecord | undefined> {
    return this.getSentSync(sender, clientId, now);
  }

  /** Synchronous {@link getSent}. */
  getSentSync(sender: DeviceKey, clientId: ClientMessageId, now: number): SentRecord | undefined {
    const slot = this.#sent.get(sender)?.get(clientId);
    return slot && slot.expiresAt > now ? slot.record : undefined;
  }

  /** How many entries are stored, over all devices. */
  get size(): number {
    let n = 0;
    for (const box of this.#byDevice.values()) n += countOf(box);
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
