import type { ConversationId } from "../core/ids.js";
import type { MaybePromise } from "../core/maybe.js";

/**
 * Hands out each conversation's sequence numbers: a total order per conversation, from 1.
 * @remarks It orders messages only within a conversation; there is no global order.
 */
export interface SequenceStore {
  /** The next sequence number of a conversation (1 for its first message). */
  next(conversation: ConversationId): MaybePromise<number>;
  /** The last number handed out (0 when none). */
  current(conversation: ConversationId): MaybePromise<number>;
  /**
   * Gives back `seq` when it is still the last number handed out (a send refused after it
   * took its number), so the conversation gets no gap; returns whether it did.
   * @remarks Optional: without it a refused send leaves a gap. When a later number was taken
   * meanwhile, the gap stays (numbers are never handed out twice).
   */
  release?(conversation: ConversationId, seq: number): MaybePromise<boolean>;
}

/** The in-memory {@link SequenceStore}: it answers at once. */
export class MemorySequenceStore implements SequenceStore {
  readonly #seq = new Map<ConversationId, number>();

  next(conversation: ConversationId): number {
    return this.nextSync(conversation);
  }

  /** Synchronous {@link next}. */
  nextSync(conversation: ConversationId): number {
    const n = (this.#seq.get(conversation) ?? 0) + 1;
    this.#seq.set(conversation, n);
    return n;
  }

  current(conversation: ConversationId): number {
    return this.#seq.get(conversation) ?? 0;
  }

  release(conversation: ConversationId, seq: number): boolean {
    if (this.#seq.get(conversation) !== seq) return false;
    if (seq <= 1) this.#seq.delete(conversation);
    else this.#seq.set(conversation, seq - 1);
    return true;
  }
}
