import type { ConversationId, DeviceKey, MessageId } from "../core/ids.js";
import type { MaybePromise } from "../core/maybe.js";
import type { Envelope } from "../core/types.js";

/**
 * How long messages are kept. `relay` is the seed's temporary chat: a message is dropped
 * once every recipient device has it. `history` keeps it for `historyMs` so a new device
 * can page back through a conversation.
 */
export type Retention =
  | { readonly mode: "relay" }
  | { readonly mode: "history"; readonly historyMs: number };

/**
 * Accepted messages, by id and by conversation.
 * @remarks It is not the delivery queue: what still has to reach a device lives in the
 * Outbox. This store answers "who sent message m" and "what came before seq n". A method
 * may answer at once (in memory) or with a promise.
 */
export interface MessageStore {
  /** Stores an accepted message and the devices it is addressed to (distinct keys). */
  put(envelope: Envelope, recipients: readonly DeviceKey[]): MaybePromise<void>;
  /** A stored message, if it is still kept. */
  get(id: MessageId): MaybePromise<Envelope | undefined>;
  /** Many at once, in the order asked (missing ones omitted). */
  getMany(ids: readonly MessageId[]): MaybePromise<readonly Envelope[]>;
  /** Records that a device has the message; in relay mode the last one drops it. */
  delivered(id: MessageId, device: DeviceKey): MaybePromise<void>;
  /** Up to `limit` messages of a conversation before `beforeSeq` (newest last). */
  history(
    conversation: ConversationId,
    opts: { beforeSeq?: number; limit: number },
  ): MaybePromise<readonly Envelope[]>;
  /** Drops history older than the retention allows; returns how many it dropped. */
  purge(now: number): MaybePromise<number>;
}

/**
 * A stored message and who still lacks it: the recipient list as given plus a bitmap, so a
 * 1,024-member group costs one copy of the list, not a set of 1,023 keys. Deliveries are
 * found by a cursor while they come in list order (a client's batched acks, a fan-out
 * drained in order) and through an index built at the first one that does not.
 */
interface Stored {
  readonly envelope: Envelope;
  readonly recipients: readonly DeviceKey[];
  /** 1 where the device has it; allocated at the first delivery. */
  got: Uint8Array | undefined;
  /** Recipients still without it. */
  left: number;
  /** Where the next in-order delivery is expected. */
  cursor: number;
  /** Position of each recipient, built when deliveries leave list order. */
  index: Map<DeviceKey, number> | undefined;
}

/** Up to this many recipients a delivery is found by a scan, not an index. */
const SCAN_UP_TO = 8;

/** The in-memory {@link MessageStore}: it answers at once. */
export class MemoryMessageStore implements MessageStore {
  readonly #byId = new Map<MessageId, Stored>();
  readonly #byConversation = new Map<ConversationId, Envelope[]>();
  readonly #retention: Retention;

  /** @param retention @default { mode: "relay" } */
  constructor(retention: Retention = { mode: "relay" }) {
    this.#retention = retention;
  }

  put(envelope: Envelope, recipients: readonly DeviceKey[]): void {
    this.putSync(envelope, recipients);
  }

  /** Synchronous {@link put}. */
  putSync(envelope: Envelope, recipients: readonly DeviceKey[]): void {
    const relay = this.#retention.mode === "relay";
    if (relay && recipients.length === 0) return;
    this.#byId.set(envelope.id, {
      envelope,
      // (A frozen list cannot change under it: kept as given.)
      recipients: Object.isFrozen(recipients) ? recipients : recipients.slice(),
      got: undefined,
      left: recipients.length,
      cursor: 0,
      index: undefined,
    });
    if (!relay) {
      let list = this.#byConversation.get(envelope.conversation);
      if (!list) {
        list = [];
        this.#byConversation.set(envelope.conversation, list);
      }
      list.push(envelope);
    }
  }

  get(id: MessageId): Envelope | undefined {
    return this.getSync(id);
  }

  /** Synchronous {@link get}. */
  getSync(id: MessageId): Envelope | undefined {
    return this.#byId.get(id)?.envelope;
  }

  getMany(ids: readonly MessageId[]): readonly Envelope[] {
    const out: Envelope[] = [];
    for (const id of ids) {
      const s = this.#byId.get(id);
      if (s) out.push(s.envelope);
    }
    return out;
  }

  delivered(id: MessageId, device: DeviceKey): void {
    this.deliveredSync(id, device);
  }

  /** Synchronous {@link delivered}. */
  deliveredSync(id: MessageId, device: DeviceKey): void {
    const s = this.#byId.get(id);
    if (!s || s.left === 0) return;
    const i = position(s, device);
    if (i < 0) return;
    s.got ??= new Uint8Array(s.recipients.length);
    const got = s.got;
    if (got[i] === 1) return;
    got[i] = 1;
    if (--s.left === 0 && this.#retention.mode === "relay") this.#byId.delete(id);
  }

  history(
    conversation: ConversationId,
    opts: { beforeSeq?: number; limit: number },
  ): readonly Envelope[] {
    const list = this.#byConversation.get(conversation) ?? [];
    const before = opts.beforeSeq ?? Number.POSITIVE_INFINITY;
    const upTo = list.filter((e) => e.seq < before);
    return upTo.slice(Math.max(0, upTo.length - opts.limit));
  }

  purge(now: number): number {
    if (this.#retention.mode !== "history") return 0;
    const cutoff = now - this.#retention.historyMs;
    let dropped = 0;
    for (const [conv, list] of this.#byConversation) {
      let i = 0;
      while (i < list.length && list[i]!.ts < cutoff) {
        this.#byId.delete(list[i]!.id);
        i++;
      }
      dropped += i;
      if (i === list.length) this.#byConversation.delete(conv);
      else if (i > 0) list.splice(0, i);
    }
    return dropped;
  }

  /** How many messages are held. */
  get size(): number {
    return this.#byId.size;
  }
}

/** Where `device` is in the message's recipient list, or -1. */
function position(s: Stored, device: DeviceKey): number {
  const list = s.recipients;
  const c = s.cursor;
  if (list[c] === device) {
    s.cursor = c + 1;
    return c;
  }
  if (list.length <= SCAN_UP_TO) return list.indexOf(device);
  if (!s.index) {
    s.index = new Map();
    for (let i = 0; i < list.length; i++) s.index.set(list[i]!, i);
  }
  return s.index.get(device) ?? -1;
}
