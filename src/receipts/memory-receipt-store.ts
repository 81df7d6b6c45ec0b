import type { ConversationId, MessageId, UserId } from "../core/index.js";
import type { ServerReceiptFrame } from "../protocol/schemas.js";
import type {
  ReceiptRecord,
  ReceiptStore,
  ReceiptStoreSize,
  TrackedMessage,
  WatermarkAdvance,
} from "./receipt-store.js";
import type { ReceiptState } from "./state.js";
import type { Watermark } from "./status.js";

/**
 * One tracked message. Kept small because a server holds millions: the times array is
 * allocated on the first delivered/read (most entries wait without one), and the
 * delivered/read views are built only when read (`info`), never on the ack path.
 */
class Entry implements ReceiptRecord {
  readonly message: TrackedMessage;
  readonly states: ReceiptState[];
  /** `[deliveredAt × n, readAt × n]`, NaN = not reached; undefined until first needed. */
  times: number[] | undefined = undefined;

  constructor(message: TrackedMessage, initial: ReceiptState) {
    this.message = message;
    this.states = new Array<ReceiptState>(message.recipients.length).fill(initial);
  }

  get deliveredAt(): ArrayLike<number> {
    return this.#slice(0);
  }

  get readAt(): ArrayLike<number> {
    return this.#slice(this.states.length);
  }

  #slice(from: number): number[] {
    const n = this.states.length;
    return this.times ? this.times.slice(from, from + n) : new Array<number>(n).fill(Number.NaN);
  }
}

interface Pointer {
  readonly conversation: ConversationId;
  readonly reader: UserId;
  upTo: number;
  at: number;
  expiresAt: number;
}

interface ConversationIndex {
  readonly seqs: number[];
  readonly ids: MessageId[];
}

/** First index in sorted `a` whose value is > `x`. */
function upperBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The in-memory {@link ReceiptStore}: one process, no services. Messages are indexed by
 * conversation in seq order (binary search for watermark ranges) and expiry uses a min-heap
 * in two parallel arrays, so `expire` costs O(expired · log n), not a scan.
 */
export class MemoryReceiptStore implements ReceiptStore {
  readonly #messages = new Map<MessageId, Entry>();
  readonly #held = new Map<UserId, { frame: ServerReceiptFrame; expiresAt: number }[]>();
  readonly #conversations = new Map<ConversationId, ConversationIndex>();
  readonly #pointers = new Map<ConversationId, Map<UserId, Pointer>>();
  // Min-heap by due time: `#dueAt[i]` is when `#dueItem[i]` (an entry or a pointer) expires.
  readonly #dueAt: number[] = [];
  readonly #dueItem: (Entry | Pointer)[] = [];
  #entries = 0;
  #pointerCount = 0;
  // Heap items whose message was released or whose pointer moved on; compacted when they
  // outnumber the live ones, so released state does not linger until its expiry time.
  #stale = 0;

