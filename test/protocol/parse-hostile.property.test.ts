import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameParser, parseFrame, parseServerFrame } from "../../src/protocol/index.js";
import { oneNode } from "../support/world.js";

// Inputs a caller of the parser can hand it that are not plain JSON data: a decoded body
// from a framework that lazily reads, an object a plugin wrapped in a Proxy, a buffer that
// was transferred to a worker. The parser promises never to throw for any of them.

const boom = () => {
  throw new Error("boom");
};

/** A detached ArrayBuffer (its bytes were transferred away). */
function detached(size: number): ArrayBuffer {
  const buf = new ArrayBuffer(size);
  structuredClone(buf, { transfer: [buf] });
  return buf;
}

/** A view over a buffer that was detached after the view was made. */
function detachedView(size: number): Uint8Array {
  const buf = new ArrayBuffer(size);
  const view = new Uint8Array(buf);
  structuredClone(buf, { transfer: [buf] });
  return view;
}

/**
 * Hostile values are built inside the property, from a recipe: fast-check itself inspects the
 * values it generates (and a revoked Proxy throws at any touch).
 */
type Recipe = { (): unknown; toString(): string };
const recipe = (label: string, make: () => unknown): Recipe =>
  Object.assign(make, { toString: () => label });

const validFrame = fc.constantFrom<Record<string, unknown>>(
  { type: "send", id: "c1", to: { user: "bob" }, text: "hi" },
  { type: "receipt", status: "read", ids: ["m1"] },
  { type: "ping", id: "p1" },
  { type: "typing", to: { user: "bob" }, state: "composing" },
);

const key = fc.constantFrom("type", "id", "to", "text", "ids", "status", "users", "x");

/** An object like a valid frame whose chosen key is a getter that throws. */
const throwingGetter = fc.tuple(validFrame, key).map(([frame, k]) =>
  recipe(`getter ${k} on ${JSON.stringify(frame)}`, () => {
    const o: Record<string, unknown> = { ...frame };
    delete o[k];
    Object.defineProperty(o, k, { get: boom, enumerable: true });
    return o;
  }),
);

const trapNames = [
  "get",
  "has",
  "ownKeys",
  "getOwnPropertyDescriptor",
  "getPrototypeOf",
  "defineProperty",
  "set",
  "isExtensible",
] as const;

/** A Proxy over a frame (or an array) whose chosen traps throw. */
const throwingProxy = fc
  .tuple(
    fc.oneof(validFrame, fc.constant<unknown[]>([]), fc.constant([new Uint8Array(2)] as unknown[])),
    fc.subarray([...trapNames], { minLength: 1 }),
  )
  .map(([target, traps]) =>
    recipe(`proxy(${traps.join(",")})`, () => {
      const handler: ProxyHandler<object> = {};
      for (const t of traps) (handler as Record<string, unknown>)[t] = boom;
      return new Proxy(target as object, handler);
    }),
  );

/** A revoked Proxy: every operation on it throws, `Array.isArray` included. */
const revokedProxy = fc.oneof(validFrame, fc.constant([] as unknown[])).map((target) =>
  recipe("revoked proxy", () => {
    const { proxy, revoke } = Proxy.revocable(target as object, {});
    revoke();
    return proxy;
  }),
);

/** Sparse arrays, including ones that look like a ws chunk list with holes. */
const sparse = fc.oneof(
  fc.integer({ min: 1, max: 8 }).map((n) => recipe(`new Array(${n})`, () => new Array(n))),
  fc
    .sparseArray(fc.constant(new Uint8Array([0x7b, 0x7d])), { maxLength: 6 })
    .map((a) => recipe("sparse chunk list", () => a)),
  fc
    .sparseArray(fc.jsonValue({ maxDepth: 1 }), { maxLength: 6 })
    .map((a) => recipe("sparse array", () => a)),
);

const buffers = fc.oneof(
  fc.integer({ min: 0, max: 64 }).map((n) => recipe(`detached(${n})`, () => detached(n))),
  fc.integer({ min: 1, max: 64 }).map((n) => recipe(`detachedView(${n})`, () => detachedView(n))),
  fc
    .integer({ min: 1, max: 8 })
    .map((n) => recipe("chunks", () => [new Uint8Array(1), detachedView(n)])),
);

/** A frame whose nested value is hostile (the schema has to read it). */
const nested = fc
  .tuple(validFrame, key, fc.oneof(throwingGetter, throwingProxy, revokedProxy, sparse))
  .map(([frame, k, v]) => recipe(`${k}: ${v}`, () => ({ ...frame, [k]: v() })));

const oddities = fc.constantFrom<() => unknown>(
  () => Object.create(null),
  () => Object.assign(Object.create(null), { type: "ping" }),
  () => ({ type: "ping", id: Symbol("x") }),
  () => ({ type: Symbol("ping") }),
  () => ({ [Symbol.toPrimitive]: boom, type: "ping" }),
  () => ({ type: "ping", toString: boom, valueOf: boom }),
  () => () => ({ type: "ping" }),
  () => Object.defineProperty({}, "type", { get: () => "ping", enumerable: false }),
  () => new Date(Number.NaN),
  () => new Map([["type", "ping"]]),
  () => new Error("x"),
);

const hostile = fc.oneof(
  throwingGetter,
  throwingProxy,
  revokedProxy,
  sparse,
  buffers,
  nested,
  oddities,
);

const CODES = ["frame_too_large", "bad_json", "unknown_type", "invalid_field"];

describe("the parser never throws, for hostile inputs (fast-check)", () => {
  const parsers = [
    (raw: unknown) => parseFrame(raw as object),
    (raw: unknown) => parseServerFrame(raw as object),
    (raw: unknown) => new FrameParser({ maxFrameBytes: 16 }).parseClient(raw as object),
  ];

  it("returns a result with a stable code, and a frame that is plain data", () => {
    fc.assert(
      fc.property(hostile, fc.constantFrom(0, 1, 2), (make, which) => {
        const r = parsers[which]!(make());
        if (r.ok) {
          // Whatever is accepted is a copy the caller's object can no longer change.
          expect(() => structuredClone(r.frame)).not.toThrow();
        } else {
          expect(CODES).toContain(r.error.code);
          expect(r.error.toFrame()).toMatchObject({ type: "error", code: r.error.code });
        }
      }),
      { numRuns: 500 },
    );
  });

  it("the cases from the issue, one by one", () => {
    for (const raw of [
      new Array(1),
      new Array(3),
      detached(8),
      detachedView(8),
      Object.defineProperty({}, "type", { get: boom, enumerable: true }),
      Object.defineProperty({ type: "ping" }, "id", { get: boom, enumerable: true }),
      new Proxy({ type: "ping" }, { get: boom }),
      new Proxy({}, { getPrototypeOf: boom }),
    ]) {
      const r = parseFrame(raw as object);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(CODES).toContain(r.error.code);
    }
  });
});

describe("Gateway.receive with hostile input (fast-check)", () => {
  it("answers an error frame, never rejects, and the connection keeps working", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await fc.assert(
      fc.asyncProperty(hostile, async (make) => {
        a.transport.clear();
        await expect(w.gateway.receive(a.conn, make() as object)).resolves.toBeUndefined();
        for (const f of a.transport.frames) if (f.type === "error") expect(CODES).toContain(f.code);
      }),
      { numRuns: 200 },
    );
    expect(a.transport.closedWith).toBeUndefined();
    await a.send({ type: "send", id: "after", to: { user: "bob" }, text: "ok" });
    expect(b.transport.ofType("message")).toMatchObject([{ text: "ok" }]);
  });
});
