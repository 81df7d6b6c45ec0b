import assert from "node:assert/strict";
import { conversationId } from "../../core/index.js";
import type { SequenceStore } from "../../router/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

/**
 * The behaviour every {@link SequenceStore} must have. Run it against your own adapter:
 * `for (const c of sequenceStoreConformance(factory)) it(c.name, c.run)`.
 */
export function sequenceStoreConformance(factory: PortFactory<SequenceStore>): ConformanceCase[] {
  const with_ = (name: string, body: (seq: SequenceStore) => Promise<void>): ConformanceCase => ({
    name: `SequenceStore: ${name}`,
    async run() {
      const seq = await factory.create();
      try {
        await body(seq);
      } finally {
        await factory.dispose?.(seq);
      }
    },
  });
  const c1 = conversationId("c1");
  const c2 = conversationId("c2");

  return [
    with_("a new conversation is at 0 and starts at 1", async (seq) => {
      assert.equal(await seq.current(c1), 0);
      assert.equal(await seq.next(c1), 1);
      assert.equal(await seq.current(c1), 1);
    }),

    with_("numbers go up by one, per conversation", async (seq) => {
      assert.deepEqual([await seq.next(c1), await seq.next(c1), await seq.next(c1)], [1, 2, 3]);
      assert.equal(await seq.next(c2), 1);
      assert.equal(await seq.current(c1), 3);
      assert.equal(await seq.current(c2), 1);
    }),

    with_("current does not advance", async (seq) => {
      await seq.next(c1);
      await seq.current(c1);
      await seq.current(c1);
      assert.equal(await seq.next(c1), 2);
    }),

    with_("concurrent next calls hand out each number exactly once", async (seq) => {
      const got = await Promise.all(Array.from({ length: 100 }, () => seq.next(c1)));
      assert.deepEqual(
        [...got].sort((a, b) => a - b),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      assert.equal(await seq.current(c1), 100);
    }),

    with_("conversation ids with colons, braces and unicode are kept apart", async (seq) => {
      const odd = conversationId("dm:{alice}:bob é");
      const near = conversationId("dm:{alice}");
      assert.equal(await seq.next(odd), 1);
      assert.equal(await seq.next(odd), 2);
      assert.equal(await seq.current(near), 0);
      assert.equal(await seq.next(near), 1);
    }),

    with_("release gives back only the last number handed out (when supported)", async (seq) => {
      if (!seq.release) return;
      assert.equal(await seq.next(c1), 1);
      assert.equal(await seq.next(c1), 2);
      assert.equal(await seq.release(c1, 1), false);
      assert.equal(await seq.release(c1, 2), true);
      assert.equal(await seq.current(c1), 1);
      assert.equal(await seq.next(c1), 2);
      assert.equal(await seq.release(c2, 1), false);
      assert.equal(await seq.next(c2), 1);
      assert.equal(await seq.release(c2, 1), true);
      assert.equal(await seq.current(c2), 0);
      assert.equal(await seq.next(c2), 1);
    }),
  ];
}