  track(message: TrackedMessage, initial: ReceiptState): boolean {
    if (this.#messages.has(message.id)) return false;
    const entry = new Entry(message, initial);
    this.#messages.set(message.id, entry);
    this.#entries += entry.states.length;
    let index = this.#conversations.get(message.conversation);
    if (!index) {
      index = { seqs: [], ids: [] };
      this.#conversations.set(message.conversation, index);
    }
    // Messages usually arrive in seq order: append; otherwise insert in place.
    const last = index.seqs[index.seqs.length - 1];
    if (last === undefined || last <= message.seq) {
      index.seqs.push(message.seq);
      index.ids.push(message.id);
    } else {
      const at = upperBound(index.seqs, message.seq);
      index.seqs.splice(at, 0, message.seq);
      index.ids.splice(at, 0, message.id);
    }
    this.#push(message.expiresAt, entry);
    return true;
  }

  load(id: MessageId): ReceiptRecord | undefined {
    return this.#messages.get(id);
  }

  setState(id: MessageId, index: number, state: ReceiptState, at: number): void {
    const e = this.#messages.get(id);
    if (!e || index < 0 || index >= e.states.length) return;
    e.states[index] = state;
    if (state !== "delivered" && state !== "read") return;
    const n = e.states.length;
    e.times ??= new Array<number>(2 * n).fill(Number.NaN);
    if (Number.isNaN(e.times[index]!)) e.times[index] = at;
    if (state === "read" && Number.isNaN(e.times[n + index]!)) e.times[n + index] = at;
  }

  advanceWatermark(
    reader: UserId,
    conversation: ConversationId,
    upTo: number,
    at: number,
    expiresAt: number,
  ): WatermarkAdvance {
    let byReader = this.#pointers.get(conversation);
    const p = byReader?.get(reader);
    const previous = p ? { upTo: p.upTo, at: p.at } : undefined;
    if (p && p.upTo >= upTo) return { advanced: false, previous };
    if (p) {
      this.#stale++;
      p.upTo = upTo;
      p.at = at;
      p.expiresAt = expiresAt;
      this.#push(expiresAt, p);
    } else {
      if (!byReader) {
        byReader = new Map();
        this.#pointers.set(conversation, byReader);
      }
      const fresh: Pointer = { conversation, reader, upTo, at, expiresAt };
      byReader.set(reader, fresh);
      this.#pointerCount++;
      this.#push(expiresAt, fresh);
    }
    this.#compact();
    return { advanced: true, previous };
  }

  watermarks(conversation: ConversationId): ReadonlyMap<UserId, Watermark> {
    const byReader = this.#pointers.get(conversation);
    if (!byReader) return NO_WATERMARKS;
    const out = new Map<UserId, Watermark>();
    for (const [u, p] of byReader) {
      out.set(u, { upTo: p.upTo, at: p.at });
    }
    return out;
  }

  inRange(conversation: ConversationId, after: number, upTo: number): readonly MessageId[] {
    const index = this.#conversations.get(conversation);
    if (!index || upTo <= after) return [];
    return index.ids.slice(upperBound(index.seqs, after), upperBound(index.seqs, upTo));
  }

  release(ids: readonly MessageId[]): number {
    let n = 0;
    for (const id of ids) if (this.#drop(id)) n++;
    this.#stale += n;
    this.#compact();
    return n;
  }

  expire(now: number): readonly MessageId[] {
    const out: MessageId[] = [];
    while (this.#dueAt.length > 0 && this.#dueAt[0]! <= now) {
      const at = this.#dueAt[0]!;
      const item = this.#pop();
      if (!this.#live(at, item)) {
        this.#stale--;
      } else if (item instanceof Entry) {
        this.#drop(item.message.id);
        out.push(item.message.id);
      } else {
        const byReader = this.#pointers.get(item.conversation)!;
        byReader.delete(item.reader);
        this.#pointerCount--;
        if (byReader.size === 0) this.#pointers.delete(item.conversation);
      }
    }
    return out;
  }

  size(): ReceiptStoreSize {
    return {
      messages: this.#messages.size,
      entries: this.#entries,
      watermarks: this.#pointerCount,
    };
  }

  hold(user: UserId, frame: ServerReceiptFrame, expiresAt: number, max: number): void {
    let list = this.#held.get(user);
    if (!list) {
      list = [];
      this.#held.set(user, list);
    }
    list.push({ frame, expiresAt });
    if (list.length > max) list.splice(0, list.length - max);
  }

  takeHeld(user: UserId, now: number): readonly ServerReceiptFrame[] {
    const list = this.#held.get(user);
    if (!list) return [];
    this.#held.delete(user);
    return list.filter((h) => h.expiresAt > now).map((h) => h.frame);
  }

  #drop(id: MessageId): boolean {
    const e = this.#messages.get(id);
    if (!e) return false;
    this.#messages.delete(id);
    this.#entries -= e.states.length;
    const index = this.#conversations.get(e.message.conversation);
    if (index) {
      // Several messages may share a seq only through misuse; find this id among equals.
      let i = upperBound(index.seqs, e.message.seq) - 1;
      while (i >= 0 && index.seqs[i] === e.message.seq && index.ids[i] !== id) i--;
      if (i >= 0 && index.ids[i] === id) {
        index.seqs.splice(i, 1);
        index.ids.splice(i, 1);
      }
      if (index.ids.length === 0) this.#conversations.delete(e.message.conversation);
    }
    return true;
  }

  /** True when a heap item is still tracked and `at` is its current expiry. */
  #live(at: number, item: Entry | Pointer): boolean {
    if (item instanceof Entry) {
      return this.#messages.get(item.message.id) === item && item.message.expiresAt === at;
    }
    return (
      this.#pointers.get(item.conversation)?.get(item.reader) === item && item.expiresAt === at
    );
  }

  #compact(): void {
    if (this.#stale < 1024 || this.#stale * 2 < this.#dueAt.length) return;
    const at = this.#dueAt.splice(0);
    const items = this.#dueItem.splice(0);
    this.#stale = 0;
    for (let i = 0; i < at.length; i++) {
      if (this.#live(at[i]!, items[i]!)) this.#push(at[i]!, items[i]!);
    }
  }

  #swap(i: number, j: number): void {
    const a = this.#dueAt;
    const b = this.#dueItem;
    [a[i], a[j]] = [a[j]!, a[i]!];
    [b[i], b[j]] = [b[j]!, b[i]!];
  }

  #push(at: number, item: Entry | Pointer): void {
    const a = this.#dueAt;
    a.push(at);
    this.#dueItem.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= a[i]!) break;
      this.#swap(i, p);
      i = p;
    }
  }

  #pop(): Entry | Pointer {
    const a = this.#dueAt;
    const b = this.#dueItem;
    const top = b[0]!;
    const lastAt = a.pop()!;
    const lastItem = b.pop()!;
    if (a.length > 0) {
      a[0] = lastAt;
      b[0] = lastItem;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]! < a[m]!) m = l;
        if (r < a.length && a[r]! < a[m]!) m = r;
        if (m === i) break;
        this.#swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

const NO_WATERMARKS: ReadonlyMap<UserId, Watermark> = new Map();
