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
  /** Stores an accepted message and the devices it is addressed to. */
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

interface Stored {
  envelope: Envelope;
  pending: Set<DeviceKey>;
}

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
    this.#byId.set(envelope.id, { envelope, pending: new Set(recipients) });
    if (this.#retention.mode === "history") {
      let list = this.#byConversation.get(envelope.conversation);
      if (!list) {
        list = [];
        this.#byConversation.set(envelope.conversation, list);
      }
      list.push(envelope);
    } else if (recipients.length === 0) {
      this.#byId.delete(envelope.id);
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
    if (!s) return;
    s.pending.delete(device);
    if (s.pending.size === 0 && this.#retention.mode === "relay") this.#byId.delete(id);
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
