import { describe, expect, it } from "vitest";
import type { ConversationId } from "../../src/core/ids.js";
import { MemorySequenceStore, type SequenceStore } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

/** A sequence store whose first answer comes late (when the test releases it), like a slow Redis. */
class LateSequenceStore implements SequenceStore {
  readonly #inner = new MemorySequenceStore();
  #held: (() => void) | undefined;
  #first = true;

  next(conversation: ConversationId): number | Promise<number> {
    if (!this.#first) return this.#inner.next(conversation);
    this.#first = false;
    return new Promise((resolve) => {
      this.#held = () => resolve(this.#inner.next(conversation));
    });
  }

  current(conversation: ConversationId): number {
    return this.#inner.current(conversation);
  }

  answer(): void {
    this.#held?.();
  }
}

const kinds = (frames: readonly { type: string; status?: string; code?: string }[]) =>
  frames.map((f) => [f.type, f.status ?? f.code].join(":"));

describe("Gateway: replies to one connection come out in the order frames were received", () => {
  it("a send that waits on storage is answered before the send received after it", async () => {
    const sequences = new LateSequenceStore();
    const w = oneNode({ sequences });
    const a = await w.connect("alice");
    await w.connect("bob");
    await w.connect("carol");
    const first = w.gateway.receive(
      a.conn,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "1" }),
    );
    const second = w.gateway.receive(
      a.conn,
      JSON.stringify({ type: "send", id: "c2", to: { user: "carol" }, text: "2" }),
    );
    await w.flush();
    expect(a.transport.ofType("receipt")).toEqual([]); // c1 waits on storage, c2 waits on c1
    sequences.answer();
    await Promise.all([first, second]);
    await w.flush();
    expect(a.transport.ofType("receipt").map((r) => "clientId" in r && r.clientId)).toEqual([
      "c1",
      "c2",
    ]);
  });

  it("an error for a bad frame waits for the replies of the frames before it", async () => {
    const sequences = new LateSequenceStore();
    const w = oneNode({ sequences });
    const a = await w.connect("alice");
    await w.connect("bob");
    const sent = w.gateway.receive(
      a.conn,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "1" }),
    );
    const bad = w.gateway.receive(a.conn, "{not json");
    const refused = w.gateway.receive(
      a.conn,
      JSON.stringify({ type: "receipt", status: "read", ids: [] }),
    );
    await w.flush();
    expect(a.transport.frames).toEqual([]);
    sequences.answer();
    await Promise.all([sent, bad, refused]);
    await w.flush();
    expect(kinds(a.transport.frames)).toEqual([
      "receipt:sent",
      "error:bad_json",
      "error:invalid_field",
    ]);
    expect(a.transport.ofType("error").map((e) => e.position)).toEqual([2, 3]);
  });

  it("an error references a frame without an id by its position; one with an id by both", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    await w.connect("bob");
    await a.send({ type: "send", id: "ok1", to: { user: "bob" }, text: "fine" }); // 1
    await a.send({ type: "typing", to: { user: "bob" }, state: "composing" }); // 2
    await a.send({ type: "receipt", status: "read", ids: ["bad id"] }); // 3
    await a.send({ type: "send", id: "c4", to: { user: "bob" }, text: 4 }); // 4
    await w.gateway.receive(a.conn, new Uint8Array([0xff])); // 5
    await a.send({ type: "send", id: "c6", to: { user: "bob" }, text: "x", from: "mallory" }); // 6
    const errors = a.transport.ofType("error");
    expect(errors.map((e) => [e.position, e.ref])).toEqual([
      [3, undefined],
      [4, "c4"],
      [5, undefined],
      [6, "c6"],
    ]);
  });

  it("a ping is answered at once, even behind a frame that waits on storage", async () => {
    const sequences = new LateSequenceStore();
    const w = oneNode({ sequences });
    const a = await w.connect("alice");
    await w.connect("bob");
    const sent = w.gateway.receive(
      a.conn,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "1" }),
    );
    const ping = w.gateway.receive(a.conn, JSON.stringify({ type: "ping", id: "p1" }));
    await w.flush();
    expect(kinds(a.transport.frames)).toEqual(["pong:"]);
    sequences.answer();
    await Promise.all([sent, ping]);
    await w.flush();
    expect(kinds(a.transport.frames)).toEqual(["pong:", "receipt:sent"]);
  });
});
