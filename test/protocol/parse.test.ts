import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FrameParser,
  ProtocolError,
  parseFrame,
  parseServerFrame,
  schemas,
} from "../../src/protocol/index.js";

const valid = {
  send: { type: "send", id: "c1", to: { user: "bob" }, text: "hello" },
  sendGroup: {
    type: "send",
    id: "c2",
    to: { group: "g1" },
    text: "hi all",
    priority: "low",
    attachments: [
      {
        kind: "image",
        mime: "image/png",
        size: 10,
        sha256: "a".repeat(64),
        blobId: "b1",
        name: "x.png",
      },
    ],
  },
  receiptIds: { type: "receipt", status: "delivered", ids: ["m1", "m2"] },
  receiptRead: { type: "receipt", status: "read", ids: ["m1"] },
  watermark: { type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 7 },
  subscribe: { type: "presence.subscribe", users: ["bob"] },
  unsubscribe: { type: "presence.unsubscribe", users: ["bob"] },
  typing: { type: "typing", to: { user: "bob" }, state: "composing" },
  ping: { type: "ping", id: "p1" },
  pingBare: { type: "ping" },
} as const;

const code = (raw: unknown) => {
  const r = parseFrame(raw as string);
  return r.ok ? "ok" : r.error.code;
};

describe("parseFrame: every client frame", () => {
  for (const [name, frame] of Object.entries(valid)) {
    it(`accepts ${name} as text, bytes and a decoded body`, () => {
      const text = JSON.stringify(frame);
      for (const raw of [text, new TextEncoder().encode(text), frame]) {
        const r = parseFrame(raw);
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.frame).toEqual(frame);
      }
    });
  }
});

describe("parseFrame: error codes", () => {
  it("frame_too_large for text, bytes, and multi-byte text over the limit", () => {
    const p = new FrameParser({ maxFrameBytes: 100 });
    expect(p.parseClient("x".repeat(101)).ok).toBe(false);
    const r = p.parseClient("x".repeat(101));
    expect(!r.ok && r.error.code).toBe("frame_too_large");
    const bytes = p.parseClient(new Uint8Array(101));
    expect(!bytes.ok && bytes.error.code).toBe("frame_too_large");
    // 40 euro signs are 40 UTF-16 units but 120 UTF-8 bytes
    const euros = p.parseClient(JSON.stringify({ type: "ping", id: "€".repeat(40) }));
    expect(!euros.ok && euros.error.code).toBe("frame_too_large");
  });

  it("frame_too_large at the default of 64 KiB", () => {
    const text = JSON.stringify({ ...valid.send, text: "x".repeat(64 * 1024) });
    expect(code(text)).toBe("frame_too_large");
  });

  it("bad_json for malformed JSON and invalid UTF-8", () => {
    expect(code("{")).toBe("bad_json");
    expect(code("")).toBe("bad_json");
    expect(code(new Uint8Array([0x7b, 0xff, 0x7d]))).toBe("bad_json");
  });

  it("unknown_type for a type nobody defined, with the frame's id as ref", () => {
    const r = parseFrame(JSON.stringify({ type: "teleport", id: "c9" }));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(ProtocolError);
      expect(r.error.code).toBe("unknown_type");
      expect(r.error.toFrame()).toMatchObject({ type: "error", code: "unknown_type", ref: "c9" });
    }
  });

  it("invalid_field with the field path", () => {
    const cases: [unknown, string][] = [
      [{ ...valid.send, text: 5 }, "text"],
      [{ ...valid.send, to: { user: "bad id with spaces" } }, "to.user"],
      [{ ...valid.send, priority: "urgent" }, "priority"],
      [{ ...valid.send, extra: 1 }, ""],
      [{ ...valid.receiptIds, ids: [] }, "ids"],
      [{ ...valid.watermark, upTo: 0 }, "upTo"],
      [
        { ...valid.sendGroup, attachments: [{ ...valid.sendGroup.attachments[0], sha256: "zz" }] },
        "attachments.0.sha256",
      ],
      [{ id: "x" }, "type"],
      [[1, 2], ""],
      [42, ""],
    ];
    for (const [frame, path] of cases) {
      const r = parseFrame(JSON.stringify(frame));
      expect(r.ok, JSON.stringify(frame)).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe("invalid_field");
        expect(r.error.path).toBe(path);
      }
    }
  });

  it("enforces text length, ids per receipt and the id format as options", () => {
    const p = new FrameParser({
      maxTextLength: 5,
      maxIdsPerReceipt: 2,
      idPattern: /^[a-z0-9]{1,4}$/,
    });
    const err = (f: unknown) => {
      const r = p.parseClient(JSON.stringify(f));
      return r.ok ? undefined : [r.error.code, r.error.path];
    };
    expect(err({ ...valid.send, text: "123456" })).toEqual(["invalid_field", "text"]);
    expect(err({ type: "receipt", status: "read", ids: ["a", "b", "c"] })).toEqual([
      "invalid_field",
      "ids",
    ]);
    expect(err({ ...valid.send, id: "toolong" })).toEqual(["invalid_field", "id"]);
    expect(err({ ...valid.send, id: "ok" })).toBeUndefined();
  });
});

describe("parseServerFrame", () => {
  it("accepts what the server sends and refuses client-only frames", () => {
    const sent = {
      type: "receipt",
      status: "sent",
      clientId: "c1",
      id: "m1",
      conversation: "dm:a:b",
      seq: 1,
      ts: 5,
    };
    expect(parseServerFrame(JSON.stringify(sent)).ok).toBe(true);
    expect(parseServerFrame(JSON.stringify({ type: "pong", ts: 1 })).ok).toBe(true);
    const r = parseServerFrame(JSON.stringify(valid.send));
    expect(!r.ok && r.error.code).toBe("unknown_type");
  });
});

describe("parseFrame never throws (fast-check)", () => {
  const check = (raw: unknown) => {
    const r = parseFrame(raw as string);
    expect(typeof r.ok).toBe("boolean");
    if (!r.ok) {
      expect(["frame_too_large", "bad_json", "unknown_type", "invalid_field"]).toContain(
        r.error.code,
      );
      expect(r.error.toFrame().type).toBe("error");
    } else {
      // Whatever is accepted is a valid client frame by the schema itself.
      expect(schemas.clientFrame.safeParse(r.frame).success).toBe(true);
    }
  };

  it("on random strings", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 500 });
  });

  it("on random bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), check), { numRuns: 300 });
  });

  it("on random JSON values, as text and as decoded bodies", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        check(JSON.stringify(v) ?? "null");
        check(v as object);
      }),
      { numRuns: 400 },
    );
  });

  it("on mutated valid frames", () => {
    const frames = Object.values(valid) as unknown as Record<string, unknown>[];
    const mutation = fc.record({
      base: fc.constantFrom(...frames),
      key: fc.oneof(
        fc.constantFrom(
          "type",
          "id",
          "to",
          "text",
          "ids",
          "status",
          "upTo",
          "users",
          "state",
          "priority",
          "attachments",
        ),
        fc.string({ maxLength: 8 }),
      ),
      value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)),
      drop: fc.boolean(),
    });
    fc.assert(
      fc.property(mutation, ({ base, key, value, drop }) => {
        const copy: Record<string, unknown> = structuredClone(base);
        if (drop) delete copy[key];
        else copy[key] = value;
        check(JSON.stringify(copy));
      }),
      { numRuns: 1000 },
    );
  });
});
